/**
 * The SQLite store never waits for the write lock with its event loop blocked: while a
 * real second process holds the lock (BEGIN IMMEDIATE), a write, a claim, an incident and
 * opening the store wait asynchronously (timers keep firing) and succeed once the other
 * process commits (a lock held past the wait limit: sqlite-store.test.ts). Pruning many rows
 * yields to the event loop between its bounded batches and keeps the totals.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import { killChildren, sqliteChild } from "./fixtures/sqlite-children.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-busy-"));
});
afterEach(() => {
  killChildren();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Counts timer ticks, so a test can see the event loop turning while it waits. */
function ticker(everyMs = 20) {
  let ticks = 0;
  const timer = setInterval(() => ticks++, everyMs);
  return { ticks: () => ticks, stop: () => clearInterval(timer) };
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(p: Promise<T>) {
  let settled = false;
  const out = p.finally(() => {
    settled = true;
  });
  out.catch(() => {}); // awaited later; no unhandled rejection meanwhile
  return { settled: () => settled, promise: out };
}

describe("sqlite store: another process holds the write lock", () => {
  it("writes wait without blocking the event loop and succeed once the other process commits", async () => {
    const path = join(dir, "held.db");
    const s = await openSqliteStore(path, {});
    await s.enqueue("q", 0);
    const holder = sqliteChild("hold", path);
    await holder.waitFor("ready");
    holder.say();
    await holder.waitFor("locked");

    const t = ticker();
    try {
      const enq = track(s.enqueue("q", 1));
      const claim = track(s.claim({ workerId: "w", queues: { q: 5 }, leaseMs: 60_000 }));
      const inc = track(s.addIncident({ service: "workers:1", cause: "stall" }));
      // The loop keeps turning while all three wait for the lock.
      const before = t.ticks();
      await until("timer ticks while the writes wait", () => t.ticks() >= before + 10);
      expect([enq.settled(), claim.settled(), inc.settled()]).toEqual([false, false, false]);
      // Reads do not need the write lock (WAL): they answer meanwhile.
      expect((await s.stats())["q"]!.waiting).toBe(1);

      holder.say();
      await holder.waitFor("released");
      expect((await enq.promise).created).toBe(true);
      const leases = await claim.promise;
      expect(leases.length).toBeGreaterThanOrEqual(1);
      expect((await inc.promise).cause).toBe("stall");
      expect(await holder.exited).toBe(0);
    } finally {
      t.stop();
      await s.close();
    }
  });

  it("opening a store that needs the lock waits without blocking the event loop; one up to date needs no lock", async () => {
    // A fresh file another process holds: switching it to WAL and migrating need the lock.
    const path = join(dir, "open-held.db");
    const holder = sqliteChild("hold", path);
    await holder.waitFor("ready");
    holder.say();
    await holder.waitFor("locked");
    const t = ticker();
    try {
      const opening = track(openSqliteStore(path, {}));
      const before = t.ticks();
      await until("timer ticks while opening waits", () => t.ticks() >= before + 10);
      expect(opening.settled()).toBe(false);
      holder.say();
      await holder.waitFor("released");
      const s = await opening.promise;
      expect((await s.enqueue("q", 1)).created).toBe(true);
      await s.close();

      // The same store, now migrated, held again: opening it only reads.
      const again = sqliteChild("hold", path);
      await again.waitFor("ready");
      again.say();
      await again.waitFor("locked");
      const reopened = await openSqliteStore(path, {});
      expect((await reopened.stats())["q"]!.waiting).toBe(1);
      again.say();
      await again.waitFor("released");
      await reopened.close();
    } finally {
      t.stop();
    }
  });
});

describe("sqlite store: pruning many rows", () => {
  it("deletes in bounded batches, yielding to the event loop between them, and keeps the totals", async () => {
    const path = join(dir, "prune.db");
    const s = await openSqliteStore(path, {});
    const COMPLETED = 60_000;
    const DEAD = 6_000;
    const BATCH = 500;
    // Old finished rows, written directly where finished jobs live (the counts they would
    // have added too).
    const raw = new Database(path);
    raw.exec(`
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${COMPLETED + DEAD})
      INSERT INTO job_history (queue, state, payload, max_attempts, run_at, created_at, started_at, finished_at)
        SELECT 'q', CASE WHEN i <= ${COMPLETED} THEN 'completed' ELSE 'dead' END, '{}', 5, 1000, 1000, 1000, 2000 FROM n;
      INSERT INTO queue_totals (queue, completed) VALUES ('q', ${COMPLETED});
    `);
    raw.close();
    expect((await s.stats())["q"]).toMatchObject({ completed: COMPLETED, dead: DEAD });

    // setImmediate turns while pruning: each yield between two batches lets at least one run.
    let turns = 0;
    let maxGap = 0;
    let last = Date.now();
    let pruning = true;
    const spin = () => {
      const now = Date.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      turns++;
      if (pruning) setImmediate(spin);
    };
    setImmediate(spin);
    const done = await s.prune({ completedBefore: 3000, deadBefore: 3000, batch: BATCH });
    pruning = false;
    expect(done).toEqual({ completed: COMPLETED, dead: DEAD });
    const batches = Math.ceil(COMPLETED / BATCH) + Math.ceil(DEAD / BATCH);
    expect(turns).toBeGreaterThanOrEqual(batches - 1);
    console.log(`pruned ${COMPLETED + DEAD} rows in ${batches}+ batches; longest event-loop gap ${maxGap} ms`);
    expect((await s.stats())["q"]).toMatchObject({ completed: COMPLETED, dead: DEAD });
    expect(await s.list({ queue: "q", limit: 0 })).toEqual([]);
    await s.close();
  });
});
