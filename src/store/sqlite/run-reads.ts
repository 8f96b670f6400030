/**
 * The reads runs are made of (see ../runs.ts), for the SQLite store. A run's jobs may be in
 * `jobs` (unfinished) and `job_history` (finished): each read asks both, and a page in id
 * order is one UNION ALL that SQLite merges from each table's index in id order.
 */
import type { JobSource, JobState } from "../../core/types.js";
import type { MemberRow, RootRow, RunReads } from "../runs.js";
import type { Prepare } from "./rows.js";

const ROOT_COLUMNS = "id, queue, state, key, attempt, created_at, finished_at, source";
type RawRoot = { id: number; queue: string; state: JobState; key: string | null; attempt: number; created_at: number; finished_at: number | null; source: string | null };

function toRoot(r: RawRoot): RootRow {
  return {
    id: r.id,
    queue: r.queue,
    state: r.state,
    key: r.key,
    attempt: r.attempt,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    source: r.source ? (JSON.parse(r.source) as JobSource) : null,
  };
}

/** Above every other character, so `[prefix, prefix + TOP)` is the key range of a prefix. */
const TOP = "\u{10FFFF}";

/** The same SELECT over `jobs` and over `job_history`, as one UNION ALL (then `tail`). */
const both = (select: (table: string) => string, tail = ""): string =>
  `${select("jobs")} UNION ALL ${select("job_history")}${tail ? ` ${tail}` : ""}`;

/** `read` runs each step as the store runs its other reads (lock waits handled there). */
export function sqliteRunReads(prep: Prepare, read: <T>(fn: () => T) => Promise<T>): RunReads {
  const below = (id: number | null) => id ?? Number.MAX_SAFE_INTEGER;
  return {
    roots: (beforeId, limit) =>
      read(() =>
        (
          prep(both((t) => `SELECT ${ROOT_COLUMNS} FROM ${t} WHERE root_id IS NULL AND id < @before`, "ORDER BY id DESC LIMIT @limit")).all({
            before: below(beforeId),
            limit,
          }) as RawRoot[]
        ).map(toRoot),
      ),
    // `jobs_live_run_key` and `jobs_run_key` (key, id) WHERE root_id IS NULL AND key IS NOT
    // NULL: a range in each, then a sort of the matches.
    rootsByKey: (prefix, beforeId, limit) =>
      read(() =>
        (
          prep(
            both(
              (t) => `SELECT ${ROOT_COLUMNS} FROM ${t} WHERE root_id IS NULL AND key IS NOT NULL AND key >= @from AND key < @to AND id < @before`,
              "ORDER BY id DESC LIMIT @limit",
            ),
          ).all({ from: prefix, to: prefix + TOP, before: below(beforeId), limit }) as RawRoot[]
        ).map(toRoot),
      ),
    rootsByText: (text, beforeId, window) =>
      read(() => {
        const needle = text.toLowerCase();
        const win = both((t) => `SELECT id FROM ${t} WHERE root_id IS NULL AND id < @before`, "ORDER BY id DESC LIMIT @window");
        const rows = prep(
          both(
            (t) => `SELECT ${ROOT_COLUMNS} FROM ${t} WHERE id IN (${win})
              AND (instr(lower(payload), @needle) > 0 OR instr(lower(coalesce(key, '')), @needle) > 0)`,
            "ORDER BY id DESC",
          ),
        ).all({ before: below(beforeId), window, needle }) as RawRoot[];
        const w = prep(`SELECT count(*) AS n, min(id) AS m FROM (${win})`).get({ before: below(beforeId), window }) as { n: number; m: number | null };
        return { jobs: rows.map(toRoot), floor: w.n >= window ? w.m : null };
      }),
    members: (rootIds) =>
      read(() => {
        if (rootIds.length === 0) return [];
        const rows = prep(
          both((t) => `SELECT id, root_id, queue, state, attempt, finished_at FROM ${t} WHERE root_id IN (SELECT value FROM json_each(@roots))`),
        ).all({ roots: JSON.stringify(rootIds) }) as { id: number; root_id: number; queue: string; state: JobState; attempt: number; finished_at: number | null }[];
        return rows.map((r): MemberRow => ({ id: r.id, rootId: r.root_id, queue: r.queue, state: r.state, attempt: r.attempt, finishedAt: r.finished_at }));
      }),
  };
}

/** Waiting jobs of the queue that a claim takes before this one (claim order), at most `cap`. */
export function sqliteJobsAhead(prep: Prepare, job: { id: number; queue: string; priority: number; runAt: number }, cap: number): number {
  const row = prep(
    `SELECT count(*) AS n FROM (SELECT 1 FROM jobs WHERE state = 'waiting' AND queue = @queue
       AND (priority > @p OR (priority = @p AND (run_at < @r OR (run_at = @r AND id < @id)))) LIMIT @cap)`,
  ).get({ queue: job.queue, p: job.priority, r: job.runAt, id: job.id, cap }) as { n: number };
  return row.n;
}
