/**
 * The periodic-task primitive (core/periodic.ts) and the workers' lease reaping built on
 * it (worker/reaper.ts), against a real SQLite store: runs never overlap, a failure is
 * logged and retried, the leader lock lets one process run at a time and passes on when
 * its holder stops, and of two workers on one store only one reaps.
 */
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startPeriodic, type PeriodicTask } from "../../src/core/periodic.js";
import { Worker } from "../../src/worker/worker.js";
import { REAP_LOCK } from "../../src/worker/reaper.js";
import { tempStore, type TempStore } from "./ops-fixtures.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const silent = pino({ level: "silent" });

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("startPeriodic", () => {
  let t: TempStore;
  const tasks: PeriodicTask<unknown>[] = [];
  beforeEach(async () => {
    t = await tempStore();
  });
  afterEach(async () => {
    for (const task of tasks.splice(0)) await task.stop();
    await t.cleanup();
  });

  it("never overlaps runs: a slow run delays the next, and runOnce joins the run in flight", async () => {
    let inFlight = 0;
    let most = 0;
    let runs = 0;
    const task = startPeriodic({
      name: "slow",
      every: 5,
      firstAfter: 0,
      run: async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await sleep(40);
        inFlight--;
        return ++runs;
      },
    });
    tasks.push(task);
    await waitFor("four runs", () => runs >= 4);
    const [a, b] = await Promise.all([task.runOnce(), task.runOnce()]);
    expect(a).toBe(b);
    expect(most).toBe(1);
  });

  it("logs a failed run with the error as an object and runs again", async () => {
    const logged: { obj: object; msg: string }[] = [];
    let calls = 0;
    const task = startPeriodic({
      name: "flaky",
      every: 10,
      firstAfter: 0,
      log: { warn: (obj, msg) => logged.push({ obj, msg }) },
      run: async () => {
        if (++calls === 1) throw Object.assign(new Error("store away"), { code: "SQLITE_BUSY" });
        return calls;
      },
    });
    tasks.push(task);
    await waitFor("a second run", () => calls >= 2);
    expect(logged[0]!.msg).toBe("flaky failed; will try again");
    const err = (logged[0]!.obj as { err: Error & { code: string } }).err;
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe("SQLITE_BUSY");
  });

  it("runs only while holding its leader lock, which passes on when its holder stops", async () => {
    const ran: string[] = [];
    const task = (owner: string) =>
      startPeriodic({
        name: owner,
        every: 20,
        firstAfter: 0,
        lock: { store: t.store, name: "test-lock", owner, ttlMs: 60_000 },
        run: async () => {
          ran.push(owner);
          return owner;
        },
      });
    const a = task("a");
    await waitFor("a to run", () => ran.includes("a"));
    const b = task("b");
    tasks.push(b);
    await sleep(150);
    expect(await b.runOnce()).toBeNull();
    expect(ran.filter((o) => o === "b")).toEqual([]);
    await a.stop();
    await waitFor("b to take over", () => ran.includes("b"));
    const afterStop = ran.lastIndexOf("a");
    await sleep(100);
    expect(ran.lastIndexOf("a")).toBe(afterStop);
  });
});

describe("lease reaping by workers", () => {
  let t: TempStore;
  const workers: Worker[] = [];
  beforeEach(async () => {
    t = await tempStore();
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.stop({ timeoutMs: 0 });
    await t.cleanup();
  });

  it("of two workers on one store one reaps, and the other once the first has stopped", async () => {
    const start = (workerId: string) => {
      const w = new Worker(t.store, { workerId, queues: { q: { handler: async () => "ok", lease: 400 } }, logger: silent });
      workers.push(w);
      return w.start();
    };
    const a = start("worker-a");
    // a takes the lock at its first round; b, started after, is kept out.
    await waitFor("a to hold the reaper lock", async () => !(await t.store.tryLock(REAP_LOCK, "probe", 1)));
    const b = start("worker-b");
    await sleep(300);
    expect(await t.store.tryLock(REAP_LOCK, "worker-b", 1000)).toBe(false);

    // A lease that runs out (its holder claimed and vanished) comes back through a.
    await t.store.enqueue("lost", { n: 1 });
    const [gone] = await t.store.claim({ workerId: "vanished", queues: { lost: 1 }, leaseMs: 200 });
    await waitFor("the expired lease reaped", async () => (await t.store.get(gone!.jobId))?.stalls === 1);

    await a.stop();
    // a gave the lock up on stop: b reaps from its next round.
    await t.store.enqueue("lost-too", { n: 2 });
    const [gone2] = await t.store.claim({ workerId: "vanished", queues: { "lost-too": 1 }, leaseMs: 200 });
    await waitFor("the second expired lease reaped by b", async () => (await t.store.get(gone2!.jobId))?.stalls === 1);
    expect(await t.store.tryLock(REAP_LOCK, "probe", 1)).toBe(false);
    await b.stop();
    expect(await t.store.tryLock(REAP_LOCK, "probe", 1)).toBe(true);
  });
});
