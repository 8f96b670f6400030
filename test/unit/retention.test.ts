/**
 * Retention against a real SQLite store with a hand-moved clock: old completed and dead
 * jobs go, young ones stay, and the report's totals stay right after pruning.
 */
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { buildReport } from "../../src/health/report.js";
import { RETENTION_LOCK, startRetention, type RetentionHandle } from "../../src/health/retention.js";
import { completeJobs, killJobs, tempStore, type TempStore } from "./ops-fixtures.js";

const DAY = 86_400_000;

describe("retention", () => {
  let t: TempStore;
  let clock: ManualClock;
  const handles: RetentionHandle[] = [];
  beforeEach(async () => {
    clock = new ManualClock(Date.now() - 40 * DAY);
    t = await tempStore(clock);
  });
  afterEach(async () => {
    for (const h of handles.splice(0)) await h.stop();
    await t.cleanup();
  });

  it("prunes old completed and dead jobs in batches while the report totals stay right", async () => {
    const oldDone = await completeJobs(t.store, "q", 25); // day 0
    const oldDead = await killJobs(t.store, "q", 4);
    clock.advance(20 * DAY);
    const midDone = await completeJobs(t.store, "q", 5); // day 20: past 7 d, within 30 d
    const midDead = await killJobs(t.store, "q", 2);
    clock.advance(19 * DAY);
    const newDone = await completeJobs(t.store, "q", 7); // day 39: young
    clock.advance(DAY / 2);

    const before = await buildReport(t.store, { since: clock.now() - DAY });
    const statsBefore = await t.store.stats();
    expect(statsBefore["q"]!.completed).toBe(37);
    expect(statsBefore["q"]!.dead).toBe(6);

    const r = startRetention(t.store, { completed: 7 * DAY, dead: 30 * DAY }, { batch: 4, firstAfter: 3_600_000 });
    handles.push(r);
    const round = await r.runOnce();
    expect(round).toEqual({ completed: 30, dead: 4 });

    for (const id of [...oldDone, ...oldDead, ...midDone]) expect(await t.store.get(id)).toBeNull();
    for (const id of [...midDead, ...newDone]) expect(await t.store.get(id)).not.toBeNull();
    const statsAfter = await t.store.stats();
    expect(statsAfter["q"]!.completed).toBe(37);
    expect(statsAfter["q"]!.dead).toBe(6);

    const after = await buildReport(t.store, { since: clock.now() - DAY });
    expect(after.queues).toEqual(before.queues);
    expect(after.queues[0]!.completed).toBe(7);
    expect(after.queues[0]!.totals!.completed).toBe(37);

    expect(await r.runOnce()).toEqual({ completed: 0, dead: 0 });
  });

  it("keeps cancelled jobs by their own age, and folds old minutes into hours with the 30-day report unchanged", async () => {
    const since = clock.now() - 3600_000;
    await completeJobs(t.store, "q", 6); // day 0
    await killJobs(t.store, "q", 2);
    await t.store.enqueueMany([1, 2].map((n) => ({ queue: "q", payload: n })));
    const cancelled = (await t.store.list({ queue: "q", state: "waiting" })).map((j) => j.id);
    for (const id of cancelled) await t.store.cancel(id);
    clock.advance(10 * DAY);
    await completeJobs(t.store, "q", 3); // day 10
    const month = await t.store.report(since);
    expect(month).toMatchObject([{ completed: 9, dead: 2, failedAttempts: 2 }]);

    const r = startRetention(t.store, { completed: 30 * DAY, dead: 30 * DAY, cancelled: 5 * DAY }, { batch: 1, firstAfter: 3_600_000 });
    handles.push(r);
    expect(await r.runOnce()).toEqual({ completed: 0, dead: 2 });
    for (const id of cancelled) expect(await t.store.get(id)).toBeNull();
    expect(await t.store.list({ queue: "q", limit: 0 })).toHaveLength(11);
    // Day 0's minutes and failures are hours now; the report over the month reads the same.
    const db = new Database(t.file, { readonly: true });
    const count = (sql: string) => db.prepare(sql).pluck().get() as number;
    expect(count("SELECT count(*) FROM job_hours")).toBeGreaterThan(0);
    expect(count(`SELECT count(*) FROM job_minutes WHERE minute < ${Math.floor((clock.now() - 2 * DAY) / 60_000)}`)).toBe(0);
    expect(count(`SELECT count(*) FROM job_failures WHERE at < ${clock.now() - 2 * DAY}`)).toBe(0);
    expect(count("SELECT count(*) FROM job_minutes")).toBeGreaterThan(0);
    db.close();
    expect(await t.store.report(since)).toEqual(month);
    expect((await t.store.stats()).q).toMatchObject({ completed: 9, dead: 2, cancelled: 2 });
  });

  it("lets only the lock holder prune", async () => {
    await completeJobs(t.store, "q", 3);
    clock.advance(8 * DAY);
    expect(await t.store.tryLock(RETENTION_LOCK, "another-host", 60_000)).toBe(true);
    const r = startRetention(t.store, { completed: 7 * DAY, dead: 30 * DAY }, { owner: "me", firstAfter: 3_600_000 });
    handles.push(r);
    expect(await r.runOnce()).toBeNull();
    expect((await t.store.list({ queue: "q", limit: 0 })).length).toBe(3);
    await t.store.unlock(RETENTION_LOCK, "another-host");
    expect(await r.runOnce()).toEqual({ completed: 3, dead: 0 });
  });
});
