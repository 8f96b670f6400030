/**
 * Schedule triggers through the real trigger runner and real stores: a SQLite file (the
 * runner's clock is handed an instant, no system clock is faked) for the first start and
 * for misfires after a downtime, and the local PostgreSQL (a fresh schema, dropped
 * afterwards) for two runners on separate connections polling one schedule in real time.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.js";
import { ManualClock } from "../../src/core/clock.js";
import type { Job } from "../../src/core/types.js";
import { openStore } from "../../src/store/open.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { parseSchedule } from "../../src/core/schedule.js";
import { TriggerRunner } from "../../src/triggers/runner.js";
import { ScheduleSource } from "../../src/triggers/schedule.js";
import type { TriggerCursorState } from "../../src/triggers/types.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const at = (s: string) => Date.parse(s);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const scheduledFor = (j: Job) => (j.payload as { scheduledFor: string }).scheduledFor;

function configOf(triggers: string, dir: string) {
  const yaml = `store: sqlite:vigil.db\nqueues:\n  q: { command: [cat] }\ntriggers:\n${triggers}`;
  return parseConfigText(yaml, join(dir, "vigil.yaml")).config;
}

async function sqliteSetup(triggers: string, clock: ManualClock) {
  const dir = mkdtempSync(join(tmpdir(), "vigil-sched-"));
  const config = configOf(triggers, dir);
  const store = await openStore(config.store);
  const runner = new TriggerRunner(store, { triggers: config.triggers, queues: config.queues, owner: "one", maxPayload: config.maxPayload, clock });
  cleanups.push(async () => {
    await runner.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const jobs = async () => (await store.list({ queue: "q", limit: 0 })).sort((a, b) => a.id - b.id);
  return { store, runner, jobs };
}

describe("schedule triggers (SQLite)", () => {
  it("start from now on the first start, then make one job per tick with its key, payload and status", async () => {
    const clock = new ManualClock(at("2026-05-01T12:00:30.500Z"));
    const s = await sqliteSetup("  ping: { schedule: every 1m, queue: q, payload: { kind: probe } }\n", clock);
    await s.runner.pollAll();
    expect(await s.jobs()).toEqual([]);
    expect((await s.store.getCursor("ping"))?.cursor).toEqual({ kind: "schedule", through: clock.now(), lastTick: null });
    expect(s.runner.status()[0]).toMatchObject({ kind: "schedule", lastTickAt: null, nextTickAt: at("2026-05-01T12:01:00Z") });

    clock.set(at("2026-05-01T12:01:00.000Z"));
    await s.runner.pollAll();
    // The process was busy for 65 s: both ticks are late, not missed.
    clock.set(at("2026-05-01T12:03:05Z"));
    await s.runner.pollAll();
    const jobs = await s.jobs();
    expect(jobs.map((j) => [j.key, j.payload])).toEqual(
      ["12:01", "12:02", "12:03"].map((hm) => {
        const iso = `2026-05-01T${hm}:00.000Z`;
        return [`schedule:ping:${iso}`, { kind: "probe", scheduledFor: iso }];
      }),
    );
    expect(jobs[0]!.source).toEqual({ trigger: "ping" });
    expect(s.runner.status()[0]).toMatchObject({
      seen: 3,
      error: null,
      lastTickAt: at("2026-05-01T12:03:00Z"),
      nextTickAt: at("2026-05-01T12:04:00Z"),
      lag: 65_000,
    });
  });

  it("after a downtime, `skip` enqueues only the ticks due from now and `once` adds the latest missed one", async () => {
    const now = at("2026-05-01T12:00:30Z");
    const s = await sqliteSetup(
      "  skipper: { schedule: every 1m, queue: q }\n  oncer: { schedule: every 1m, queue: q, misfire: once }\n",
      new ManualClock(now),
    );
    // The last process to run these triggers stopped an hour ago.
    const hourAgo = at("2026-05-01T11:00:00Z");
    for (const trigger of ["skipper", "oncer"]) {
      const ok = await s.store.commitTrigger({ trigger, expectVersion: 0, cursor: { kind: "schedule", through: hourAgo, lastTick: hourAgo }, jobs: [] });
      expect(ok).toBe(true);
    }
    await s.runner.pollAll();
    expect((await s.jobs()).map((j) => j.key)).toEqual([
      "schedule:skipper:2026-05-01T12:00:00.000Z",
      "schedule:oncer:2026-05-01T11:59:00.000Z",
      "schedule:oncer:2026-05-01T12:00:00.000Z",
    ]);
    const [skipper, oncer] = s.runner.status();
    expect(skipper).toMatchObject({ missedTicks: 59, error: expect.stringContaining("59 tick(s) missed") });
    expect(oncer).toMatchObject({ missedTicks: 58, error: expect.stringContaining("58 tick(s) missed") });
    // The next poll finds nothing new and no longer reports the downtime.
    await s.runner.pollAll();
    expect(await s.jobs()).toHaveLength(3);
    expect(s.runner.status().map((t) => t.error)).toEqual([null, null]);
  });
});

describe("schedule source timing", () => {
  it("wakes at once for a tick that came due while the previous tick was being committed", async () => {
    const source = new ScheduleSource({ name: "m", queue: "q", maxPayload: 1 << 20, spec: parseSchedule("every 1m"), misfire: "skip", lockTtlMs: 10_000 });
    let now = at("2026-05-01T12:00:59.999Z");
    let cursor: TriggerCursorState | null = { kind: "schedule", through: at("2026-05-01T11:59:00Z"), lastTick: null };
    const committed: string[] = [];
    const out = await source.poll({
      get cursor() {
        return cursor;
      },
      commit: async (batch) => {
        committed.push(...batch.jobs.map((j) => j.key!));
        cursor = batch.cursor;
        now = at("2026-05-01T12:01:00.005Z"); // a slow commit: 12:01 came due meanwhile
        return true;
      },
      hasTime: () => true,
      warn: () => {},
      now: () => now,
    });
    expect(committed).toEqual(["schedule:m:2026-05-01T12:00:00.000Z"]);
    expect(out).toEqual({ more: false, wakeInMs: 0 });
  });
});

const hasPg = await requirePg("the schedule trigger test on PostgreSQL");
const schema = freshSchemaName("vigil_sched");
afterAll(async () => {
  if (hasPg) await dropSchema(schema);
});

describe.skipIf(!hasPg)("schedule triggers on two runners sharing PostgreSQL", () => {
  it("make every tick of `every 1s` exactly once while the leader changes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-sched-pg-"));
    const config = configOf("  tick: { schedule: every 1s, queue: q }\n", dir);
    const storeA = await openPostgresStore(PG_URL, { schema });
    const storeB = await openPostgresStore(PG_URL, { schema });
    const make = (store: Store, owner: string) =>
      new TriggerRunner(store, { triggers: config.triggers, owner, host: owner, maxPayload: config.maxPayload });
    const a = make(storeA, "host-a");
    const b = make(storeB, "host-b");
    cleanups.push(async () => {
      await a.stop();
      await b.stop();
      await storeA.close();
      await storeB.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const jobs = async () => (await storeA.list({ queue: "q", limit: 0 })).sort((x, y) => x.id - y.id);
    const waitJobs = async (n: number) => {
      const deadline = Date.now() + 60_000;
      while ((await jobs()).length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} jobs`);
        await sleep(100);
      }
    };

    a.start();
    b.start();
    await waitJobs(4);
    const firstLeader = a.status()[0]!.leader ? a : b;
    const other = firstLeader === a ? b : a;
    await firstLeader.stop(); // gives the lock back: the other runner takes over at its next poll
    const handedOverAt = (await jobs()).length;
    await waitJobs(handedOverAt + 4);
    await other.stop();

    const all = await jobs();
    const times = all.map((j) => Date.parse(scheduledFor(j)));
    // One job per second from the first tick to the last: none twice, none missing.
    expect(times).toEqual(times.map((_, i) => times[0]! + i * 1000));
    expect(new Set(all.map((j) => j.key)).size).toBe(all.length);
    // Each runner enqueued some, and together no more than the jobs there are (a commit
    // refused for a stale cursor counts nothing).
    const seenA = a.status()[0]!.seen;
    const seenB = b.status()[0]!.seen;
    expect(seenA).toBeGreaterThan(0);
    expect(seenB).toBeGreaterThan(0);
    expect(seenA + seenB).toBe(all.length);
  }, 120_000);
});

describe.skipIf(!hasPg)("schedule triggers when the leader loses its store", () => {
  it("the other runner takes over within the tolerance and enqueues the ticks of the handover too", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-sched-pg-"));
    const config = configOf("  beat: { schedule: every 1s, queue: q }\n", dir);
    const storeA = await openPostgresStore(PG_URL, { schema });
    const storeB = await openPostgresStore(PG_URL, { schema });
    const make = (store: Store, owner: string) =>
      new TriggerRunner(store, { triggers: config.triggers, owner, host: owner, maxPayload: config.maxPayload });
    const a = make(storeA, "host-a");
    let b: TriggerRunner | null = null;
    cleanups.push(async () => {
      await a.stop();
      await b?.stop();
      await storeB.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const jobs = async () => (await storeB.list({ queue: "q", limit: 0 })).filter((j) => j.key?.startsWith("schedule:beat:"));
    const waitJobs = async (n: number) => {
      const deadline = Date.now() + 60_000;
      while ((await jobs()).length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} jobs`);
        await sleep(100);
      }
    };
    a.start();
    await waitJobs(3);
    b = make(storeB, "host-b");
    b.start();
    await sleep(1500);
    expect(b.status()[0]!.leader).toBe(false);
    // host-a's connection is gone: it can neither renew its lock nor give it back.
    await storeA.close();
    const lost = (await jobs()).length;
    await waitJobs(lost + 5);
    await b.stop();

    const times = (await jobs()).map((j) => Date.parse(scheduledFor(j))).sort((x, y) => x - y);
    expect(times).toEqual(times.map((_, i) => times[0]! + i * 1000));
    expect(b.status()[0]).toMatchObject({ leader: false, missedTicks: 0 }); // stopped: lock given back
    expect(b.status()[0]!.seen).toBeGreaterThanOrEqual(5);
  }, 120_000);
});
