/**
 * One timer for many due times: it is set for the earliest, and when it fires the owner
 * handles what is due and says what comes next. A worker uses it for its handlers'
 * timeouts and for retries coming due, instead of a timer per job: setting and clearing a
 * timer per job was a measurable share of a fast drain's CPU time.
 *
 * Its times are monotonic ms (`monotonicNow()`): on the wall clock, a step forward would
 * fire everything due within the step at the next firing (a handler timed out early), a
 * step back would hold everything off by the step.
 */
import { monotonicNow } from "../core/clock.js";

export class EarliestTimer {
  private timer: NodeJS.Timeout | undefined;
  private at = Infinity;

  /**
   * @param fire called at (or just after) the armed time with the current time; returns
   *   the next time to fire at, or Infinity for none.
   * @param slackMs fire this much late (default 0): a timer may fire a millisecond early,
   *   and some owners need the time to have passed for sure.
   */
  constructor(
    private readonly fire: (now: number) => number,
    private readonly slackMs = 0,
  ) {}

  /** Fires no later than `at` (monotonic ms). */
  arm(at: number): void {
    if (at >= this.at) return;
    clearTimeout(this.timer);
    this.at = at;
    this.timer = setTimeout(() => {
      this.at = Infinity;
      const next = this.fire(monotonicNow());
      if (next < Infinity) this.arm(next);
    }, Math.max(0, at - monotonicNow()) + this.slackMs);
    // Timers only ever run work that exists; they must not keep a process alive.
    this.timer.unref();
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = Infinity;
  }
}
