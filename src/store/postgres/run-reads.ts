/**
 * The reads runs are made of (see ../runs.ts), for the PostgreSQL store. A run's jobs may
 * be in `jobs` (unfinished) and `job_history` (finished): each read covers both.
 */
import type { JobSource, JobState } from "../../core/types.js";
import type { MemberRow, RootRow, RunReads } from "../runs.js";
import type { Db } from "./db.js";

const ROOT_COLUMNS = "id, queue, state, key, attempt, created_at, finished_at, source";
type RawRoot = { id: number; queue: string; state: JobState; key: string | null; attempt: number; created_at: number; finished_at: number | null; source: string | null };

function toRoot(r: RawRoot): RootRow {
  return {
    id: Number(r.id),
    queue: r.queue,
    state: r.state,
    key: r.key,
    attempt: r.attempt,
    createdAt: Number(r.created_at),
    finishedAt: r.finished_at === null ? null : Number(r.finished_at),
    source: r.source ? (JSON.parse(r.source) as JobSource) : null,
  };
}

/** Above every other character, so `[prefix, prefix + TOP)` is the key range of a prefix (byte order). */
const TOP = "\u{10FFFF}";

/** `select` (a query with `FROM ${TABLE}`) over jobs and job_history, each part ordered and limited by `tail`. */
function both(S: string, select: string, tail = ""): string {
  const of = (t: string) => `(${select.replace("${TABLE}", () => `${S}.${t}`)}${tail})`;
  return `${of("jobs")} UNION ALL ${of("job_history")}`;
}

export function pgRunReads(db: Db, S: string): RunReads {
  const below = (id: number | null) => id ?? Number.MAX_SAFE_INTEGER;
  return {
    roots: async (beforeId, limit) =>
      (
        await db.query<RawRoot>(
          `${both(S, `SELECT ${ROOT_COLUMNS} FROM \${TABLE} WHERE root_id IS NULL AND id < $1::bigint`, " ORDER BY id DESC LIMIT $2::int")}
           ORDER BY id DESC LIMIT $2::int`,
          [below(beforeId), limit],
        )
      ).map(toRoot),
    // `jobs_run_key` and `job_history_run_key` ((key COLLATE "C"), id): a range in each, then a sort of the matches.
    rootsByKey: async (prefix, beforeId, limit) =>
      (
        await db.query<RawRoot>(
          `${both(
            S,
            `SELECT ${ROOT_COLUMNS} FROM \${TABLE} WHERE root_id IS NULL AND key IS NOT NULL
           AND (key COLLATE "C") >= $1 AND (key COLLATE "C") < $2 AND id < $3::bigint`,
            " ORDER BY id DESC LIMIT $4::int",
          )} ORDER BY id DESC LIMIT $4::int`,
          [prefix, prefix + TOP, below(beforeId), limit],
        )
      ).map(toRoot),
    rootsByText: async (text, beforeId, window) => {
      const rows = await db.query<RawRoot & { n: number; m: number }>(
        `WITH w AS (SELECT id FROM (${both(S, "SELECT id FROM ${TABLE} WHERE root_id IS NULL AND id < $1::bigint", " ORDER BY id DESC LIMIT $2::int")}) u
                ORDER BY id DESC LIMIT $2::int),
              f AS (SELECT count(*)::int AS n, min(id) AS m FROM w)
         SELECT f.n, f.m, j.* FROM f LEFT JOIN LATERAL (${both(
           S,
           `SELECT ${ROOT_COLUMNS} FROM \${TABLE} WHERE id IN (SELECT id FROM w)
           AND (strpos(lower(payload), $3) > 0 OR strpos(lower(coalesce(key, '')), $3) > 0)`,
         )}) j ON true ORDER BY j.id DESC`,
        [below(beforeId), window, text.toLowerCase()],
      );
      const first = rows[0];
      const floor = first && first.n >= window ? Number(first.m) : null;
      return { jobs: rows.filter((r) => r.id !== null).map(toRoot), floor };
    },
    members: async (rootIds) => {
      if (rootIds.length === 0) return [];
      const rows = await db.query<{ id: number; root_id: number; queue: string; state: JobState; attempt: number; finished_at: number | null }>(
        both(S, "SELECT id, root_id, queue, state, attempt, finished_at FROM ${TABLE} WHERE root_id = ANY($1::bigint[])"),
        [rootIds],
      );
      return rows.map(
        (r): MemberRow => ({
          id: Number(r.id),
          rootId: Number(r.root_id),
          queue: r.queue,
          state: r.state,
          attempt: r.attempt,
          finishedAt: r.finished_at === null ? null : Number(r.finished_at),
        }),
      );
    },
  };
}

/** Waiting jobs of the queue that a claim takes before this one (claim order), at most `cap`. */
export async function pgJobsAhead(db: Db, S: string, job: { id: number; queue: string; priority: number; runAt: number }, cap: number): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM ${S}.jobs WHERE state = 'waiting' AND queue = $1
       AND (priority > $2::int OR (priority = $2::int AND (run_at < $3::bigint OR (run_at = $3::bigint AND id < $4::bigint)))) LIMIT $5::int) a`,
    [job.queue, job.priority, job.runAt, job.id, cap],
  );
  return rows[0]?.n ?? 0;
}
