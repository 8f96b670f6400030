/**
 * Tick times of schedule triggers, computed from an instant the test gives (no clock is
 * faked): DST in Europe/Berlin (2026-03-29 02:00 skipped, 2026-10-25 02:00–03:00 passed
 * twice), `every` aligned to the epoch, and what is due after a downtime.
 */
import { describe, expect, it } from "vitest";
import { MAX_COUNTED_MISSES, dueTicks, isSecondPass, nextTick, parseSchedule, previousTick, scheduleProblem } from "../../src/core/schedule.js";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const at = (s: string) => Date.parse(s);

/** The first `n` ticks after `from`, as ISO strings. */
function ticks(schedule: string, tz: string | undefined, from: string, n: number): (string | null)[] {
  const spec = parseSchedule(schedule, tz);
  const out: (string | null)[] = [];
  let t: number | null = at(from);
  for (let i = 0; i < n && t !== null; i++) out.push(iso((t = nextTick(spec, t))));
  return out;
}

describe("cron ticks across DST (Europe/Berlin)", () => {
  it("a daily 02:30 does not run on the day 02:00–03:00 is skipped, and runs once on the day it repeats", () => {
    // 2026-03-28 02:30 CET = 01:30Z; 2026-03-29 has no 02:30; 2026-03-30 02:30 CEST = 00:30Z.
    expect(ticks("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3)).toEqual([
      "2026-03-28T01:30:00.000Z",
      "2026-03-30T00:30:00.000Z",
      "2026-03-31T00:30:00.000Z",
    ]);
    // 2026-10-25 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET): once, the first.
    expect(ticks("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 3)).toEqual([
      "2026-10-25T00:30:00.000Z",
      "2026-10-26T01:30:00.000Z",
      "2026-10-27T01:30:00.000Z",
    ]);
  });

  it("an every-30-minutes expression skips the missing hour and passes the repeated hour once", () => {
    // Spring: 01:30 CET (00:30Z), then 03:00 CEST (01:00Z): no 02:00, no 02:30.
    expect(ticks("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", 3)).toEqual([
      "2026-03-29T00:30:00.000Z",
      "2026-03-29T01:00:00.000Z",
      "2026-03-29T01:30:00.000Z",
    ]);
    // Autumn: 02:00 and 02:30 CEST (00:00Z, 00:30Z); the second pass (01:00Z, 01:30Z) makes
    // no tick; 03:00 CET is 02:00Z.
    expect(ticks("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:40:00Z", 3)).toEqual([
      "2026-10-25T00:00:00.000Z",
      "2026-10-25T00:30:00.000Z",
      "2026-10-25T02:00:00.000Z",
    ]);
  });

  it("the 03:00 daily of the docs runs every day, at 03:00 local on both sides of each change", () => {
    expect(ticks("0 3 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", 2)).toEqual(["2026-03-28T02:00:00.000Z", "2026-03-29T01:00:00.000Z"]);
    expect(ticks("0 3 * * *", "Europe/Berlin", "2026-10-24T00:00:00Z", 2)).toEqual(["2026-10-24T01:00:00.000Z", "2026-10-25T02:00:00.000Z"]);
  });

  it("counts the repeated hour only once when looking back too", () => {
    const spec = parseSchedule("*/30 * * * *", "Europe/Berlin");
    // Just after the second pass of 02:30 (01:30Z): the last tick is the first 02:30 (00:30Z).
    expect(iso(previousTick(spec, at("2026-10-25T01:45:00Z")))).toBe("2026-10-25T00:30:00.000Z");
    expect(iso(previousTick(spec, at("2026-10-25T02:00:00Z")))).toBe("2026-10-25T00:30:00.000Z");
    expect(iso(previousTick(spec, at("2026-10-25T02:00:01Z")))).toBe("2026-10-25T02:00:00.000Z");
    expect(isSecondPass(at("2026-10-25T01:30:00Z"), "Europe/Berlin")).toBe(true);
    expect(isSecondPass(at("2026-10-25T00:30:00Z"), "Europe/Berlin")).toBe(false);
    expect(isSecondPass(at("2026-10-25T02:30:00Z"), "Europe/Berlin")).toBe(false);
  });

  it("a 6-field expression ticks on seconds; another zone gets its own times", () => {
    expect(ticks("*/20 * * * * *", "UTC", "2026-01-01T00:00:05Z", 3)).toEqual([
      "2026-01-01T00:00:20.000Z",
      "2026-01-01T00:00:40.000Z",
      "2026-01-01T00:01:00.000Z",
    ]);
    expect(ticks("0 9 * * *", "America/New_York", "2026-03-07T00:00:00Z", 2)).toEqual(["2026-03-07T14:00:00.000Z", "2026-03-08T13:00:00.000Z"]);
  });
});

describe("every DURATION", () => {
  it("ticks at multiples of the duration since the epoch, whatever the starting instant", () => {
    expect(ticks("every 10s", undefined, "2026-01-01T00:00:03.250Z", 3)).toEqual([
      "2026-01-01T00:00:10.000Z",
      "2026-01-01T00:00:20.000Z",
      "2026-01-01T00:00:30.000Z",
    ]);
    expect(ticks("every 1h", undefined, "2026-01-01T00:00:00Z", 1)).toEqual(["2026-01-01T01:00:00.000Z"]);
    const spec = parseSchedule("every 7s");
    expect(nextTick(spec, 14_000)).toBe(21_000);
    expect(previousTick(spec, 21_000)).toBe(14_000);
    expect(previousTick(spec, 21_001)).toBe(21_000);
  });
});

describe("what is due", () => {
  const spec = parseSchedule("every 1m");
  const now = at("2026-05-01T12:00:30Z");
  const opts = { toleranceMs: 70_000, limit: 500 };

  it("while running, a late poll enqueues every tick within the tolerance", () => {
    // 65 s late: 12:00 and 12:01 are both younger than the tolerance.
    const due = dueTicks(spec, at("2026-05-01T11:59:00Z"), at("2026-05-01T12:01:05Z"), { ...opts, misfire: "skip" });
    expect(due.ticks.map(iso)).toEqual(["2026-05-01T12:00:00.000Z", "2026-05-01T12:01:00.000Z"]);
    expect(due).toMatchObject({ skipped: 0, more: false, through: at("2026-05-01T12:01:00Z") });
  });

  it("after a downtime, skip drops the missed ticks and once keeps the latest", () => {
    const through = at("2026-05-01T11:00:00Z");
    const skip = dueTicks(spec, through, now, { ...opts, misfire: "skip" });
    // 11:01 .. 11:59:00 were missed (older than 12:00:30 - 70 s = 11:59:20); 12:00 is due.
    expect(skip.ticks.map(iso)).toEqual(["2026-05-01T12:00:00.000Z"]);
    expect(skip.skipped).toBe(59);
    const once = dueTicks(spec, through, now, { ...opts, misfire: "once" });
    expect(once.ticks.map(iso)).toEqual(["2026-05-01T11:59:00.000Z", "2026-05-01T12:00:00.000Z"]);
    expect(once.skipped).toBe(58);
    // Down, then up between two ticks: skip moves the cursor past the missed ones anyway.
    const quiet = dueTicks(parseSchedule("every 5m"), through, at("2026-05-01T11:59:50Z"), { ...opts, misfire: "skip" });
    expect(quiet).toMatchObject({ ticks: [], skipped: 11, through: at("2026-05-01T11:55:00Z") });
  });

  it("a daily schedule down for a week: once enqueues only the latest missed day", () => {
    const daily = parseSchedule("0 3 * * *", "Europe/Berlin");
    const due = dueTicks(daily, at("2026-03-24T02:00:00Z"), at("2026-03-31T10:00:00Z"), { ...opts, misfire: "once" });
    expect(due.ticks.map(iso)).toEqual(["2026-03-31T01:00:00.000Z"]);
    expect(due).toMatchObject({ skipped: 6, capped: false });
  });

  it("stops counting the missed ticks of a cron expression at MAX_COUNTED_MISSES, and says so", () => {
    const perSecond = parseSchedule("* * * * * *", "Europe/Berlin");
    const now = at("2026-05-01T12:00:30Z");
    const due = dueTicks(perSecond, now - 86_400_000, now, { toleranceMs: 10_000, misfire: "skip", limit: 500 });
    expect(due).toMatchObject({ skipped: MAX_COUNTED_MISSES, capped: true });
    expect(due.ticks).toHaveLength(11); // 12:00:20 .. 12:00:30, within the tolerance
  });

  it("returns at most `limit` ticks and says more are due", () => {
    const due = dueTicks(parseSchedule("every 1s"), 0, 20_000, { toleranceMs: 60_000, misfire: "skip", limit: 5 });
    expect(due).toMatchObject({ ticks: [1000, 2000, 3000, 4000, 5000], more: true, through: 5000 });
  });
});

describe("schedule values", () => {
  it("says what is wrong with a bad expression, duration or zone", () => {
    expect(scheduleProblem("0 3 * * *")).toBeNull();
    expect(scheduleProblem("every 10s")).toBeNull();
    expect(scheduleProblem("61 3 * * *")).toMatch(/not a cron expression.*minute/);
    expect(scheduleProblem("0 3 * *")).toMatch(/not a cron expression/);
    expect(scheduleProblem("0 0 3 * * * 2030")).toMatch(/not a cron expression/);
    expect(scheduleProblem("2030-01-01T00:00:00")).toMatch(/not a cron expression/);
    expect(scheduleProblem("0 0 30 2 *")).toMatch(/never matches/);
    expect(scheduleProblem("every soon")).toMatch(/not a duration/);
    expect(scheduleProblem("every 200ms")).toMatch(/at most once a second/);
    expect(scheduleProblem("0 3 * * *", "Europe/Berln")).toMatch(/not a time zone/);
  });
});
