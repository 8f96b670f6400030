/**
 * BullMQ 6 with its defaults, on the local Redis or on its PostgreSQL backend
 * (`createPostgresBackend`, shipped in bullmq 6.7 under `bullmq`'s `postgres/` folder).
 *
 * Redis is shared with other programs on this machine, so nothing is flushed wholesale:
 * each run uses its own key prefix and deletes exactly those keys before and after.
 */
import { randomBytes } from "node:crypto";
import { Queue, Worker, createPostgresBackend } from "bullmq";
import { Redis } from "ioredis";
import { PG_URL, describePostgres, dropSchema, freshSchema } from "./pg.js";
import type { BenchPayload, Consumer, Producer, Target, TargetCtx } from "./target.js";

const REDIS = { host: "127.0.0.1", port: 6379 };
const QUEUE = "bench";

/** Deletes every key under a prefix (SCAN, never KEYS or FLUSHALL: Redis is shared). */
async function deletePrefix(prefix: string): Promise<void> {
  if (!/^vigilbench-[0-9a-f]+$/.test(prefix)) throw new Error(`refusing to delete keys under ${prefix}`);
  const redis = new Redis({ ...REDIS, lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** The part of BullMQ's Queue this benchmark uses, the same for both backends. */
interface QueueLike {
  add(name: string, data: BenchPayload): Promise<unknown>;
  addBulk(jobs: { name: string; data: BenchPayload }[]): Promise<unknown>;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
  waitUntilReady(): Promise<unknown>;
  close(): Promise<void>;
  on(event: "error", fn: (err: Error) => void): unknown;
}

/** The part of BullMQ's Worker this benchmark uses. */
interface WorkerLike {
  run(): Promise<unknown>;
  waitUntilReady(): Promise<unknown>;
  close(): Promise<void>;
  on(event: "error", fn: (err: Error) => void): unknown;
}

/** BullMQ's classes for one engine, built the same way for producer and consumer. */
function classes(ctx: TargetCtx): {
  queue(): QueueLike;
  worker(concurrency: number, fn: (p: BenchPayload) => void): WorkerLike;
} {
  const processor = (fn: (p: BenchPayload) => void) => async (job: { data: BenchPayload }) => {
    fn(job.data);
  };
  if (ctx["engine"] === "postgres") {
    const connection = { connectionString: PG_URL, schema: String(ctx["schema"]), migrate: true };
    return {
      queue: () => new Queue(QUEUE, { connection }, createPostgresBackend) as unknown as QueueLike,
      worker: (concurrency, fn) =>
        new Worker(QUEUE, processor(fn), { connection, concurrency, autorun: false }, createPostgresBackend) as unknown as WorkerLike,
    };
  }
  const prefix = String(ctx["prefix"]);
  return {
    queue: () => new Queue(QUEUE, { connection: REDIS, prefix }) as unknown as QueueLike,
    worker: (concurrency, fn) =>
      new Worker(
        QUEUE,
        processor(fn),
        // maxRetriesPerRequest null: what BullMQ requires of a worker's blocking connection.
        { connection: { ...REDIS, maxRetriesPerRequest: null }, prefix, concurrency, autorun: false },
      ) as unknown as WorkerLike,
  };
}

async function counts(queue: QueueLike): Promise<number> {
  const c = await queue.getJobCounts("waiting", "active", "delayed", "prioritized", "paused", "waiting-children");
  return Object.values(c).reduce((a, b) => a + b, 0);
}

export function bullmqTarget(engine: "redis" | "postgres"): Target {
  return {
    async create() {
      if (engine === "redis") {
        const ctx: TargetCtx = { engine, prefix: `vigilbench-${randomBytes(4).toString("hex")}` };
        await deletePrefix(String(ctx["prefix"]));
        return ctx;
      }
      const ctx: TargetCtx = { engine, schema: freshSchema("bullmq") };
      // The first queue runs BullMQ's migrations (migrate: true), outside the timed steps.
      const q = classes(ctx).queue();
      q.on("error", () => {});
      await q.waitUntilReady();
      await q.close();
      return ctx;
    },

    async destroy(ctx) {
      if (ctx["prefix"]) await deletePrefix(String(ctx["prefix"]));
      if (ctx["schema"]) await dropSchema(String(ctx["schema"]));
    },

    async openProducer(ctx): Promise<Producer> {
      const queue = classes(ctx).queue();
      queue.on("error", () => {});
      await queue.waitUntilReady();
      return {
        async enqueueOne(payload) {
          await queue.add("job", payload);
        },
        async enqueueBulk(payloads) {
          await queue.addBulk(payloads.map((data) => ({ name: "job", data })));
        },
        close: () => queue.close(),
      };
    },

    async openConsumer(ctx, concurrency, onJob): Promise<Consumer> {
      const c = classes(ctx);
      const queue = c.queue();
      queue.on("error", () => {});
      const worker = c.worker(concurrency, onJob);
      worker.on("error", () => {});
      await queue.waitUntilReady();
      await worker.waitUntilReady();
      return {
        async start() {
          // run() resolves only when the worker closes; its rejection is reported by close().
          worker.run().catch(() => {});
        },
        outstanding: () => counts(queue),
        async close() {
          await worker.close();
          await queue.close();
        },
      };
    },

    async describe() {
      if (engine === "postgres") return [await describePostgres()];
      const redis = new Redis({ ...REDIS, lazyConnect: true, maxRetriesPerRequest: 1 });
      redis.on("error", () => {});
      try {
        await redis.connect();
        const info = await redis.info("server");
        const version = /redis_version:(\S+)/.exec(info)?.[1] ?? "?";
        const aof = ((await redis.config("GET", "appendonly")) as string[])[1];
        const save = ((await redis.config("GET", "save")) as string[])[1];
        return [
          `Redis ${version} at 127.0.0.1:6379 (appendonly ${aof}, save "${save}"): ` +
            (aof === "no" ? "no AOF, so a crash loses recent jobs; not as durable as the SQL stores" : "AOF on"),
        ];
      } finally {
        redis.disconnect();
      }
    },
  };
}
