/** Time, injectable so tests can move it. */
export interface Clock {
  /** ms since the epoch */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor(private t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
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
