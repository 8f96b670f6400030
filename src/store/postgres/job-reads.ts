/** Job reads (get, list, stats, report) and pruning, for the PostgreSQL store. */
import { emptyCounts, JOB_STATES, type Job, type JobFilter, type QueueCounts, type QueueReport } from "../../core/types.js";
import { REPORT_DURATION_SAMPLE } from "../common.js";
import type { PruneOptions } from "../store.js";
import type { Db } from "./db.js";
import { jobSelectList } from "../rows.js";
import { jobColumns, rowToJob, type JobRow } from "./rows.js";

/** Default rows per prune transaction: short enough that no claim waits long behind it. */
const PRUNE_BATCH = 500;

export async function listJobs(db: Db, S: string, filter: JobFilter = {}): Promise<Job[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  const add = (sql: (n: string) => string, v: unknown) => {
    args.push(v);
    where.push(sql(`$${args.length}`));
  };
  if (filter.queue !== undefined) add((p) => `queue = ${p}`, filter.queue);
  if (filter.state !== undefined) add((p) => `state = ${p}`, filter.state);
  if (filter.beforeId !== undefined) add((p) => `id < ${p}::bigint`, filter.beforeId);
  if (filter.rootId !== undefined) add((p) => `(root_id = ${p}::bigint OR id = ${p}::bigint)`, filter.rootId);
  const limit = filter.limit ?? 50;
  let cols = jobColumns();
  if (filter.preview !== undefined) {
    args.push(Math.max(0, Math.trunc(filter.preview)));
    const n = `$${args.length}::int`;
    cols = jobSelectList({ chars: n, cut: (c) => `left(${c}, ${n}) AS ${c}` });
  }
  const sql =
    `SELECT ${cols} FROM ${S}.jobs${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC` +
    (limit > 0 ? ` LIMIT ${Math.trunc(limit)}` : "");
  return (await db.query<JobRow>(sql, args)).map(rowToJob);
}

/** Jobs of pipeline run `rootId` (the root included) on `queue`, counted up to `atMost`. */
export async function countRounds(db: Db, S: string, rootId: number, queue: string, atMost: number): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `SELECT ((SELECT count(*) FROM (SELECT 1 FROM ${S}.jobs WHERE root_id = $1::bigint AND queue = $2 LIMIT $3) r)
      + (SELECT count(*) FROM ${S}.jobs WHERE id = $1::bigint AND queue = $2))::int AS n`,
    [rootId, queue, Math.max(0, Math.trunc(atMost))],
  );
  return rows[0]?.n ?? 0;
}

/** Counts per queue and state, plus what pruning removed (kept in `job_totals`). */
export async function jobStats(db: Db, S: string): Promise<Record<string, QueueCounts>> {
  const rows = await db.query<{ queue: string; state: string; n: number }>(
    `SELECT queue, state, count(*)::int AS n FROM ${S}.jobs GROUP BY queue, state
     UNION ALL
     SELECT queue, state, n FROM ${S}.job_totals`,
  );
  const out: Record<string, QueueCounts> = {};
  for (const r of rows) {
    if (!(JOB_STATES as string[]).includes(r.state)) continue;
    (out[r.queue] ??= emptyCounts())[r.state as keyof QueueCounts] += r.n;
  }
  return out;
}

/** Age of the oldest waiting (or due scheduled/failed) job per queue. */
export async function oldestWaiting(db: Db, S: string, now: number): Promise<Record<string, number>> {
  const rows = await db.query<{ queue: string; t: number }>(
    `SELECT queue, min(run_at) AS t FROM ${S}.jobs
     WHERE state = 'waiting' OR (state IN ('scheduled', 'failed') AND run_at <= $1::bigint)
     GROUP BY queue`,
    [now],
  );
  const out: Record<string, number> = {};
  for (const r of rows) out[r.queue] = Math.max(0, now - r.t);
  return out;
}

/** Nearest rank, as the SQLite store computes it. */
function percentile(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Run times for p50/p95: the newest completions in the window (see common.ts). */
const DURATION_SAMPLE = REPORT_DURATION_SAMPLE;

/**
 * Per queue: completed and dead since `since`, failed attempts recorded since, p50/p95 run
 * time (of the newest DURATION_SAMPLE completions).
 */
export async function jobReport(db: Db, S: string, since: number): Promise<QueueReport[]> {
  const byQueue = new Map<string, QueueReport>();
  const at = (queue: string) => {
    let r = byQueue.get(queue);
    if (!r) byQueue.set(queue, (r = { queue, completed: 0, dead: 0, failedAttempts: 0, p50Ms: null, p95Ms: null }));
    return r;
  };
  const [counts, newest, failures] = await Promise.all([
    db.query<{ queue: string; completed: number; dead: number }>(
      `SELECT queue, count(*) FILTER (WHERE state = 'completed')::int AS completed,
         count(*) FILTER (WHERE state = 'dead')::int AS dead
       FROM ${S}.jobs WHERE state IN ('completed', 'dead') AND finished_at >= $1::bigint GROUP BY queue`,
      [since],
    ),
    db.query<{ queue: string; ms: string }>(
      `SELECT queue, finished_at - coalesce(started_at, finished_at) AS ms FROM ${S}.jobs
       WHERE finished_at >= $1::bigint AND state = 'completed' ORDER BY finished_at DESC LIMIT ${DURATION_SAMPLE}`,
      [since],
    ),
    // Only jobs with a history (jobs_failures, migration 3): one branch per part of the
    // index, finished since or not finished, so neither reads the table.
    db.query<{ queue: string; n: number }>(
      `SELECT queue, sum(n)::int AS n FROM (
         SELECT j.queue, count(*) AS n FROM ${S}.jobs j, jsonb_array_elements(j.history) h
         WHERE j.history <> '[]' AND j.finished_at >= $1::bigint AND (h->>'at')::bigint >= $1::bigint GROUP BY j.queue
         UNION ALL
         SELECT j.queue, count(*) AS n FROM ${S}.jobs j, jsonb_array_elements(j.history) h
         WHERE j.history <> '[]' AND j.finished_at IS NULL AND (h->>'at')::bigint >= $1::bigint GROUP BY j.queue
       ) f GROUP BY queue`,
      [since],
    ),
  ]);
  for (const c of counts) Object.assign(at(c.queue), { completed: c.completed, dead: c.dead });
  const durations = new Map<string, number[]>();
  for (const n of newest) {
    let d = durations.get(n.queue);
    if (!d) durations.set(n.queue, (d = []));
    d.push(Number(n.ms));
  }
  for (const [queue, list] of durations) {
    const sorted = Float64Array.from(list).sort();
    const r = at(queue);
    r.p50Ms = percentile(sorted, 50);
    r.p95Ms = percentile(sorted, 95);
  }
  for (const f of failures) at(f.queue).failedAttempts = f.n;
  return [...byQueue.values()].sort((a, b) => a.queue.localeCompare(b.queue));
}

/**
 * Deletes old finished jobs in batches, one statement each, adding what it deletes to
 * `job_totals` in the same statement so counts survive.
 */
export async function pruneJobs(db: Db, S: string, opts: PruneOptions): Promise<{ completed: number; dead: number }> {
  const batch = Math.max(1, Math.trunc(opts.batch ?? PRUNE_BATCH));
  const step = async (states: string[], before: number): Promise<number> => {
    const rows = await db.query<{ n: number }>(
      `WITH del AS (
         DELETE FROM ${S}.jobs WHERE id IN (
           SELECT id FROM ${S}.jobs WHERE state = ANY($1::text[]) AND finished_at IS NOT NULL
             AND finished_at < $2::bigint LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING queue, state
       ), agg AS (
         SELECT queue, state, count(*) AS n FROM del GROUP BY queue, state
       ), up AS (
         INSERT INTO ${S}.job_totals (queue, state, n) SELECT queue, state, n FROM agg
         ON CONFLICT (queue, state) DO UPDATE SET n = ${S}.job_totals.n + EXCLUDED.n
       )
       SELECT coalesce(sum(n), 0)::int AS n FROM agg`,
      [states, before, batch],
    );
    return rows[0]?.n ?? 0;
  };
  const drain = async (states: string[], before: number | undefined): Promise<number> => {
    if (before === undefined) return 0;
    let total = 0;
    for (;;) {
      const n = await step(states, before);
      total += n;
      if (n < batch) return total;
    }
  };
  return {
    completed: await drain(["completed"], opts.completedBefore),
    dead: await drain(["dead", "cancelled"], opts.deadBefore),
  };
}

/** When the earliest scheduled or failed job of these queues comes due; null if none. */
export async function nextDueAt(db: Db, S: string, queues: string[]): Promise<number | null> {
  if (queues.length === 0) return null;
  const rows = await db.query<{ t: number | null }>(
    `SELECT min(run_at) AS t FROM ${S}.jobs WHERE queue = ANY ($1::text[]) AND state IN ('scheduled', 'failed')`,
    [queues],
  );
  return rows[0]?.t ?? null;
}
