/**
 * When to start a process again after it died or was killed. Exponential backoff with
 * jitter (RESTART_BACKOFF: 100 ms doubling to 30 s) keeps a failing program from
 * spinning; the count resets once a process stayed up `minUptime`. More than
 * `maxRestarts.count` restarts inside `maxRestarts.windowMs` means the service is
 * crash-looping: it is retried every `crashLoopRetryMs`, never given up on.
 */
import { RESTART_BACKOFF, backoffDelay, type BackoffPolicy } from "../core/backoff.js";

export interface RestartPolicyOptions {
  /** Up this long (ms), the backoff starts over (default 30 s). */
  minUptimeMs: number;
  /** More restarts than `count` within `windowMs` means crash-looping (default 10 / 5 m). */
  maxRestarts: { count: number; windowMs: number };
  /** While crash-looping, the delay before each retry in ms (default 5 m). */
  crashLoopRetryMs: number;
  backoff?: BackoffPolicy;
  random?: () => number;
}

export interface RestartDecision {
  /** Wait this long (ms) before starting the process again. */
  delayMs: number;
  crashLooping: boolean;
  /** Restarts inside the current window, this one included. */
  recentRestarts: number;
}

export class RestartPolicy {
  private consecutive = 0;
  private recent: number[] = [];

  constructor(private readonly opts: RestartPolicyOptions) {}

  /**
   * Decides the next start after an unplanned exit at `now` of a process up `uptimeMs`.
   * `now` is monotonic ms (`monotonicNow()`): the restart window is an interval, and a
   * wall clock stepped back would keep old restarts inside it, one stepped on drop them.
   */
  next(now: number, uptimeMs: number): RestartDecision {
    if (uptimeMs >= this.opts.minUptimeMs) this.consecutive = 0;
    this.consecutive++;
    const { count, windowMs } = this.opts.maxRestarts;
    this.recent = this.recent.filter((t) => now - t < windowMs);
    this.recent.push(now);
    if (this.recent.length > count) {
      return { delayMs: this.opts.crashLoopRetryMs, crashLooping: true, recentRestarts: this.recent.length };
    }
    const delayMs = backoffDelay(this.opts.backoff ?? RESTART_BACKOFF, this.consecutive, this.opts.random);
    return { delayMs, crashLooping: false, recentRestarts: this.recent.length };
  }

  /** A deliberate restart (a person asked, memory limit) starts the backoff over. */
  reset(): void {
    this.consecutive = 0;
  }
}
