/**
 * What both stores' report() shares: the parts a window is read from, and how the rows
 * read become the report.
 *
 * Each store counts completions and deaths per minute and queue (`job_minutes`) and keeps
 * one row per failed attempt (`job_failures`), written with the state change. Retention
 * folds minutes and failures older than MINUTES_KEPT_MS into one row per hour and queue
 * (`job_hours`), so a 30-day report reads about 720 rows per queue, not 43,200. A window
 * is then read as: whole hours already folded, the minutes not yet folded, and the jobs
 * themselves for the part-minute at its start. A window starting inside an hour that has
 * been folded leaves out that hour's folded counts (the window then starts, in effect, at
 * the next hour): only windows reaching back more than MINUTES_KEPT_MS are affected, by
 * at most an hour at their far end.
 */
import type { QueueReport } from "../core/types.js";

/** Per-minute counts and failures are kept this long before folding into hours (2 days). */
export const MINUTES_KEPT_MS = 2 * 86_400_000;

/** Where a report window starting at `since` (ms) is read from. */
export interface ReportWindow {
  /** Folded rows: hours from this one on (`hour` = ms / 3,600,000). */
  fromHour: number;
  /** Per-minute rows from this minute on (`minute` = ms / 60,000). */
  fromMinute: number;
  /** The jobs finished in [since, headEnd) are counted from the jobs themselves. */
  headEnd: number;
}

export function reportWindow(since: number): ReportWindow {
  const fromMinute = Math.ceil(since / 60_000);
  return { fromHour: Math.ceil(since / 3_600_000), fromMinute, headEnd: fromMinute * 60_000 };
}

/** Counts of one queue from one source (hours, minutes, the head's jobs, failures). */
export interface CountRow {
  queue: string;
  completed?: number | null;
  dead?: number | null;
  failed?: number | null;
  /** Run-time percentiles when the store computed them itself (else from `durations`). */
  p50Ms?: number | null;
  p95Ms?: number | null;
}

/** Nearest rank. */
function percentile(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * The report from count rows (summed per queue) and a sample of run times (`[queue, ms]`,
 * for p50/p95), sorted by queue.
 */
export function assembleReport(counts: Iterable<CountRow>, durations: Iterable<readonly [string, number]>): QueueReport[] {
  const byQueue = new Map<string, QueueReport>();
  const at = (queue: string) => {
    let r = byQueue.get(queue);
    if (!r) byQueue.set(queue, (r = { queue, completed: 0, dead: 0, failedAttempts: 0, p50Ms: null, p95Ms: null }));
    return r;
  };
  for (const c of counts) {
    const r = at(c.queue);
    r.completed += Number(c.completed ?? 0);
    r.dead += Number(c.dead ?? 0);
    r.failedAttempts += Number(c.failed ?? 0);
    if (c.p50Ms != null) r.p50Ms = Number(c.p50Ms);
    if (c.p95Ms != null) r.p95Ms = Number(c.p95Ms);
  }
  const times = new Map<string, number[]>();
  for (const [queue, ms] of durations) {
    let d = times.get(queue);
    if (!d) times.set(queue, (d = []));
    d.push(Number(ms));
  }
  for (const [queue, list] of times) {
    const sorted = Float64Array.from(list).sort();
    const r = at(queue);
    r.p50Ms = percentile(sorted, 50);
    r.p95Ms = percentile(sorted, 95);
  }
  return [...byQueue.values()].sort((a, b) => a.queue.localeCompare(b.queue));
}
