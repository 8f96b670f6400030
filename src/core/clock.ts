/** Time, injectable so tests can move it. */
export interface Clock {
  /** ms since the epoch */
  now(): number;
  /**
   * Optional: ms on a monotonic clock running beside `now()` (any zero). With it a store
   * can tell a step of the wall clock from time passing (`WallStepGuard`); without it,
   * every move of `now()` counts as time passing.
   */
  monotonic?(): number;
}

export const systemClock: Clock = { now: () => Date.now(), monotonic: () => monotonicNow() };

/**
 * A clock tests move by hand: `advance` is time passing (both readings move), `set` is a
 * step of the wall clock (only `now()` moves), as NTP or `date -s` makes one.
 */
export class ManualClock implements Clock {
  private mono = 0;
  constructor(private t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  monotonic(): number {
    return this.mono;
  }
  advance(ms: number): void {
    this.t += ms;
    this.mono += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}

/**
 * ms on the process's monotonic clock: it only moves forward, at a steady rate, whatever
 * is done to the wall clock (an NTP step, `date -s`). Intervals that judge liveness —
 * heartbeat ages, grace periods, restart windows — are measured on it; `Clock.now()` is
 * for the times that are shown or stored. Its zero is arbitrary (the process's start), so
 * its readings mean nothing outside the process.
 */
export function monotonicNow(): number {
  return performance.now();
}

/**
 * A reading for measuring intervals on `clock`: its monotonic one where it has it (a step
 * of the wall clock is then not taken for time passing), else its `now()`.
 */
export function intervalNow(clock: Clock): number {
  return clock.monotonic?.() ?? clock.now();
}

/**
 * How far the wall clock may wander from the monotonic one between two looks before it
 * counts as a step: NTP slews by at most 0.5 ms/s, so this is minutes of slewing, while
 * the steps that matter (leases are seconds long) are seconds.
 */
const STEP_TOLERANCE_MS = 1000;

/**
 * Deadlines stored as wall-clock times (a lease's `lease_until`) are judged by comparing
 * them with the wall clock now; a step forward of S makes every deadline set before it
 * look S closer, and a lease that its holder renews every third of its length look
 * expired. This guard watches a clock's `now()` against its `monotonic()`: after a step
 * forward of S, deadlines are judged against now − S until every deadline set before the
 * step has passed even so (the latest one stored when the step was seen), then against
 * now again. A deadline set after the step is judged up to S late meanwhile: late, never
 * early. A step back only delays expiries by itself, and gives back a pending discount.
 * Steps before the guard was made (the process's start) are not seen.
 */
export class WallStepGuard {
  private offset: number | null = null;
  private discount = 0;
  private holdUntil = -Infinity;

  constructor(private readonly clock: Clock) {
    if (clock.monotonic) this.offset = clock.now() - clock.monotonic();
  }

  /**
   * The time to judge stored deadlines against, the clock reading `now`; `latest` reads
   * the latest deadline stored (called only when a step forward was just seen).
   */
  cutoff(now: number, latest: () => number | null): number {
    if (this.offset === null || !this.clock.monotonic) return now;
    const offset = now - this.clock.monotonic();
    const step = offset - this.offset;
    this.offset = offset;
    if (step > STEP_TOLERANCE_MS) {
      this.discount += step;
      this.holdUntil = Math.max(this.holdUntil, latest() ?? -Infinity);
    } else if (step < -STEP_TOLERANCE_MS) {
      this.discount = Math.max(0, this.discount + step);
    }
    if (this.discount > 0 && now - this.discount > this.holdUntil) this.discount = 0;
    return now - this.discount;
  }
}
