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

type Factory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const sqlite: Factory = async () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-flow-worker-"));
  const s = await openSqliteStore(join(dir, "vigil.db"));
  return { store: s, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
};

const postgres: Factory = async () => {
  const schema = freshSchemaName("vigil_flow_worker");
  const s = await openPostgresStore(PG_URL, { schema });
  return { store: s, cleanup: () => dropSchema(schema) };
};

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
  });
}
