/**
 * pg-boss 10 on the local PostgreSQL, in its own schema.
 *
 * pg-boss 10 has no per-worker concurrency: each `work()` call is one polling loop that
 * fetches `batchSize` jobs, runs the handler on them and completes them together, then
 * waits out the rest of `pollingIntervalSeconds` (default 2 s) unless notified from the
 * same process. Concurrency N here is N `work()` loops, as its docs suggest.
 */
import PgBoss from "pg-boss";
import { PG_URL, describePostgres, dropSchema, freshSchema } from "./pg.js";
import type { BenchPayload, Consumer, Producer, Target, TargetCtx } from "./target.js";

const QUEUE = "bench";

async function startBoss(ctx: TargetCtx, extra: PgBoss.ConstructorOptions = {}): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: PG_URL, schema: String(ctx["schema"]), ...extra });
  // pg-boss reports connection and maintenance failures as 'error' events.
  boss.on("error", () => {});
  await boss.start();
  return boss;
}

/** `batchSize` 1 is pg-boss's default. */
export function pgBossTarget(batchSize: number): Target {
  // A producer or set-up instance runs no maintenance or cron loops: only the consumer
  // side (a real deployment's worker) keeps pg-boss's defaults for those.
  const quiet: PgBoss.ConstructorOptions = { supervise: false, schedule: false };
  return {
    async create() {
      const ctx: TargetCtx = { schema: freshSchema("pgboss") };
      const boss = await startBoss(ctx, quiet);
      await boss.createQueue(QUEUE);
      await boss.stop({ graceful: false, wait: true });
      return ctx;
    },

    async destroy(ctx) {
      if (ctx["schema"]) await dropSchema(String(ctx["schema"]));
    },

    async openProducer(ctx): Promise<Producer> {
      const boss = await startBoss(ctx, quiet);
      return {
        async enqueueOne(payload) {
          await boss.send(QUEUE, payload);
        },
        async enqueueBulk(payloads) {
          await boss.insert(payloads.map((data) => ({ name: QUEUE, data })));
        },
        close: () => boss.stop({ graceful: false, wait: true }),
      };
    },

    async openConsumer(ctx, concurrency, onJob): Promise<Consumer> {
      const boss = await startBoss(ctx);
      const options: PgBoss.WorkOptions = batchSize === 1 ? {} : { batchSize };
      return {
        async start() {
          for (let i = 0; i < concurrency; i++) {
            await boss.work<BenchPayload>(QUEUE, options, async (jobs) => {
              for (const job of jobs) onJob(job.data);
            });
          }
        },
        outstanding: () => boss.getQueueSize(QUEUE, { before: "completed" }),
        close: () => boss.stop({ graceful: false, wait: true }),
      };
    },

    async describe() {
      return [await describePostgres()];
    },
  };
}
