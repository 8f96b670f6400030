/**
 * Vigil through its library API: `openStore` and `Worker`, exactly as an embedding program
 * uses them, with their defaults (lease 10 s, SQLite durability `normal`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { HandlerJob } from "../../src/handlers/types.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { Worker } from "../../src/worker/worker.js";
import { PG_URL, describePostgres, dropSchema, freshSchema } from "./pg.js";
import type { BenchPayload, Consumer, Producer, Target, TargetCtx } from "./target.js";

const QUEUE = "bench";

async function open(ctx: TargetCtx): Promise<Store> {
  if (ctx["engine"] === "postgres") return openStore(PG_URL, { schema: String(ctx["schema"]) });
  return openStore(`sqlite:${String(ctx["file"])}`);
}

/** Vigil on SQLite (a file in a fresh temp folder) or on the local PostgreSQL (a fresh schema). */
export function vigilTarget(engine: "sqlite" | "postgres"): Target {
  return {
    async create() {
      const ctx: TargetCtx =
        engine === "postgres"
          ? { engine, schema: freshSchema("vigil") }
          : { engine, dir: mkdtempSync(join(tmpdir(), "vigil-bench-")) };
      if (engine === "sqlite") ctx["file"] = join(String(ctx["dir"]), "bench.db");
      // Opening migrates: the schema or file exists before any timed step.
      const store = await open(ctx);
      await store.close();
      return ctx;
    },

    async destroy(ctx) {
      if (ctx["schema"]) await dropSchema(String(ctx["schema"]));
      if (ctx["dir"]) rmSync(String(ctx["dir"]), { recursive: true, force: true });
    },

    async openProducer(ctx): Promise<Producer> {
      const store = await open(ctx);
      return {
        async enqueueOne(payload) {
          await store.enqueue(QUEUE, payload);
        },
        async enqueueBulk(payloads) {
          await store.enqueueMany(payloads.map((payload) => ({ queue: QUEUE, payload })));
        },
        close: () => store.close(),
      };
    },

    async openConsumer(ctx, concurrency, onJob): Promise<Consumer> {
      const store = await open(ctx);
      const worker = new Worker(store, {
        // The benchmark's own IPC channel carries its messages; the worker's supervisor
        // messages (ready, hb) would be mistaken for them.
        logger: pino({ level: "warn" }, pino.destination(2)),
        queues: {
          [QUEUE]: {
            concurrency,
            handler: async (job: HandlerJob) => {
              onJob(job.payload as BenchPayload);
              return null;
            },
          },
        },
      });
      // A store error is retried by the worker; the logger above already reports it.
      worker.on("store-error", () => {});
      return {
        async start() {
          worker.start();
        },
        async outstanding() {
          const c = (await store.stats())[QUEUE];
          return c ? c.scheduled + c.waiting + c.active + c.failed : 0;
        },
        async close() {
          await worker.stop();
          await store.close();
        },
      };
    },

    async describe() {
      return engine === "postgres" ? [await describePostgres()] : [];
    },
  };
}
