/**
 * Tick times of a `schedule` trigger, with no I/O and no clock of its own: every function
 * takes the instant it reasons about, so tests pass any "now" they like.
 *
 * A schedule is a cron expression (5 fields, or 6 with seconds first; croner parses it
 * and knows the time zones) or `every DURATION`, whose ticks are the multiples of the
 * duration since the Unix epoch, so every host computes the same tick times.
 *
 * Daylight saving time follows the zone's rules as a wall clock does: a local time the
 * clock skips (spring forward) never comes, so it makes no tick; a local time the clock
 * passes twice (fall back) makes one tick, at its first pass. Croner alone moves a
 * fixed-time job out of the gap (`30 2 * * *` at 03:00) and fires interval jobs
 * (`*\/15 * * * *`) on both passes; `acceptTick` removes both, so every expression
 * behaves the same way.
 */
import { Cron } from "croner";
import { parseDuration } from "./duration.js";

/** A parsed `schedule`: a fixed period in ms, or a cron expression in a zone. */
export type ScheduleSpec =
  | { kind: "every"; everyMs: number }
  | { kind: "cron"; cron: Cron; expression: string; tz: string | undefined };

/** The shortest `every`: a faster cadence is a worker's loop, not a schedule. */
export const MIN_EVERY_MS = 1000;

const EVERY = /^every\s+(.+)$/i;

/**
 * What is wrong with a `schedule` value (and its `tz`), as a sentence to show after the
 * key path; null when it is valid.
 */
export function scheduleProblem(text: string, tz?: string): string | null {
  try {
    parseSchedule(text, tz);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Whether `tz` names a time zone this Node knows (IANA names like `Europe/Berlin`, or `UTC`). */
export function isTimeZone(tz: string): boolean {
  if (tz.trim() === "") return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Parses a `schedule` value; throws an Error whose message says what to write instead. */
export function parseSchedule(text: string, tz?: string): ScheduleSpec {
  const s = text.trim();
  const every = EVERY.exec(s);
  if (every) {
    const ms = parseDuration(every[1]!.trim());
    if (ms === undefined) throw new Error(`"${every[1]}" is not a duration; write it like \`every 10s\`, \`every 5m\` or \`every 1h\``);
    if (ms < MIN_EVERY_MS) throw new Error(`\`every ${every[1]}\` is too often; a schedule ticks at most once a second`);
    return { kind: "every", everyMs: ms };
  }
  if (tz !== undefined && !isTimeZone(tz)) {
    throw new Error(`"${tz}" is not a time zone; use an IANA name like Europe/Berlin, America/New_York or UTC`);
  }
  // croner reads a string with ":" as a one-off date, which is not a schedule.
  if (s.includes(":")) throw new Error(`"${s}" is not a cron expression; write 5 fields (m h dom mon dow) or 6 (s m h dom mon dow), or \`every DURATION\``);
  let cron: Cron;
  try {
    cron = new Cron(s, { paused: true, mode: "5-or-6-parts", ...(tz !== undefined ? { timezone: tz } : {}) });
  } catch (err) {
    const why = (err as Error).message.replace(/^CronPattern:\s*/, "");
    throw new Error(`"${s}" is not a cron expression (${why}); write 5 fields (m h dom mon dow) or 6 (s m h dom mon dow), or \`every DURATION\``);
  }
  if (nextTick({ kind: "cron", cron, expression: s, tz }, Date.UTC(2000, 0, 1)) === null) {
    throw new Error(`"${s}" never matches a date; check the day and month fields`);
  }
  return { kind: "cron", cron, expression: s, tz };
}

/** How many croner candidates one `nextTick` looks at before giving up (DST rejects at most a few). */
const MAX_CANDIDATES = 1000;

/** The first tick strictly after `afterMs`, or null when the schedule has none. */
export function nextTick(spec: ScheduleSpec, afterMs: number): number | null {
  if (spec.kind === "every") return (Math.floor(afterMs / spec.everyMs) + 1) * spec.everyMs;
  let from = new Date(afterMs);
  for (let i = 0; i < MAX_CANDIDATES; i++) {
    const next = spec.cron.nextRun(from);
    if (!next) return null;
    if (next.getTime() <= afterMs) {
      from = new Date(afterMs + 1000); // never go back; croner works in whole seconds
      continue;
    }
    if (acceptTick(spec, next)) return next.getTime();
    from = next;
  }
  return null;
}

/** The last tick strictly before `beforeMs`, or null when there is none. */
export function previousTick(spec: ScheduleSpec, beforeMs: number): number | null {
  if (spec.kind === "every") return (Math.ceil(beforeMs / spec.everyMs) - 1) * spec.everyMs;
  let ref = new Date(beforeMs);
  for (let i = 0; i < MAX_CANDIDATES; i++) {
    const [prev] = spec.cron.previousRuns(1, ref);
    if (!prev) return null;
    if (prev.getTime() < beforeMs && acceptTick(spec, prev)) return prev.getTime();
    ref = new Date(Math.min(prev.getTime(), beforeMs - 1));
  }
  return null;
}

/**
 * Whether a time croner proposes is a tick: its local time must match the expression
 * (not a time moved out of a DST gap) and be the first pass of that local time (not the
 * repeat of a fall-back hour).
 */
function acceptTick(spec: Extract<ScheduleSpec, { kind: "cron" }>, at: Date): boolean {
  if (!spec.cron.match(at)) return false;
  return !isSecondPass(at.getTime(), spec.tz);
}

/**
 * Whether the local time at `ms` already happened earlier (the clock went back since).
 * DST changes are never closer than a few hours apart, so the offset 3 h before tells by
 * how much the clock went back, if it did.
 */
export function isSecondPass(ms: number, tz: string | undefined): boolean {
  const back = offsetAt(ms - 3 * 3_600_000, tz) - offsetAt(ms, tz);
  if (back <= 0) return false;
  return localMs(ms - back, tz) === localMs(ms, tz);
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** The local wall-clock time at `ms` in `tz`, read as if it were UTC (ms, whole seconds). */
function localMs(ms: number, tz: string | undefined): number {
  const key = tz ?? "";
  let f = formats.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      ...(tz !== undefined ? { timeZone: tz } : {}),
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formats.set(key, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(ms))) if (part.type !== "literal") p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
}

/** The zone's offset from UTC at `ms`, in ms (CEST: +7,200,000). */
function offsetAt(ms: number, tz: string | undefined): number {
  const whole = Math.floor(ms / 1000) * 1000;
  return localMs(whole, tz) - whole;
}

/** What to enqueue at `nowMs`: see `dueTicks`. */
export interface DueTicks {
  /** Tick times (ms) to make jobs for, oldest first. */
  ticks: number[];
  /**
   * Ticks passed over as missed (older than the tolerance), not counting one enqueued by
   * `once`; for a cron expression counted up to MAX_COUNTED_MISSES.
   */
  skipped: number;
  /** `skipped` stopped counting at MAX_COUNTED_MISSES: more were missed. */
  capped: boolean;
  /** The cursor after these ticks: the last tick returned, or the last one missed. */
  through: number;
  /** More ticks are due than `limit` allowed: call again at once. */
  more: boolean;
}

/**
 * The ticks due at `nowMs` for a trigger whose cursor says every tick up to `throughMs`
 * is done. A tick older than `nowMs - toleranceMs` is missed (the trigger was down, not
 * merely late): `skip` drops missed ticks, `once` keeps the latest of them. Ticks within
 * the tolerance are all due. At most `limit` ticks are returned.
 */
export function dueTicks(
  spec: ScheduleSpec,
  throughMs: number,
  nowMs: number,
  opts: { toleranceMs: number; misfire: "skip" | "once"; limit: number },
): DueTicks {
  const cutoff = nowMs - opts.toleranceMs;
  const ticks: number[] = [];
  let skipped = 0;
  let capped = false;
  let from = throughMs;
  let through = throughMs;
  if (throughMs < cutoff - 1) {
    const missed = previousTick(spec, cutoff);
    if (missed !== null && missed > throughMs) {
      skipped = countMissed(spec, throughMs, missed);
      capped = spec.kind === "cron" && skipped >= MAX_COUNTED_MISSES;
      through = missed;
      if (opts.misfire === "once") {
        ticks.push(missed);
        skipped--;
      }
    }
    from = cutoff - 1; // the next tick found is at or after the cutoff
  }
  for (let t = nextTick(spec, from); t !== null && t <= nowMs; t = nextTick(spec, t)) {
    if (ticks.length >= opts.limit) return { ticks, skipped, capped, through, more: true };
    ticks.push(t);
    through = t;
  }
  return { ticks, skipped, capped, through, more: false };
}

/**
 * How many missed ticks of a cron expression are counted, at most. Each costs about a
 * third of a millisecond (croner and the zone's clock), so a per-second expression after a
 * month down blocks the process for ~0.3 s rather than seconds.
 */
export const MAX_COUNTED_MISSES = 1000;

/** Ticks in (afterMs, lastMs], counted exactly for `every` and up to MAX_COUNTED_MISSES for cron. */
function countMissed(spec: ScheduleSpec, afterMs: number, lastMs: number): number {
  if (spec.kind === "every") return Math.floor(lastMs / spec.everyMs) - Math.floor(afterMs / spec.everyMs);
  let n = 0;
  for (let t = nextTick(spec, afterMs); t !== null && t <= lastMs && n < MAX_COUNTED_MISSES; t = nextTick(spec, t)) n++;
  return n;
}
