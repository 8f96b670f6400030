/**
 * The worker's hot path against real stores (a SQLite file; a fresh schema on the local
 * PostgreSQL): claim-ahead (`prefetch`) and what it must never do, renewals that leave out
 * completions being committed, and the timer that replaces polling for scheduled jobs.
 * Some tests wrap the real store to watch or hold its calls; the store itself is real.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import type { Job, LeaseRef } from "../../src/core/types.js";
import type { Handler } from "../../src/handlers/types.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import type { Store, StoreOptions } from "../../src/store/store.js";
import type { QueueOptions } from "../../src/worker/options.js";
import { Worker } from "../../src/worker/worker.js";
import { waitFor } from "../e2e/supervisor-helpers.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";
import { wrap } from "./fixtures/wrap-store.js";

const silent = pino({ level: "silent" });

type Factory = (opts: StoreOptions) => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const sqlite: Factory = async (opts) => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-cycle-"));
  const s = await openSqliteStore(join(dir, "vigil.db"), opts);
  return { store: s, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
};

const postgres: Factory = async (opts) => {
  const schema = freshSchemaName("vigil_cycle");
  const s = await openPostgresStore(PG_URL, { ...opts, schema });
  return { store: s, cleanup: () => dropSchema(schema) };
};

const factories: [string, Factory][] = [["sqlite", sqlite]];
if (await requirePg("the worker cycle tests on PostgreSQL")) factories.push(["postgres", postgres]);

/** A promise and the function that resolves it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

describe.each(factories)("Worker cycle on %s", (_name, factory) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  let workers: Worker[] = [];
  const clock = new ManualClock(Date.now());

  const open = async (opts: StoreOptions = {}) => {
    ({ store, cleanup } = await factory(opts));
  };

  function run(s: Store, queues: Record<string, Handler | QueueOptions>): Worker {
    const w = new Worker(s, { queues, logger: silent });
    w.on("store-error", () => {});
    workers.push(w);
    return w.start();
  }

  async function job(id: number): Promise<Job> {
    return (await store.get(id))!;
  }

  beforeEach(() => {
    workers = [];
  });

  afterEach(async () => {
    for (const w of workers) await w.stop({ timeoutMs: 0 });
    await store.close();
    await cleanup();
  });

  it("renewals leave out a completion being committed, and report no lease lost for it", async () => {
    await open();
    const hold = gate();
    const renewed: number[][] = [];
    let held: number[] = [];
    const holdCommit = <A extends unknown[], R>(fn: (...a: A) => Promise<R>, items: (...a: A) => { lease: LeaseRef }[]) =>
      async (...a: A): Promise<R> => {
        held = items(...a).map((i) => i.lease.jobId);
        if (held.length > 0) await hold.wait;
        return fn(...a);
      };
    const s = wrap(store, {
      renewMany: (leases: LeaseRef[], ms: number) => {
        renewed.push(leases.map((l) => l.jobId));
        return store.renewMany(leases, ms);
      },
      completeMany: holdCommit(store.completeMany.bind(store), (items) => items),
      completeAndClaim: store.completeAndClaim && holdCommit(store.completeAndClaim.bind(store), (items) => items),
    });
    const slow = gate();
    const lost: unknown[] = [];
    const w = run(s, {
      q: {
        concurrency: 2,
        prefetch: 0,
        // Renewed every 1.5 s. The fast job's lease is not renewed while its commit is held,
        // so the hold (two renewal rounds, ~3 s) must stay well inside one lease, even on a
        // loaded machine where a timer can fire late.
        lease: 4500,
        handler: async (j) => ((j.payload as { slow?: boolean }).slow ? slow.wait.then(() => "slow") : "fast"),
      },
    });
    w.on("lease-lost", (l) => lost.push(l));
    const { job: a } = await store.enqueue("q", { slow: true });
    const { job: b } = await store.enqueue("q", {});
    await waitFor("the fast job's commit to be held", () => held.includes(b.id), 20_000, 5);
    const from = renewed.length;
    // Renewal rounds while the commit is held: the slow job is renewed, the fast one not.
    await waitFor("two renewals", () => renewed.length >= from + 2, 20_000, 10);
    const during = renewed.slice(from);
    expect(during.every((ids) => ids.includes(a.id))).toBe(true);
    expect(during.some((ids) => ids.includes(b.id))).toBe(false);
    hold.open();
    slow.open();
    await waitFor("both completed", async () => (await job(a.id)).state === "completed" && (await job(b.id)).state === "completed");
    expect((await job(b.id)).result).toBe("fast");
    expect(lost).toEqual([]);
  });

  it("keeps the store's commitLanes transactions in flight at once, each job run and completed once", async () => {
    await open();
    const lanes = store.caps.commitLanes ?? 1;
    let inFlight = 0;
    let most = 0;
    let claimed = 0;
    let sent = 0;
    let mostOut = 0;
    const count = <R extends { leases: unknown[] } | unknown[]>(r: R): R => {
      claimed += Array.isArray(r) ? r.length : r.leases.length;
      mostOut = Math.max(mostOut, claimed - sent);
      return r;
    };
    const s = wrap(store, {
      claim: async (req: Parameters<Store["claim"]>[0]) => count(await store.claim(req)),
      completeAndClaim: async (...a: Parameters<NonNullable<Store["completeAndClaim"]>>) => {
        inFlight++;
        most = Math.max(most, inFlight);
        sent += a[0].length;
        try {
          return count(await store.completeAndClaim!(...a));
        } finally {
          inFlight--;
        }
      },
    });
    const n = 6000;
    await store.enqueueMany(Array.from({ length: n }, (_, i) => ({ queue: "q", payload: { i } })));
    const ran = new Map<number, number>();
    run(s, {
      q: {
        concurrency: 10,
        handler: (j) => {
          ran.set(j.id, (ran.get(j.id) ?? 0) + 1);
          return Promise.resolve(null);
        },
      },
    });
    await waitFor("every job completed", async () => (await store.stats()).q?.completed === n, 60_000, 20);
    expect(most).toBe(lanes);
    expect(ran.size).toBe(n);
    expect([...ran.values()].every((times) => times === 1)).toBe(true);
    // Leased and not yet sent back: the claim-ahead buffer (prefetch, 1000 at most by
    // default), ten running, and what waits for or rides in a transaction.
    expect(mostOut).toBeLessThanOrEqual(1000 + 10 + 500 * (lanes + 1));
    const done = await store.list({ queue: "q", state: "completed", limit: n });
    expect(done.every((j) => j.attempt === 1)).toBe(true);
  });

  it("leases jobs ahead up to prefetch, and gives them back unrun and uncounted on stop", async () => {
    await open();
    const started: number[] = [];
    const w = run(store, {
      q: {
        concurrency: 1,
        prefetch: 3,
        handler: (j, ctx) => {
          started.push(j.id);
          if (j.payload === "quick") return Promise.resolve(null);
          return new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(null)));
        },
      },
    });
    // Nothing is leased ahead until a handler of the queue has shown it is quick.
    const { job: quick } = await store.enqueue("q", "quick");
    await waitFor("the quick job", async () => (await job(quick.id)).state === "completed");
    await store.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ queue: "q", payload: i })));
    // The lease of 4 is taken before the first of them starts: wait for both.
    await waitFor("1 running and 3 leased ahead", async () => started.length >= 2 && (await store.stats())["q"]?.active === 4, 20_000, 10);
    expect(started).toHaveLength(2);
    expect((await store.stats())["q"]).toMatchObject({ active: 4, waiting: 6 });
    await w.stop({ timeoutMs: 0 });
    const all = (await store.list({ queue: "q", limit: 0 })).filter((j) => j.id !== quick.id);
    expect(all.map((j) => [j.state, j.attempt])).toEqual(Array.from({ length: 10 }, () => ["waiting", 0]));
    expect(started).toHaveLength(2);
  });

  it("leases nothing ahead for a queue whose handlers are slow", async () => {
    await open();
    const activeAtStart: number[] = [];
    run(store, {
      q: {
        concurrency: 1,
        prefetch: 5,
        handler: async () => {
          activeAtStart.push((await store.stats())["q"]!.active);
          await new Promise((r) => setTimeout(r, 60));
          return null;
        },
      },
    });
    await store.enqueueMany(Array.from({ length: 4 }, (_, i) => ({ queue: "q", payload: i })));
    await waitFor("all 4 completed", async () => (await store.stats())["q"]?.completed === 4);
    expect(activeAtStart).toEqual([1, 1, 1, 1]);
  });

  it.each([
    // 45 s of the 60 s lease pass without a renewal: 15 s left, under a third.
    ["gives back a buffered job whose lease ran low instead of starting it", () => clock.advance(45_000), true],
    // The wall clock steps 45 s on (NTP): no time passed, the lease has most of its length.
    ["starts a buffered job across a step of the wall clock, not taking it for time passing", () => clock.set(clock.now() + 45_000), false],
  ])("%s", async (_title, move: () => void, givenBack: boolean) => {
    await open({ clock });
    const released: number[] = [];
    const s = wrap(store, {
      // Renewals fail (the store is briefly unreachable), so buffered leases run low.
      renewMany: async () => {
        throw new Error("store unreachable");
      },
      releaseMany: async (ls: LeaseRef[]) => {
        released.push(...ls.map((l) => l.jobId));
        return store.releaseMany(ls);
      },
    });
    const first = gate();
    const events: string[] = [];
    run(s, {
      q: {
        concurrency: 1,
        prefetch: 1,
        lease: 60_000,
        handler: async (j) => {
          if (j.payload === "quick") return null;
          events.push(`start ${j.id} attempt ${j.attempt} released ${released.includes(j.id)}`);
          if (j.payload === "first") await first.wait;
          return null;
        },
      },
    });
    const { job: quick } = await store.enqueue("q", "quick");
    await waitFor("the quick job", async () => (await job(quick.id)).state === "completed");
    const { job: a } = await store.enqueue("q", "first");
    const { job: b } = await store.enqueue("q", "second");
    // Both may be leased in one claim, before the first starts: wait for both.
    await waitFor("the first started, the second leased ahead", async () => events.length > 0 && (await job(b.id)).state === "active", 20_000, 10);
    expect(events).toEqual([`start ${a.id} attempt 1 released false`]);
    move();
    first.open();
    await waitFor("both completed", async () => (await job(a.id)).state === "completed" && (await job(b.id)).state === "completed");
    // Given back, it ran only after it was claimed afresh, with no attempt counted for the first lease.
    expect(released.includes(b.id)).toBe(givenBack);
    expect(events).toEqual([`start ${a.id} attempt 1 released false`, `start ${b.id} attempt 1 released ${givenBack}`]);
    expect(await job(b.id)).toMatchObject({ attempt: 1, stalls: 0 });
  });

  it("a job leased ahead and cancelled before it starts never runs, and is not a lost lease", async () => {
    await open();
    const first = gate();
    const started: number[] = [];
    const lost: unknown[] = [];
    const seenLost: number[] = [];
    const s = wrap(store, {
      renewMany: async (leases: LeaseRef[], ms: number) => {
        const out = await store.renewMany(leases, ms);
        seenLost.push(...out);
        return out;
      },
    });
    const w = run(s, {
      q: {
        concurrency: 1,
        prefetch: 2,
        lease: 300, // renewed every 100 ms: the cancel is noticed quickly
        handler: async (j) => {
          if (j.payload === "quick") return null;
          started.push(j.id);
          if (j.payload === "first") await first.wait;
          return null;
        },
      },
    });
    w.on("lease-lost", (l) => lost.push(l));
    const { job: quick } = await store.enqueue("q", "quick");
    await waitFor("the quick job", async () => (await job(quick.id)).state === "completed");
    const { job: a } = await store.enqueue("q", "first");
    const { job: b } = await store.enqueue("q", "second");
    await waitFor("the second job leased ahead", async () => (await job(b.id)).state === "active", 20_000, 10);
    await store.cancel(b.id);
    await waitFor("a renewal to find the cancel", () => seenLost.includes(b.id), 20_000, 10);
    const { job: c } = await store.enqueue("q", "third");
    await waitFor("the third job leased ahead", async () => (await job(c.id)).state === "active", 20_000, 10);
    first.open();
    await waitFor("first and third completed", async () => (await job(a.id)).state === "completed" && (await job(c.id)).state === "completed");
    expect(started).toEqual([a.id, c.id]);
    expect((await job(b.id)).state).toBe("cancelled");
    expect(lost).toEqual([]);
  });

  it("runs a job scheduled while idle when it comes due, not at the next poll", async () => {
    await open();
    const ran: number[] = [];
    run(store, { q: async (j) => void ran.push(j.id) });
    // Past the first seconds of quick polls: the next idle poll is 30 s away on a store
    // that announces scheduled jobs, so only the timer set from `nextDueAt` runs it in time.
    await new Promise((r) => setTimeout(r, 3500));
    const { job: d } = await store.enqueue("q", "later", { delayMs: 300 });
    await waitFor("the scheduled job to run", () => ran.includes(d.id), 20_000, 20);
    expect((await job(d.id)).state).not.toBe("scheduled");
  });

  it("without the optional store verbs, falls back to completeMany and claim", async () => {
    await open();
    const calls = new Map<string, number>();
    const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1);
    const s = wrap(store, {
      completeAndClaim: undefined,
      nextDueAt: undefined,
      completeMany: (items: Parameters<Store["completeMany"]>[0]) => (count("completeMany"), store.completeMany(items)),
      claim: (req: Parameters<Store["claim"]>[0]) => (count("claim"), store.claim(req)),
    });
    const done = new Set<number>();
    run(s, { q: { concurrency: 5, handler: async (j) => void done.add(j.id) } });
    await store.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ queue: "q", payload: i })));
    const { job: later } = await store.enqueue("q", "later", { delayMs: 200 });
    await waitFor("all 301 completed", async () => (await store.stats())["q"]?.completed === 301, 30_000, 20);
    expect(done.size).toBe(301);
    expect((await job(later.id)).state).toBe("completed");
    expect(calls.get("completeMany")).toBeGreaterThan(0);
    expect(calls.get("claim")).toBeGreaterThan(0);
  });
});
