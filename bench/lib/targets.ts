/** Every system the throughput benchmark can measure, with the settings it runs under. */
import type { Target, TargetSpec } from "./target.js";

export const TARGETS: TargetSpec[] = [
  {
    system: "vigil-sqlite",
    variant: "defaults",
    settings: "openStore('sqlite:<tmp>/bench.db'): WAL, durability normal; Worker defaults (lease 10 s)",
    load: async () => (await import("./target-vigil.js")).vigilTarget("sqlite"),
  },
  {
    system: "vigil-postgres",
    variant: "defaults",
    settings: "openStore('postgres://postgres@127.0.0.1:5432/test', { schema: 'bench_vigil_*' }); Worker defaults",
    load: async () => (await import("./target-vigil.js")).vigilTarget("postgres"),
  },
  {
    system: "bullmq-redis",
    variant: "defaults",
    settings: "bullmq 6.7 + ioredis, Queue/Worker defaults (completed jobs kept), own key prefix",
    load: async () => (await import("./target-bullmq.js")).bullmqTarget("redis"),
  },
  {
    system: "bullmq-postgres",
    variant: "defaults",
    settings: "bullmq 6.7 createPostgresBackend, { schema: 'bench_bullmq_*', migrate: true }, defaults",
    load: async () => (await import("./target-bullmq.js")).bullmqTarget("postgres"),
  },
  {
    system: "pg-boss",
    variant: "defaults",
    settings: "pg-boss 10.4, defaults (batchSize 1, pollingIntervalSeconds 2); concurrency N = N work() loops",
    load: async () => (await import("./target-pgboss.js")).pgBossTarget(1),
  },
  {
    system: "pg-boss",
    variant: "batch1000",
    settings: "pg-boss 10.4, work({ batchSize: 1000 }); concurrency N = N work() loops",
    load: async () => (await import("./target-pgboss.js")).pgBossTarget(1000),
  },
  {
    system: "graphile-worker",
    variant: "defaults",
    settings: "graphile-worker 0.17, run({ concurrency }) defaults (pollInterval 2 s, maxPoolSize 10)",
    load: async () => (await import("./target-graphile.js")).graphileTarget(false),
  },
  {
    system: "graphile-worker",
    variant: "tuned",
    settings: "graphile-worker 0.17, preset.worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0 }",
    load: async () => (await import("./target-graphile.js")).graphileTarget(true),
  },
];

/** `system:variant`, the name a child process is told to load. */
export function targetKey(spec: Pick<TargetSpec, "system" | "variant">): string {
  return `${spec.system}:${spec.variant}`;
}

export async function loadTarget(key: string): Promise<Target> {
  const spec = TARGETS.find((t) => targetKey(t) === key);
  if (!spec) throw new Error(`unknown benchmark target ${key}`);
  return spec.load();
}
