/**
 * Job reads (list, stats, report) and pruning, for the SQLite store. Unfinished jobs are in
 * `jobs`, finished ones in `job_history` (migration 10): a read that may want both asks both
 * (a UNION ALL, which SQLite merges in id order when each side comes from an index in it),
 * and one filtered by state asks only the table that can hold it.
 */
import { ROW_COLUMNS, type Prepare } from "./rows.js";
import { emptyCounts, JOB_STATES, type Job, type JobState, type JobFilter, type QueueCounts, type QueueReport } from "../../core/types.js";
import { jobTable, REPORT_DURATION_SAMPLE } from "../common.js";
import type { PruneOptions } from "../store.js";
import { jobSelectList } from "../rows.js";
import { assembleReport, reportWindow, type CountRow } from "../rollups.js";
import { toJob, type JobRow } from "./rows.js";

/** Default rows per prune transaction: short enough that no claim waits long behind it. */
const PRUNE_BATCH = 500;

/** The tables a read of jobs in `state` (any state when undefined) must look in. */
function tablesFor(state: JobState | undefined): string[] {
  if (state === undefined) return ["jobs", "job_history"];
  return [jobTable(state)];
}

export function listJobs(prep: Prepare, filter: JobFilter = {}): Job[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.queue !== undefined) (where.push("queue = ?"), args.push(filter.queue));
  if (filter.state !== undefined) (where.push("state = ?"), args.push(filter.state));
  if (filter.beforeId !== undefined) (where.push("id < ?"), args.push(filter.beforeId));
  if (filter.rootId !== undefined) (where.push("(root_id = ? OR id = ?)"), args.push(filter.rootId, filter.rootId));
  const limit = filter.limit ?? 50;
  // The preview length is a parameter (one named `@preview` wherever it is used).
  const cols = filter.preview === undefined ? ROW_COLUMNS : jobSelectList({ chars: "@preview", cut: (c) => `substr(${c}, 1, @preview) AS ${c}` });
  const tables = tablesFor(filter.state);
  const cond = where.length ? ` WHERE ${where.join(" AND ")}` : "";
  const sql = `${tables.map((t) => `SELECT ${cols} FROM ${t}${cond}`).join(" UNION ALL ")} ORDER BY id DESC LIMIT ?`;
  // Each side takes the filter's arguments; a negative LIMIT is no limit in SQLite, and
  // the limit is a parameter so the shapes stay few.
  const all = [...tables.flatMap(() => args), limit > 0 ? Math.trunc(limit) : -1];
  const stmt = prep(sql);
  const rows = filter.preview === undefined ? stmt.all(...all) : stmt.all(...all, { preview: Math.max(0, Math.trunc(filter.preview)) });
  return (rows as JobRow[]).map(toJob);
}

/** Jobs of pipeline run `rootId` (the root included) on `queue`, counted up to `atMost`. */
export function countRounds(prep: Prepare, rootId: number, queue: string, atMost: number): number {
  return prep(
    `SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE root_id = @root AND queue = @queue
          UNION ALL SELECT 1 FROM job_history WHERE root_id = @root AND queue = @queue LIMIT @atMost))
      + (SELECT count(*) FROM jobs WHERE id = @root AND queue = @queue)
      + (SELECT count(*) FROM job_history WHERE id = @root AND queue = @queue)`,
  )
    .pluck()
    .get({ root: rootId, queue, atMost: Math.max(0, Math.trunc(atMost)) }) as number;
}

export function jobStats(prep: Prepare): Record<string, QueueCounts> {
  const out: Record<string, QueueCounts> = {};
  const at = (q: string) => (out[q] ??= emptyCounts());
  // Each part read from its own index (see migrations 2 and 10): waiting, active, scheduled
  // and failed jobs from `jobs`, dead and cancelled ones from `job_history` (its jobs_rest,
  // whose predicate the WHERE repeats so it is used). Completed jobs are counted in
  // queue_totals as they complete, and survive pruning there.
  const rows = prep(
      `SELECT queue, 'waiting' AS state, count(*) AS n FROM jobs WHERE state = 'waiting' GROUP BY queue
       UNION ALL
       SELECT queue, 'active', count(*) FROM jobs WHERE state = 'active' GROUP BY queue
       UNION ALL
       SELECT queue, state, count(*) FROM jobs WHERE state IN ('scheduled', 'failed') GROUP BY queue, state
       UNION ALL
       SELECT queue, state, count(*) FROM job_history WHERE state IN ('scheduled', 'failed', 'dead', 'cancelled')
       GROUP BY queue, state`,
    )
    .all() as {
    queue: string;
    state: string;
    n: number;
  }[];
  for (const r of rows) {
    if ((JOB_STATES as string[]).includes(r.state)) at(r.queue)[r.state as keyof QueueCounts] += r.n;
  }
  const totals = prep("SELECT queue, completed, dead, cancelled FROM queue_totals").all() as {
    queue: string;
    completed: number;
    dead: number;
    cancelled: number;
  }[];
  for (const t of totals) {
    const c = at(t.queue);
    c.completed += t.completed;
    c.dead += t.dead;
    c.cancelled += t.cancelled;
  }
  return out;
}

/**
 * Per queue, the age of its oldest due waiting job. Waiting jobs are read from the claim
 * index (queue, priority DESC, run_at, id) by seeks, not a scan: for each queue and each
 * priority in it, the first entry has the smallest run_at. That is a few seeks per
 * (queue, priority) pair however long the backlog. Scheduled and failed jobs that came due
 * but were not yet promoted are read from `jobs_due` (only due ones: few).
 */
export function oldestWaiting(prep: Prepare, now: number): Record<string, number> {
  const out: Record<string, number> = {};
  const seen = (queue: string, t: number) => {
    out[queue] = Math.max(out[queue] ?? 0, Math.max(0, now - t));
  };
  const firstQueue = prep(
    `SELECT queue, priority, run_at FROM jobs WHERE state = 'waiting' AND queue > ?
     ORDER BY queue, priority DESC, run_at LIMIT 1`,
  ).raw();
  const nextPriority = prep(
    `SELECT priority, run_at FROM jobs WHERE state = 'waiting' AND queue = ? AND priority < ?
     ORDER BY priority DESC, run_at LIMIT 1`,
  ).raw();
  let q = firstQueue.get("") as [string, number, number] | undefined;
  while (q) {
    const [queue] = q;
    let p: [number, number] | undefined = [q[1], q[2]];
    while (p) {
      seen(queue, p[1]);
      p = nextPriority.get(queue, p[0]) as [number, number] | undefined;
    }
    q = firstQueue.get(queue) as [string, number, number] | undefined;
  }
  const due = prep(
    `SELECT queue, min(run_at) AS t FROM jobs WHERE state IN ('scheduled', 'failed') AND run_at <= ? GROUP BY queue`,
  ).all(now) as { queue: string; t: number }[];
  for (const r of due) seen(r.queue, r.t);
  return out;
}

/** Run times for p50/p95: the newest completions in the window, through `jobs_finished` (about 15 ms). */
export const DURATION_SAMPLE = REPORT_DURATION_SAMPLE;

/**
 * Per queue: completed and dead since `since`, failed attempts recorded since, p50/p95 run
 * time (of the newest DURATION_SAMPLE completions). Counts come from the hour, minute and
 * failure rows (see rollups.ts), and from the jobs themselves for the part-minute at the
 * window's start.
 */
export function jobReport(prep: Prepare, since: number): QueueReport[] {
  const w = reportWindow(since);
  const counts = prep(
    `SELECT queue, sum(completed) AS completed, sum(dead) AS dead, sum(failed) AS failed FROM job_hours
       WHERE hour >= @fromHour GROUP BY queue
     UNION ALL
     SELECT queue, sum(completed), sum(dead), 0 FROM job_minutes WHERE minute >= @fromMinute GROUP BY queue
     UNION ALL
     SELECT queue, sum(state = 'completed'), sum(state = 'dead'), 0 FROM job_history
       WHERE state IN ('completed', 'dead') AND finished_at >= @since AND finished_at < @headEnd GROUP BY queue
     UNION ALL
     SELECT queue, 0, 0, count(*) FROM job_failures WHERE at >= @since GROUP BY queue`,
  ).all({ ...w, since }) as CountRow[];
  const newest = prep(
    `SELECT queue, finished_at - coalesce(started_at, finished_at) AS ms FROM job_history
     WHERE state = 'completed' AND finished_at >= ? ORDER BY finished_at DESC LIMIT ?`,
  )
    .raw()
    .iterate(since, DURATION_SAMPLE) as IterableIterator<[string, number]>;
  return assembleReport(counts, newest);
}

/**
 * A pause between two prune batches. Each batch is one short transaction; between them the
 * event loop turns (a worker's heartbeat, the triggers process's polls) and other
 * processes waiting for the write lock can take it — they poll for it every few ms, so a
 * lock retaken at once would keep them out.
 */
const PRUNE_PAUSE_MS = 2;

/**
 * Deletes old finished jobs from `job_history` in batches, one short transaction each (run
 * by `write`, which waits for the lock without blocking), adding what it deletes to
 * `queue_totals` in the same transaction so counts survive, and pausing between batches.
 */
export async function pruneJobs(
  prep: Prepare,
  opts: PruneOptions,
  write: (step: () => number) => number | Promise<number>,
): Promise<{ completed: number; dead: number }> {
  const batch = Math.max(1, opts.batch ?? PRUNE_BATCH);
  const pick = prep(
    `SELECT id, queue, state FROM job_history WHERE state = ? AND finished_at IS NOT NULL AND finished_at < ? LIMIT ?`,
  );
  const del = prep("DELETE FROM job_history WHERE id = ?");
  // No id is handed out again (jobs-sql.ts, NEXT_ID): the largest one pruned is kept.
  const floor = prep(
    `INSERT INTO vigil_meta (name, value) VALUES ('job_id_floor', ?)
     ON CONFLICT(name) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))`,
  );
  const add = prep(
    `INSERT INTO queue_totals (queue, completed, dead, cancelled) VALUES (@queue, @completed, @dead, @cancelled)
     ON CONFLICT(queue) DO UPDATE SET completed = completed + excluded.completed,
       dead = dead + excluded.dead, cancelled = cancelled + excluded.cancelled`,
  );
  const step = (state: string, before: number): number => {
    const rows = pick.all(state, before, batch) as { id: number; queue: string; state: string }[];
    if (rows.length > 0) floor.run(Math.max(...rows.map((r) => r.id)));
    const perQueue = new Map<string, { completed: number; dead: number; cancelled: number }>();
    for (const r of rows) {
      del.run(r.id);
      let t = perQueue.get(r.queue);
      if (!t) perQueue.set(r.queue, (t = { completed: 0, dead: 0, cancelled: 0 }));
      t[r.state as "completed" | "dead" | "cancelled"]++;
    }
    // Completed jobs were counted when they completed; only dead and cancelled move here.
    for (const [queue, t] of perQueue) add.run({ queue, ...t, completed: 0 });
    return rows.length;
  };
  const drain = async (one: (before: number) => number, before: number | undefined): Promise<number> => {
    if (before === undefined) return 0;
    let total = 0;
    for (;;) {
      const n = await write(() => one(before));
      total += n;
      if (n < batch) return total;
      await new Promise((r) => setTimeout(r, PRUNE_PAUSE_MS));
    }
  };
  const completed = await drain((b) => step("completed", b), opts.completedBefore);
  const dead = await drain((b) => step("dead", b), opts.deadBefore);
  const cancelled = await drain((b) => step("cancelled", b), opts.cancelledBefore ?? opts.deadBefore);
  const fold = foldSteps(prep, batch);
  await drain(fold.minutes, opts.foldBefore);
  await drain(fold.failures, opts.foldBefore);
  return { completed, dead: dead + cancelled };
}

/**
 * One batch each of folding per-minute counts, and failed attempts, from before a time
 * into `job_hours` (see rollups.ts); each returns how many rows it folded.
 */
function foldSteps(prep: Prepare, batch: number): { minutes: (before: number) => number; failures: (before: number) => number } {
  const pickMinutes = prep(`SELECT minute, queue, completed, dead FROM job_minutes WHERE minute < ? ORDER BY minute LIMIT ?`);
  const dropMinute = prep("DELETE FROM job_minutes WHERE minute = ? AND queue = ?");
  const pickFailures = prep(`SELECT id, at, queue FROM job_failures WHERE at < ? ORDER BY at LIMIT ?`);
  const dropFailure = prep("DELETE FROM job_failures WHERE id = ?");
  const addHour = prep(
    `INSERT INTO job_hours (hour, queue, completed, dead, failed) VALUES (@hour, @queue, @completed, @dead, @failed)
     ON CONFLICT(hour, queue) DO UPDATE SET completed = completed + excluded.completed,
       dead = dead + excluded.dead, failed = failed + excluded.failed`,
  );
  const hours = () => new Map<string, { hour: number; queue: string; completed: number; dead: number; failed: number }>();
  const at = (m: ReturnType<typeof hours>, hour: number, queue: string) => {
    const k = `${hour}\u0000${queue}`;
    let h = m.get(k);
    if (!h) m.set(k, (h = { hour, queue, completed: 0, dead: 0, failed: 0 }));
    return h;
  };
  return {
    minutes(before) {
      const rows = pickMinutes.all(Math.floor(before / 60_000), batch) as { minute: number; queue: string; completed: number; dead: number }[];
      const m = hours();
      for (const r of rows) {
        dropMinute.run(r.minute, r.queue);
        const h = at(m, Math.floor(r.minute / 60), r.queue);
        h.completed += r.completed;
        h.dead += r.dead;
      }
      for (const h of m.values()) addHour.run(h);
      return rows.length;
    },
    failures(before) {
      // Whole minutes, as the per-minute counts fold: one cut for both.
      const rows = pickFailures.all(Math.floor(before / 60_000) * 60_000, batch) as { id: number; at: number; queue: string }[];
      const m = hours();
      for (const r of rows) {
        dropFailure.run(r.id);
        at(m, Math.floor(r.at / 3_600_000), r.queue).failed++;
      }
      for (const h of m.values()) addHour.run(h);
      return rows.length;
    },
  };
}
