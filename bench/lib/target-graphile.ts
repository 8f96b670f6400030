/**
 * Graphile Worker 0.17 on the local PostgreSQL, in its own schema: with its defaults, or
 * tuned for throughput as its performance guide describes (a local queue of 500 jobs
 * fetched and locked at once, completions batched with `completeJobBatchDelay: 0`).
 */
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";
import type { Runner, WorkerUtils } from "graphile-worker";
import { PG_URL, describePostgres, dropSchema, freshSchema } from "./pg.js";
import type { BenchPayload, Consumer, Producer, Target, TargetCtx } from "./target.js";

const TASK = "bench";

/** Only warnings and errors: Graphile logs every worker start at `info`. */
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") process.stderr.write(`graphile-worker ${level}: ${message}\n`);
});

async function utils(ctx: TargetCtx): Promise<WorkerUtils> {
  return makeWorkerUtils({ connectionString: PG_URL, schema: String(ctx["schema"]), logger });
}

export function graphileTarget(tuned: boolean): Target {
  return {
    async create() {
      const ctx: TargetCtx = { schema: freshSchema("graphile") };
      await runMigrations({ connectionString: PG_URL, schema: String(ctx["schema"]), logger });
      return ctx;
    },

    async destroy(ctx) {
      if (ctx["schema"]) await dropSchema(String(ctx["schema"]));
    },

    async openProducer(ctx): Promise<Producer> {
      const u = await utils(ctx);
      return {
        async enqueueOne(payload) {
          await u.addJob(TASK, payload);
        },
        async enqueueBulk(payloads) {
          await u.addJobs(payloads.map((payload) => ({ identifier: TASK, payload })));
        },
        close: async () => {
          await u.release();
        },
      };
    },

    async openConsumer(ctx, concurrency, onJob): Promise<Consumer> {
      const counter = await utils(ctx);
      const schema = String(ctx["schema"]);
      let runner: Runner | null = null;
      return {
        // Graphile has no "connected but idle" state: run() connects and starts at once,
        // so its start-up (a pool, a migration check) is inside the drain clock.
        async start() {
          runner = await run({
            connectionString: PG_URL,
            schema,
            concurrency,
            noHandleSignals: true,
            logger,
            taskList: {
              [TASK]: async (payload) => {
                onJob(payload as BenchPayload);
              },
            },
            ...(tuned ? { preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0 } } } : {}),
          });
        },
        // Graphile deletes a job when it completes: what is left is outstanding.
        outstanding: () =>
          counter.withPgClient(async (c) => {
            const r = await c.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}"._private_jobs`);
            return Number(r.rows[0]?.n ?? 0);
          }),
        async close() {
          await runner?.stop();
          await counter.release();
        },
      };
    },

    async describe() {
      return [await describePostgres()];
    },
  };
}
