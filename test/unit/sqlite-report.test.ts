/**
 * The SQLite report counts from per-minute rows (`job_minutes`, migration 4) kept in the
 * completing transaction, not from every job finished in the window: its figures must
 * still equal what the jobs themselves say, for a window that starts inside a minute, for
 * jobs completed alone or in a group commit, failed for good or stalled to death, and
 * after retention pruned them. Its durations come from the newest completions only.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { DURATION_SAMPLE } from "../../src/store/sqlite/job-reads.js";
import { MIGRATIONS } from "../../src/store/sqlite/migrations.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import { completeJobs, killJobs, tempStore, type TempStore } from "./ops-fixtures.js";

let t: TempStore | null = null;
afterEach(async () => {
  await t?.cleanup();
  t = null;
});

/**
 * What the jobs say (unfinished ones in `jobs`, finished ones in `job_history`): completed
 * and dead per queue finished at or after `since`, and the history entries (failed
 * attempts) written since.
 */
function fromJobs(file: string, since: number): Record<string, { completed: number; dead: number; failedAttempts: number }> {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare(
      `WITH every AS (SELECT queue, state, finished_at, history FROM jobs
         UNION ALL SELECT queue, state, finished_at, history FROM job_history)
       SELECT queue, sum(state = 'completed' AND finished_at >= @since) AS completed,
         sum(state = 'dead' AND finished_at >= @since) AS dead,
         (SELECT count(*) FROM every j, json_each(j.history) h WHERE j.queue = o.queue AND json_extract(h.value, '$.at') >= @since) AS failedAttempts
       FROM every o GROUP BY queue`,
    ).all({ since }) as { queue: string; completed: number; dead: number; failedAttempts: number }[];
    return Object.fromEntries(
      rows.filter((r) => r.completed + r.dead + r.failedAttempts > 0).map((r) => [r.queue, { completed: r.completed, dead: r.dead, failedAttempts: r.failedAttempts }]),
    );
  } finally {
    db.close();
  }
}

describe("sqlite report from per-minute counts", () => {
  it("counts what the jobs say for windows starting inside a minute, whichever way the jobs finished", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0));
    t = await tempStore(clock);
    const { store } = t;
    const marks: number[] = [];
    for (let m = 0; m < 4; m++) {
      marks.push(clock.now());
      await completeJobs(store, "a", 3);
      clock.advance(20_000); // later in the same minute
      await killJobs(store, "b", 1);
      // A group commit, as workers complete.
      await store.enqueueMany([{ queue: "a", payload: 1 }, { queue: "b", payload: 2 }]);
      const leases = await store.claim({ workerId: "w:1", queues: { a: 5, b: 5 }, leaseMs: 60_000 });
      await store.completeMany(leases.map((lease) => ({ lease, result: null })));
      // A stall past maxStalls is a death too.
      await store.enqueue("b", 3, { maxAttempts: 1 });
      await store.claim({ workerId: "w:2", queues: { b: 1 }, leaseMs: 1 });
      clock.advance(10);
      expect(await store.reapExpired({ maxStalls: 1 })).toBe(1);
      // A failure with a retry, and a cancel while running: failed attempts, not deaths.
      // (Queues of their own, so no earlier job of them is due again.)
      await store.enqueue(`r${m}`, 4, { maxAttempts: 3 });
      const [retried] = await store.claim({ workerId: "w:3", queues: { [`r${m}`]: 1 }, leaseMs: 60_000 });
      await store.fail(retried!, { message: "again" }, { retryAt: clock.now() + 600_000 });
      const { job } = await store.enqueue(`x${m}`, 5);
      await store.claim({ workerId: "w:3", queues: { [`x${m}`]: 1 }, leaseMs: 60_000 });
      await store.cancel(job.id);
      clock.advance(45_000); // into the next minute
    }
    for (const since of [marks[0]! - 1, marks[1]!, marks[1]! + 25_000, marks[3]! + 59_000, clock.now() + 1]) {
      const report = await store.report(since);
      const got = Object.fromEntries(report.map((r) => [r.queue, { completed: r.completed, dead: r.dead, failedAttempts: r.failedAttempts }]));
      expect(got).toEqual(fromJobs(t.file, since));
    }
    const [a] = await store.report(marks[0]!);
    expect(a).toMatchObject({ queue: "a", completed: 16 });
    expect(a!.p50Ms).not.toBeNull();
  });

  it("keeps the counts of the window after retention prunes the jobs", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0));
    t = await tempStore(clock);
    const since = clock.now();
    await completeJobs(t.store, "a", 5);
    await killJobs(t.store, "a", 2);
    clock.advance(120_000);
    await t.store.prune({ completedBefore: clock.now(), deadBefore: clock.now() });
    expect(await t.store.list({ queue: "a" })).toEqual([]);
    expect(await t.store.report(since)).toEqual([expect.objectContaining({ queue: "a", completed: 5, dead: 2 })]);
  });

  it("takes durations from the newest completions only", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0));
    t = await tempStore(clock);
    const since = clock.now();
    // Old slow jobs, then as many quick ones as the sample holds.
    await t.store.enqueueMany(Array.from({ length: 1000 }, (_, i) => ({ queue: "a", payload: i })));
    const slow = await t.store.claim({ workerId: "w:1", queues: { a: 1000 }, leaseMs: 600_000 });
    clock.advance(30_000);
    await t.store.completeMany(slow.map((lease) => ({ lease, result: null })));
    clock.advance(1000);
    for (let done = 0; done < DURATION_SAMPLE; done += 1000) await completeJobs(t.store, "a", 1000);
    const [a] = await t.store.report(since);
    expect(a).toMatchObject({ completed: 1000 + DURATION_SAMPLE, p50Ms: 0, p95Ms: 0 });
  });

  it("seeds the per-minute counts from the jobs of a store made before them", async () => {
    const dir = (t = await tempStore()).dir;
    const path = join(dir, "v3.db");
    const db = new Database(path);
    db.exec("CREATE TABLE vigil_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
    for (const m of MIGRATIONS.slice(0, 3)) db.exec(m);
    db.exec("INSERT INTO vigil_meta VALUES ('schema_version', '3')");
    const add = db.prepare("INSERT INTO jobs (queue, state, payload, max_attempts, run_at, created_at, started_at, finished_at) VALUES (?, ?, '1', 5, 1, 1, ?, ?)");
    for (const [queue, state, at] of [["a", "completed", 60_000], ["a", "completed", 130_000], ["a", "dead", 130_500], ["b", "completed", 200_000]] as const) {
      add.run(queue, state, at - 100, at);
    }
    db.close();
    const s = await openSqliteStore(path, {});
    try {
      expect(await s.report(0)).toEqual([
        expect.objectContaining({ queue: "a", completed: 2, dead: 1, p50Ms: 100 }),
        expect.objectContaining({ queue: "b", completed: 1, dead: 0 }),
      ]);
      expect((await s.report(120_001)).map((r) => [r.queue, r.completed, r.dead])).toEqual([["a", 1, 1], ["b", 1, 0]]);
    } finally {
      await s.close();
    }
  });
});
