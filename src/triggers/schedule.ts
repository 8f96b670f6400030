/**
 * `schedule`: a job per tick of a cron expression or of `every DURATION`
 * (`src/core/schedule.ts` computes the ticks). The cursor is the last tick dealt with; the
 * jobs of the ticks due and the cursor past them are one commit, and each job's key is
 * `schedule:NAME:<tick time, ISO UTC>`, so a tick becomes exactly one job across restarts,
 * crashes and hosts.
 *
 * A tick is late, not missed, while it is younger than the tolerance (`toleranceMs`): a
 * poll delayed by a busy process, or another process taking the trigger over, still
 * enqueues every tick. Older ticks were missed while no process ran the trigger: `misfire:
 * skip` (default) drops them, `once` enqueues the latest of them. A new trigger (no
 * cursor) starts from now and enqueues nothing for the past.
 */
import type { EnqueueItem } from "../core/types.js";
import { dueTicks, nextTick, type ScheduleSpec } from "../core/schedule.js";
import type { PollContext, PollOutcome, ScheduleCursor, SourceOptions, TriggerSource } from "./types.js";

export interface ScheduleOptions extends SourceOptions {
  spec: ScheduleSpec;
  misfire: "skip" | "once";
  /** Merged into each job's payload, under `scheduledFor`. */
  payload?: Record<string, unknown>;
  /** How long the trigger's leader lock outlives its holder (the runner's `lockTtl`). */
  lockTtlMs: number;
}

/**
 * The longest a schedule trigger sleeps between two looks at the clock: its period, at
 * most 30 s. It wakes at each tick anyway; this bound is how soon a stop is seen, and how
 * often a process that does not hold the trigger's lock tries to take it.
 */
export const MAX_SCHEDULE_SLEEP_MS = 30_000;

/**
 * Shortest tolerance (10 s): a process stalled for a few seconds (a long GC, a busy
 * machine) and a restart by the supervisor both stay within it.
 */
export const MIN_TOLERANCE_MS = 10_000;

/** Ticks per commit: a catch-up within the tolerance is a few dozen at most. */
const MAX_TICKS_PER_COMMIT = 500;

/** How often a schedule trigger looks at the clock at least (see MAX_SCHEDULE_SLEEP_MS). */
export function scheduleEvery(spec: ScheduleSpec): number {
  return spec.kind === "every" ? Math.min(spec.everyMs, MAX_SCHEDULE_SLEEP_MS) : MAX_SCHEDULE_SLEEP_MS;
}

/**
 * How old a tick may be and still count as late rather than missed: two poll intervals
 * plus one lock lifetime (the longest another process needs to take over a trigger whose
 * leader died), and at least MIN_TOLERANCE_MS.
 */
export function scheduleTolerance(everyMs: number, lockTtlMs: number): number {
  return Math.max(MIN_TOLERANCE_MS, 2 * everyMs + lockTtlMs);
}

export class ScheduleSource implements TriggerSource {
  readonly kind = "schedule";
  readonly every: number;
  readonly toleranceMs: number;
  private lastTickAt: number | null = null;
  /** Ticks this process skipped as missed (misfire), for status. */
  private missed = 0;

  constructor(private readonly opts: ScheduleOptions) {
    this.every = scheduleEvery(opts.spec);
    this.toleranceMs = scheduleTolerance(this.every, opts.lockTtlMs);
  }

  async poll(ctx: PollContext): Promise<PollOutcome> {
    const now = ctx.now();
    const cursor = ctx.cursor?.kind === "schedule" ? ctx.cursor : null;
    if (!cursor) {
      // A new trigger: nothing for the past. Committed, so that a tick due before the next
      // poll is enqueued even if another process makes that poll.
      const ok = await ctx.commit({ jobs: [], rejected: [], cursor: { kind: "schedule", through: now, lastTick: null } });
      return ok ? this.after(now, now) : { more: true };
    }
    this.lastTickAt = cursor.lastTick;
    const due = dueTicks(this.opts.spec, cursor.through, now, {
      toleranceMs: this.toleranceMs,
      misfire: this.opts.misfire,
      limit: MAX_TICKS_PER_COMMIT,
    });
    if (due.skipped > 0) {
      ctx.warn(`${due.skipped}${due.capped ? " or more" : ""} tick(s) missed while the trigger was not running were skipped (misfire: ${this.opts.misfire})`);
    }
    if (due.through !== cursor.through) {
      const last = due.ticks.length > 0 ? due.ticks[due.ticks.length - 1]! : cursor.lastTick;
      const next: ScheduleCursor = { kind: "schedule", through: due.through, lastTick: last };
      const lagMs = due.ticks.length > 0 ? Math.max(0, ctx.now() - due.ticks[0]!) : null;
      if (!(await ctx.commit({ jobs: due.ticks.map((t) => this.job(t)), rejected: [], cursor: next, lagMs }))) {
        return { more: true };
      }
      this.lastTickAt = last;
      this.missed += due.skipped;
    }
    if (due.more) return { more: true };
    // Every tick up to `now` is dealt with; one that came due during the commit is next.
    return this.after(Math.max(due.through, now), ctx.now());
  }

  /** Sleeps until the first tick after `done` (the runner caps the sleep at `every`). */
  private after(done: number, now: number): PollOutcome {
    const next = nextTick(this.opts.spec, done);
    return next === null ? { more: false } : { more: false, wakeInMs: Math.max(0, next - now) };
  }

  /** For status: the last tick enqueued (as far as this process knows), the next one, and ticks skipped as missed. */
  describe(now: number): { lastTickAt: number | null; nextTickAt: number | null; missedTicks: number } {
    return { lastTickAt: this.lastTickAt, nextTickAt: nextTick(this.opts.spec, now), missedTicks: this.missed };
  }

  private job(tick: number): EnqueueItem {
    const { name, queue, priority, maxAttempts, payload } = this.opts;
    const at = new Date(tick).toISOString();
    return {
      queue,
      payload: { ...payload, scheduledFor: at },
      key: `schedule:${name}:${at}`,
      source: { trigger: name },
      ...(priority !== undefined ? { priority } : {}),
      ...(maxAttempts !== undefined ? { maxAttempts } : {}),
    };
  }

  async close(): Promise<void> {}
}
