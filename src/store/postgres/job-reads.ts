/**
 * Job reads (get, list, stats, report) and pruning, for the PostgreSQL store. Unfinished
 * jobs are in `jobs`, finished ones in `job_history` (migration 12): a read of either kind
 * reads its table, a read of both a union of the two.
 */
import { emptyCounts, JOB_STATES, type Job, type JobFilter, type QueueCounts, type QueueReport } from "../../core/types.js";
import { jobTable, REPORT_DURATION_SAMPLE } from "../common.js";
import type { PruneOptions } from "../store.js";
import { assembleReport, reportWindow, type CountRow } from "../rollups.js";
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
  const cap = limit > 0 ? ` LIMIT ${Math.trunc(limit)}` : "";
  const of = (table: string) => `SELECT ${cols} FROM ${S}.${table}${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC${cap}`;
  // A state lives in one table; otherwise each table's newest `limit`, merged.
  const sql =
    filter.state === undefined
      ? `SELECT * FROM (${of("jobs")}) a UNION ALL SELECT * FROM (${of("job_history")}) b ORDER BY id DESC${cap}`
      : of(jobTable(filter.state));
  return (await db.query<JobRow>(sql, args)).map(rowToJob);
}

/** Jobs of pipeline run `rootId` (the root included) on `queue`, counted up to `atMost`. */
export async function countRounds(db: Db, S: string, rootId: number, queue: string, atMost: number): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `SELECT ((SELECT count(*) FROM (SELECT 1 FROM ${S}.jobs WHERE root_id = $1::bigint AND queue = $2
        UNION ALL SELECT 1 FROM ${S}.job_history WHERE root_id = $1::bigint AND queue = $2 LIMIT $3) r)
      + (SELECT count(*) FROM (SELECT 1 FROM ${S}.jobs WHERE id = $1::bigint AND queue = $2
        UNION ALL SELECT 1 FROM ${S}.job_history WHERE id = $1::bigint AND queue = $2) i))::int AS n`,
    [rootId, queue, Math.max(0, Math.trunc(atMost))],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Counts per queue and state, none read by scanning history: live states from the
 * counters the jobs table's triggers keep (job_live, migration 11), dead and cancelled from
 * job_history_rest_id, completed from the counters completions add to (job_counts, migration 7),
 * and what pruning removed of the rest from `job_totals`.
 */
export async function jobStats(db: Db, S: string): Promise<Record<string, QueueCounts>> {
  const rows = await db.query<{ queue: string; state: string; n: number }>(
    `SELECT queue, state, sum(n)::bigint AS n FROM ${S}.job_live GROUP BY queue, state HAVING sum(n) <> 0
     UNION ALL
     SELECT queue, state, count(*)::bigint FROM ${S}.job_history WHERE state IN ('dead', 'cancelled') GROUP BY queue, state
     UNION ALL
     SELECT queue, 'completed', sum(completed)::bigint FROM ${S}.job_counts GROUP BY queue
     UNION ALL
     SELECT queue, state, n FROM ${S}.job_totals`,
  );
  const out: Record<string, QueueCounts> = {};
  for (const r of rows) {
    if (!(JOB_STATES as string[]).includes(r.state)) continue;
    (out[r.queue] ??= emptyCounts())[r.state as keyof QueueCounts] += Number(r.n);
  }
  return out;
}

/**
 * Age of the oldest waiting (or due scheduled/failed) job per queue, read from the claim
 * index jobs_due (queue, priority DESC, run_at, id) by seeks, not a scan of the backlog: a
 * recursive walk visits the first entry of each (queue, priority), which has its smallest
 * run_at, so the cost is a few seeks per pair however many jobs wait (as in SQLite). When
 * a queue's smallest run_at is not yet due, only a waiting job counts (run_at ahead of the
 * clock: age 0), looked for in that queue alone.
 */
export async function oldestWaiting(db: Db, S: string, now: number): Promise<Record<string, number>> {
  const due = `state IN ('waiting', 'scheduled', 'failed')`;
  const rows = await db.query<{ queue: string; t: number | null }>(
    `WITH RECURSIVE k AS (
       (SELECT queue, priority, run_at FROM ${S}.jobs WHERE ${due} ORDER BY queue, priority DESC, run_at LIMIT 1)
       UNION ALL
       SELECT n.queue, n.priority, n.run_at FROM k, LATERAL (
         (SELECT queue, priority, run_at FROM ${S}.jobs WHERE ${due} AND queue = k.queue AND priority < k.priority
           ORDER BY queue, priority DESC, run_at LIMIT 1)
         UNION ALL
         (SELECT queue, priority, run_at FROM ${S}.jobs WHERE ${due} AND queue > k.queue
           ORDER BY queue, priority DESC, run_at LIMIT 1)
         LIMIT 1) n
     )
     SELECT m.queue, CASE WHEN m.t <= $1::bigint THEN m.t ELSE (SELECT $1::bigint FROM ${S}.jobs j
         WHERE j.${due} AND j.queue = m.queue AND j.state = 'waiting' ORDER BY j.priority DESC, j.run_at LIMIT 1) END AS t
     FROM (SELECT queue, min(run_at) AS t FROM k GROUP BY queue) m`,
    [now],
  );
  const out: Record<string, number> = {};
  for (const r of rows) if (r.t !== null) out[r.queue] = Math.max(0, now - Number(r.t));
  return out;
}

/** Run times for p50/p95: the newest completions in the window (see common.ts). */
const DURATION_SAMPLE = REPORT_DURATION_SAMPLE;

/**
 * Per queue: completed and dead since `since`, failed attempts recorded since, p50/p95 run
 * time (of the newest DURATION_SAMPLE completions). Counts come from the hour, minute and
 * failure rows (see rollups.ts), and from the jobs themselves for the part-minute at the
 * window's start.
 */
export async function jobReport(db: Db, S: string, since: number): Promise<QueueReport[]> {
  const w = reportWindow(since);
  const [counts, newest] = await Promise.all([
    db.query<CountRow>(
      `SELECT queue, sum(completed)::bigint AS completed, sum(dead)::bigint AS dead, sum(failed)::bigint AS failed FROM ${S}.job_hours
         WHERE hour >= $1::bigint GROUP BY queue
       UNION ALL
       SELECT queue, sum(completed)::bigint, sum(dead)::bigint, 0 FROM ${S}.job_minutes WHERE minute >= $2::bigint GROUP BY queue
       UNION ALL
       SELECT queue, count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'dead'), 0 FROM ${S}.job_history
         WHERE state IN ('completed', 'dead') AND finished_at >= $3::bigint AND finished_at < $4::bigint GROUP BY queue
       UNION ALL
       SELECT queue, 0, 0, count(*) FROM ${S}.job_failures WHERE at >= $3::bigint GROUP BY queue`,
      [w.fromHour, w.fromMinute, since, w.headEnd],
    ),
    // Nearest rank, as rollups.ts computes it, on the server: three rows come back, not 10,000.
    db.query<CountRow>(
      `SELECT queue, percentile_disc(0.5) WITHIN GROUP (ORDER BY ms) AS "p50Ms", percentile_disc(0.95) WITHIN GROUP (ORDER BY ms) AS "p95Ms"
       FROM (SELECT queue, finished_at - coalesce(started_at, finished_at) AS ms FROM ${S}.job_history
         WHERE finished_at >= $1::bigint AND state = 'completed' ORDER BY finished_at DESC LIMIT ${DURATION_SAMPLE}) d
       GROUP BY queue`,
      [since],
    ),
  ]);
  return assembleReport([...counts, ...newest], []);
}

/**
 * Deletes old finished jobs from job_history in batches, one statement each, and gives
 * back the keys completed ones held: completed ones were counted when they completed
 * (job_counts); what it deletes of the others it adds to `job_totals` in the same
 * statement, so counts survive. Then folds per-minute counts and failed
 * attempts older than `foldBefore` into hours (see rollups.ts), in batches too.
 */
export async function pruneJobs(db: Db, S: string, opts: PruneOptions): Promise<{ completed: number; dead: number }> {
  const batch = Math.max(1, Math.trunc(opts.batch ?? PRUNE_BATCH));
  const pruneStep = async (state: string, before: number): Promise<number> => {
    const rows = await db.query<{ n: number }>(
      `WITH del AS (
         DELETE FROM ${S}.job_history WHERE id IN (
           SELECT id FROM ${S}.job_history WHERE state = $1 AND finished_at IS NOT NULL
             AND finished_at < $2::bigint LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING id, key, queue, state
       ), keys AS (
         DELETE FROM ${S}.job_keys k USING del WHERE k.key = del.key AND k.job_id = del.id
       ), agg AS (
         SELECT queue, state, count(*) AS n FROM del GROUP BY queue, state
       ), up AS (
         INSERT INTO ${S}.job_totals (queue, state, n) SELECT queue, state, n FROM agg WHERE state <> 'completed' ORDER BY queue
         ON CONFLICT (queue, state) DO UPDATE SET n = ${S}.job_totals.n + EXCLUDED.n
       )
       SELECT coalesce(sum(n), 0)::int AS n FROM agg`,
      [state, before, batch],
    );
    return rows[0]?.n ?? 0;
  };
  const foldMinutes = async (before: number): Promise<number> => {
    const rows = await db.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM ${S}.job_minutes WHERE (minute, queue, shard) IN (
           SELECT minute, queue, shard FROM ${S}.job_minutes WHERE minute < $1::bigint ORDER BY minute LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING minute, queue, completed, dead
       ), up AS (
         INSERT INTO ${S}.job_hours AS h (hour, queue, completed, dead)
         SELECT minute / 60, queue, sum(completed), sum(dead) FROM gone GROUP BY 1, 2 ORDER BY 1, 2
         ON CONFLICT (hour, queue) DO UPDATE SET completed = h.completed + EXCLUDED.completed, dead = h.dead + EXCLUDED.dead
       )
       SELECT count(*)::int AS n FROM gone`,
      [Math.floor(before / 60_000), batch],
    );
    return rows[0]?.n ?? 0;
  };
  const foldFailures = async (before: number): Promise<number> => {
    const rows = await db.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM ${S}.job_failures WHERE id IN (
           SELECT id FROM ${S}.job_failures WHERE at < $1::bigint ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING at, queue
       ), up AS (
         INSERT INTO ${S}.job_hours AS h (hour, queue, failed)
         SELECT at / 3600000, queue, count(*) FROM gone GROUP BY 1, 2 ORDER BY 1, 2
         ON CONFLICT (hour, queue) DO UPDATE SET failed = h.failed + EXCLUDED.failed
       )
       SELECT count(*)::int AS n FROM gone`,
      // Whole minutes, as the per-minute counts fold: one cut for both.
      [Math.floor(before / 60_000) * 60_000, batch],
    );
    return rows[0]?.n ?? 0;
  };
  const drain = async (step: (before: number) => Promise<number>, before: number | undefined): Promise<number> => {
    if (before === undefined) return 0;
    let total = 0;
    for (;;) {
      const n = await step(before);
      total += n;
      if (n < batch) return total;
    }
  };
  const completed = await drain((b) => pruneStep("completed", b), opts.completedBefore);
  const dead = await drain((b) => pruneStep("dead", b), opts.deadBefore);
  const cancelled = await drain((b) => pruneStep("cancelled", b), opts.cancelledBefore ?? opts.deadBefore);
  await drain(foldMinutes, opts.foldBefore);
  await drain(foldFailures, opts.foldBefore);
  return { completed, dead: dead + cancelled };
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
