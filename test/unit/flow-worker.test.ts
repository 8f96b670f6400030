/**
 * A worker held back by flow control waits on one timer for the store's "next possible
 * start", and a handler's ctx.rateLimited holds the queue: real SQLite and PostgreSQL
 * stores, an in-process Worker, every claim the worker sends counted.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import type { ClaimRequest, Store } from "../../src/store/store.js";
import { Worker } from "../../src/worker/worker.js";
import { waitFor } from "../e2e/supervisor-helpers.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";

const silent = pino({ level: "silent" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Opened {
  store: Store;
  cleanup: () => Promise<void>;
  /** Where it lives: a file, or a schema. */
  at: string;
}
/** A fresh store; `reopen` opens the same one again (another process's view of it). */
type Factory = (() => Promise<Opened>) & { reopen: (o: Opened) => Promise<Store> };

const sqlite: Factory = Object.assign(
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-flow-worker-"));
    const s = await openSqliteStore(join(dir, "vigil.db"));
    return { store: s, at: join(dir, "vigil.db"), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  },
  { reopen: (o: Opened) => openSqliteStore(o.at) },
);

const postgres: Factory = Object.assign(
  async () => {
    const schema = freshSchemaName("vigil_flow_worker");
    const s = await openPostgresStore(PG_URL, { schema });
    return { store: s, at: schema, cleanup: () => dropSchema(schema) };
  },
  { reopen: (o: Opened) => openPostgresStore(PG_URL, { schema: o.at }) },
);

/** The store, with every claim of a flow-controlled queue counted (both claim verbs). */
function counting(store: Store): { store: Store; claims: () => number } {
  let n = 0;
  const count = (req: ClaimRequest | null) => {
    if (req?.flow) n++;
  };
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop === "claim") return (req: ClaimRequest) => (count(req), target.claim(req));
      if (prop === "completeAndClaim" && typeof v === "function") {
        return (items: Parameters<NonNullable<Store["completeAndClaim"]>>[0], req: ClaimRequest | null) => (count(req), target.completeAndClaim!(items, req));
      }
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store: proxy, claims: () => n };
}

const stores: [string, Factory, boolean][] = [
  ["sqlite", sqlite, true],
  ["postgres", postgres, await requirePg("flow-controlled workers on PostgreSQL")],
];

for (const [name, factory, available] of stores) {
  describe.runIf(available)(`a flow-controlled worker: ${name}`, () => {
    let cleanup: (() => Promise<void>) | undefined;
    let worker: Worker | undefined;
    let store: Store | undefined;
    afterEach(async () => {
      await worker?.stop();
      await store?.close();
      await cleanup?.();
      worker = store = cleanup = undefined;
    });

    it("held by its rate, sleeps until the window has room instead of claiming again and again", async () => {
      const opened = await factory();
      store = opened.store;
      cleanup = opened.cleanup;
      const c = counting(store);
      await store.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ queue: "r", payload: i })));
      const starts: number[] = [];
      worker = new Worker(c.store, {
        queues: { r: { handler: async () => void starts.push(Date.now()), concurrency: 5, flow: { rate: { count: 2, intervalMs: 1500 } } } },
        logger: silent,
      });
      worker.start();
      await waitFor("the first two starts", () => starts.length >= 2, 30_000, 10);
      const before = c.claims();
      await sleep(1000);
      // Within the window nothing is due: a claim or two (its own completions, a poll), not hundreds.
      expect(c.claims() - before).toBeLessThanOrEqual(5);
      // And the next two start once the window has room.
      await waitFor("the next two starts", () => starts.length >= 4, 30_000, 10);
      expect(starts[2]! - starts[0]!).toBeGreaterThanOrEqual(1500);
    }, 60_000);

    it("ctx.rateLimited(ms) gives the job back uncounted and starts nothing of the queue until the hold ends", async () => {
      const opened = await factory();
      store = opened.store;
      cleanup = opened.cleanup;
      const c = counting(store);
      await store.enqueueMany(Array.from({ length: 3 }, (_, i) => ({ queue: "h", payload: i })));
      const starts: [number, number][] = [];
      let said = 0;
      worker = new Worker(c.store, {
        queues: {
          h: {
            handler: async (job, ctx) => {
              starts.push([job.payload as number, Date.now()]);
              if (said++ === 0) ctx.rateLimited(1200, "HTTP 429");
              return null;
            },
            // A flow key, so every claim of the queue is counted.
            flow: { limit: 10 },
          },
        },
        logger: silent,
      });
      worker.start();
      await waitFor("every job completed", async () => (await store!.stats())["h"]?.completed === 3, 30_000, 20);
      // Job 0 kept its place in the queue: it starts first again once the hold ends.
      expect(starts.map(([p]) => p)).toEqual([0, 0, 1, 2]);
      expect(starts[1]![1] - starts[0]![1]).toBeGreaterThanOrEqual(1100);
      const jobs = await store.list({ queue: "h", limit: 0 });
      expect(jobs.map((j) => j.attempt)).toEqual([1, 1, 1]);
      // Held, the worker waited on a timer: a handful of claims, not one every few ms.
      expect(c.claims()).toBeLessThanOrEqual(15);
    }, 60_000);

    it("held by a limit, a worker claims as soon as another process's job of the queue ends, not at its next recheck", async () => {
      const opened = await factory();
      store = opened.store;
      cleanup = opened.cleanup;
      // The other "process": a second store on the same data, its own connections and wake-ups.
      const other = await factory.reopen(opened);
      await store.enqueueMany([{ queue: "l", payload: 1 }, { queue: "l", payload: 2 }]);
      const flow = { limit: 1 };
      let releaseFirst!: () => void;
      const firstRunning = new Promise<void>((r) => (releaseFirst = r));
      let endedAt = 0;
      const a = new Worker(other, {
        queues: {
          l: {
            handler: async () => {
              releaseFirst();
              // Past b's first polls (every second for 3 s after its start) and its first recheck.
              await sleep(4500);
              // A stops claiming once this job is done; only b may take the next one.
              void a.stop();
              endedAt = Date.now();
              return null;
            },
            flow,
          },
        },
        logger: silent,
      });
      a.start();
      await firstRunning;
      let startedAt = 0;
      // b's idle poll is far off: only a wake-up or its recheck (every LIMIT_RECHECK_MS) makes it claim.
      worker = new Worker(store, { queues: { l: { handler: async () => void (startedAt = Date.now()), flow } }, pollInterval: 60_000, logger: silent });
      worker.start();
      await waitFor("the second job started", () => startedAt > 0, 30_000, 10);
      await a.stop();
      await other.close();
      // Woken by a's completion (through the store): its recheck was due 1.5 s later (b held at
      // ~0 s and 3 s, so the next at ~6 s; a's job ended at ~4.5 s).
      expect(startedAt - endedAt).toBeLessThan(800);
    }, 60_000);
  });
}
