/**
 * Exponential backoff with "full jitter" on the upper half: the n-th delay is drawn from
 * [d/2, d] where d = min(max, base * 2^(n-1)). Jitter keeps many jobs (or many restarting
 * processes) that failed together from retrying in lockstep; keeping the lower half means
 * a delay never collapses to ~0, which would turn a retry into a tight loop.
 */
export interface BackoffPolicy {
  /** First delay in ms (default for jobs: 1 s; for restarts: 100 ms). */
  baseMs: number;
  /** Ceiling in ms (default for jobs: 5 min; for restarts: 30 s). */
  maxMs: number;
}

export function backoffDelay(policy: BackoffPolicy, n: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, Math.min(n - 1, 40)));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

export const JOB_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 5 * 60_000 };
export const RESTART_BACKOFF: BackoffPolicy = { baseMs: 100, maxMs: 30_000 };
