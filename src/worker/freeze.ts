/**
 * A worker's own check that it was frozen. A process SIGSTOPped and continued, a VM paused
 * and resumed, or a loop blocked past `stallAfter` may already have been declared stalled:
 * its jobs may run elsewhere by now (freed after the supervisor killed a process it took
 * for this one, or taken over when a lease ran out). When its own monotonic clock shows a
 * gap longer than `stallAfter` between two looks, the worker must not finish or complete
 * what it held: it aborts its jobs and its process exits, for the supervisor to replace.
 *
 * The looks are a timer (`tickMs`) and the moments the worker acts on a job (a handler
 * starting or settling), each one `performance.now()`, tens of nanoseconds. After a wake-up
 * the timer runs before any handler timer that was due later than it, so a handler waiting
 * on a timer never gets to finish.
 */

/** The abort reason of the jobs of a process found frozen. */
export class FrozenError extends Error {
  constructor(gapMs: number) {
    super(`the worker process was frozen for ${gapMs} ms; its jobs may run elsewhere now`);
    this.name = "FrozenError";
  }
}

/** What `onFrozen` is told. */
export interface FrozenInfo {
  /** How long the process did not run, as its own monotonic clock saw it (ms). */
  gapMs: number;
  stallAfterMs: number;
}

/**
 * The timer's period: a quarter of `stallAfter`, at most 250 ms. A handler timer due
 * within that much of the freeze may fire before the timer after a wake-up; the check as
 * the handler settles still keeps its result from being recorded. Four cheap wake-ups a
 * second when idle.
 */
export const FREEZE_TICK_MAX_MS = 250;

/** Watches the process's own clock for gaps past `stallAfterMs`; see the file comment. */
export class FreezeWatch {
  private last = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private fired = false;

  constructor(
    private readonly stallAfterMs: number,
    private readonly onFrozen: (info: FrozenInfo) => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.last = performance.now();
    const tickMs = Math.max(10, Math.min(FREEZE_TICK_MAX_MS, this.stallAfterMs / 4));
    this.timer = setInterval(() => this.check(), tickMs);
    // It watches the process; it must not be what keeps it alive.
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** True once the process was found frozen (`onFrozen` is called the first time). */
  check(): boolean {
    if (this.fired) return true;
    const now = performance.now();
    const gapMs = now - this.last;
    this.last = now;
    if (gapMs <= this.stallAfterMs || !this.timer) return false;
    this.fired = true;
    this.stop();
    this.onFrozen({ gapMs: Math.round(gapMs), stallAfterMs: this.stallAfterMs });
    return true;
  }
}
