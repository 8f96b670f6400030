/**
 * `vigil.yaml`, validated with zod. Spellings are a contract (DESIGN.md, "Config"):
 * they may be added to, never renamed. Durations are strings like `500ms`, `2s`, `5m`;
 * after parsing, every duration is a number of milliseconds.
 */
import { z } from "zod";
import { parseDuration, parseSize } from "../core/duration.js";
import { isTimeZone, scheduleProblem } from "../core/schedule.js";
import { LIMITS, QUEUE_NAME } from "../core/limits.js";
import { DEFAULT_STORE_URL } from "../core/store-url.js";

const duration = (fallback?: string) => {
  const base = z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `"${v}" is not a duration; write it like 500ms, 2s, 5m, 24h or 7d` });
      return z.NEVER;
    }
    return ms;
  });
  return fallback === undefined ? base : base.default(parseDuration(fallback)!);
};

const size = (fallback: string) =>
  z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const n = parseSize(v);
      if (n === undefined) {
        ctx.addIssue({ code: "custom", message: `"${v}" is not a size; write it like 512kb, 1mb or 200mb` });
        return z.NEVER;
      }
      return n;
    })
    .default(parseSize(fallback)!);

/** A rate, `N/DURATION` (job starts per interval): `60/1m`, `20/1s`. */
const rate = z.string().transform((v, ctx) => {
  const m = /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(v);
  const intervalMs = m ? parseDuration(m[2]!) : undefined;
  const count = m ? Number(m[1]) : 0;
  if (!m || intervalMs === undefined || intervalMs < 1 || count < 1) {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a rate; write it like 60/1m or 20/1s: job starts (at least 1) per interval` });
    return z.NEVER;
  }
  return { count, intervalMs };
});

/** The payload field a queue's jobs are grouped by: `payload.customer`, `payload.account.id`. */
const groupBy = z
  .string()
  .regex(/^payload(\.[A-Za-z_][A-Za-z0-9_]*)+$/, "write it like payload.customer: a field of the payload, names of letters, digits and _")
  .transform((v) => v.slice("payload.".length));

const command = z.array(z.string().min(1)).min(1, "a command needs at least the program name");
const env = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String));
const queueName = z.string().regex(QUEUE_NAME, "use letters, digits and _ . : - (at most 128)");

export const queueSchema = z
  .strictObject({
    /** A JS/TS module whose default export is `async (job, ctx) => result`. */
    handler: z.string().optional(),
    /** A command run per job without a shell: job JSON on stdin, result JSON on stdout; the last 4 KiB of its stderr is the error when it fails, and one line of the job's log (`stderr`) when it succeeds. */
    command: command.optional(),
    /** Environment for a command handler (added to the worker's). */
    env: env.optional(),
    /** Working folder for a command handler (default: the config file's folder). */
    cwd: z.string().optional(),
    /** Jobs of this queue one worker process runs at once (default 1). */
    concurrency: z.number().int().min(1).max(10_000).default(1),
    /** A handler running longer is aborted (default 5 m). */
    timeout: duration("5m"),
    /** After a timeout's abort, how long the handler may take to settle before the worker process is replaced (default 5 s); the attempt is failed, and its retry scheduled, once it has settled. */
    killGrace: duration("5s"),
    /** A handler that called ctx.heartbeat() and then stops for this long is treated as hung (default: off). */
    heartbeatTimeout: duration().optional(),
    /** Attempts before a job is dead (default 5). */
    attempts: z.number().int().min(1).max(1000).default(5),
    /** Retry delays: exponential from base to max, with jitter (default 1 s to 5 m). */
    backoff: z
      .strictObject({ base: duration("1s"), max: duration("5m") })
      .default({ base: 1000, max: 300_000 }),
    /** Lease length (default 10 s, renewed every third of it). */
    lease: duration("10s"),
    /** Jobs a worker process leases ahead of its free slots so quick jobs (~20 ms or less) run back to back; renewed, given back uncounted on stop (default 10; 0 turns it off). */
    prefetch: z.number().int().min(0).max(1000).optional(),
    /** Stalls (lease lost, worker died) before a job of this queue is dead (default 3). Every process that frees a stalled job — the supervisor when a worker dies, the worker reaping expired leases — judges it by its own queue's value. */
    maxStalls: z.number().int().min(1).max(100).default(3),
    /** The result becomes the payload of a job on this queue. */
    next: queueName.optional(),
    /** Times one pipeline run (root) may pass through this queue before it is dead (default: unbounded). */
    maxRounds: z.number().int().min(1).optional(),
    /** Largest stdout a command handler may print (default 1 MiB). */
    maxOutput: size("1mb"),
    /** An enqueue into the queue with a key a live job holds (`vigil enqueue --key K`, the API, a trigger, a stage handing on a keyed job): `keep` (default) leaves that job as it is; `replace` gives it the new payload if it has not started. An enqueue's own `onDuplicate` (`--replace`) wins. */
    onDuplicate: z.enum(["keep", "replace"]).optional(),
    /** Job starts per interval over every worker and host, e.g. `60/1m`: no window of that length holds more (default: no limit). */
    rate: rate.optional(),
    /** Active jobs of this queue over every worker and host (default: no limit; `concurrency` still bounds each process). */
    limit: z.number().int().min(1).max(1_000_000).optional(),
    /** `{ by: payload.FIELD, limit, rate }`: the same limits per value of that payload field (default: none). */
    group: z
      .strictObject({
        /** The payload field whose value names a job's group, e.g. `payload.customer` (a job without it is in the group ""). */
        by: groupBy,
        limit: z.number().int().min(1).max(1_000_000).optional(),
        rate: rate.optional(),
      })
      .refine((g) => g.limit !== undefined || g.rate !== undefined, { message: "a group needs `limit`, `rate` or both" })
      .optional(),
  })
  .refine((q) => (q.handler === undefined) !== (q.command === undefined), {
    message: "a queue needs exactly one of `handler` (a module) or `command` (a program)",
  });

const triggerCommon = {
  /** Queue the records become jobs on. */
  queue: queueName,
  /** Poll interval (default 2 s). */
  every: duration("2s"),
  /** Host that owns this trigger's files, in a multi-host deployment (default: any). */
  host: z.string().optional(),
  /** Priority of the jobs it makes (within the store's limit, a 32-bit integer). */
  priority: z.number().int().min(LIMITS.priorityMin).max(LIMITS.priorityMax).optional(),
};

export const triggerSchema = z.union([
  z.strictObject({
    /** An append-only file; one job per complete line. */
    tail: z.string().min(1),
    format: z.enum(["lines", "jsonl"]).default("lines"),
    /** Longer lines are rejected records (default 1 MiB). */
    maxLine: size("1mb"),
    /** After a rotation, the renamed file is read on until it has not grown for this long (its writer appends to it until it reopens the path). */
    drain: duration("10s"),
    ...triggerCommon,
  }),
  z.strictObject({
    /** A glob under a folder, e.g. `data/implementations/*.md`. */
    watch: z.string().min(1),
    /** A file is stable once size and mtime stayed unchanged this long (default 1 s). */
    settle: duration("1s"),
    onDelete: z.enum(["ignore", "enqueue"]).default("ignore"),
    ...triggerCommon,
  }),
  z.strictObject({
    /** One file; a job whenever its content hash changes. */
    file: z.string().min(1),
    settle: duration("1s"),
    ...triggerCommon,
  }),
  z
    .strictObject({
      /** A job per tick: a cron expression (5 fields, or 6 with seconds first) or `every DURATION` (ticks at multiples of it since the epoch); see docs/schedules.md. */
      schedule: z.string().superRefine((v, ctx) => {
        const problem = scheduleProblem(v);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      }),
      /** Time zone of a cron expression, an IANA name like `Europe/Berlin` (default: the machine's zone). */
      tz: z
        .string()
        .refine(isTimeZone, { error: (i) => `${JSON.stringify(i.input)} is not a time zone; use an IANA name like Europe/Berlin, America/New_York or UTC` })
        .optional(),
      /** Ticks missed while no process ran the trigger: `skip` (default) drops them, `once` enqueues the latest. */
      misfire: z.enum(["skip", "once"]).default("skip"),
      /** Object each job's payload starts from; `scheduledFor` (the tick time, ISO UTC) is added. */
      payload: z.record(z.string(), z.unknown()).optional(),
      queue: triggerCommon.queue,
      host: triggerCommon.host,
      priority: triggerCommon.priority,
    })
    .superRefine((t, ctx) => {
      if (t.tz !== undefined && /^\s*every\s/i.test(t.schedule)) {
        ctx.addIssue({ code: "custom", path: ["tz"], message: "`every` ticks at multiples of the duration since the epoch, the same in every zone; remove `tz`, or write a cron expression" });
      }
    }),
]);

export const serviceSchema = z.union([
  z.strictObject({
    /** A worker service: `instances` processes of `vigil worker` for these queues. */
    queues: z.array(queueName).min(1),
    instances: z.number().int().min(1).max(64).default(1),
    env: env.optional(),
    /** Restart a process whose RSS grows past this (e.g. 512mb). */
    maxMemory: size("0").optional(),
  }),
  z.strictObject({
    /** A foreign command, run without a shell. */
    command,
    instances: z.number().int().min(1).max(64).default(1),
    env: env.optional(),
    cwd: z.string().optional(),
    /** HTTP URL that must answer 2xx; failing for `stallAfter` means stalled. */
    probe: z.string().url().optional(),
    /** A file the command keeps rewriting: its mtime unchanged for `stallAfter` means stalled. */
    statusFile: z.string().optional(),
    maxMemory: size("0").optional(),
  }),
]);

export const supervisionSchema = z
  .strictObject({
    /** No heartbeat (or failed probe) for this long means stalled (default 5 s). */
    stallAfter: duration("5s"),
    /** On a stop or restart, SIGTERM, then SIGKILL to the process group after this (default 5 s); a stalled worker is SIGKILLed at once. */
    killTimeout: duration("5s"),
    /** Up this long, a process's restart backoff resets (default 30 s). */
    minUptime: duration("30s"),
    /** More restarts than N in the window means crash-looping: `10/5m` (default). */
    maxRestarts: z
      .string()
      .regex(/^\d+\/\s*\d+(\.\d+)?\s*(ms|s|m|h|d)$/, 'write it like "10/5m": restarts per window')
      .default("10/5m")
      .transform((v) => {
        const [n, w] = v.split("/");
        return { count: Number(n), windowMs: parseDuration(w!.trim())! };
      }),
    /** While crash-looping, try again this often (default 5 m). */
    crashLoopRetry: duration("5m"),
    /** How often the status file is rewritten (default 2 s). */
    statusEvery: duration("2s"),
    /** A "recovered" alert goes out once the subject has stayed healthy this long (default 30 s). */
    recoveredAfter: duration("30s"),
  })
  .default({
    stallAfter: 5000,
    killTimeout: 5000,
    minUptime: 30_000,
    maxRestarts: { count: 10, windowMs: 300_000 },
    crashLoopRetry: 300_000,
    statusEvery: 2000,
    recoveredAfter: 30_000,
  });

export const alertSchema = z.union([
  z.strictObject({
    webhook: z.string().url(),
    timeout: duration("5s"),
    headers: z.record(z.string(), z.string()).optional(),
  }),
  z.strictObject({ command, timeout: duration("10s") }),
]);

export const configSchema = z.strictObject({
  /** `sqlite:PATH` (default `sqlite:.vigil/vigil.db`) or `postgres://user@host/db`. */
  store: z.string().default(DEFAULT_STORE_URL),
  /** SQLite: `normal` (default) or `full` (fsync every commit). */
  durability: z.enum(["normal", "full"]).default("normal"),
  /** PostgreSQL schema (default `vigil`). */
  schema: z.string().regex(/^[a-z_][a-z0-9_]*$/).default("vigil"),
  /** Largest payload or result (default 1 MiB). */
  maxPayload: size("1mb"),
  /** Host name shown in worker ids, incidents and status (default: the OS host name; the environment variable VIGIL_HOST overrides both). */
  host: z.string().optional(),
  http: z
    .strictObject({
      host: z.string().default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(7420),
      /** Token for state-changing endpoints (default: generated into .vigil/token). */
      token: z.string().min(16).optional(),
      enabled: z.boolean().default(true),
      /** Refuse every state change over HTTP (retry, cancel, restart); the dashboard only shows. */
      readOnly: z.boolean().default(false),
    })
    .default({ host: "127.0.0.1", port: 7420, enabled: true, readOnly: false }),
  queues: z.record(queueName, queueSchema).default({}),
  triggers: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), triggerSchema).default({}),
  services: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), serviceSchema).default({}),
  supervision: supervisionSchema,
  alerts: z.array(alertSchema).default([]),
  health: z
    .strictObject({
      /** Oldest due waiting job older than this: degraded (default 5 m). */
      maxWaitingAge: duration("5m"),
      /** More jobs dead in the last hour than this: degraded (default 10). */
      maxDeadPerHour: z.number().int().min(0).default(10),
      /** Less free disk than this for the store: degraded (default 500mb). */
      minFreeDisk: size("500mb"),
      /** A store larger than this: degraded (default 10gb). */
      maxStoreSize: size("10gb"),
      /** A SQLite WAL larger than this: degraded (default 1gb). */
      maxWalSize: size("1gb"),
      /** PostgreSQL: dead rows above this fraction of a Vigil table (and over 100,000): degraded (default 0.2). */
      maxDeadTupleRatio: z.number().min(0).max(1).default(0.2),
      /** PostgreSQL: a transaction open longer than this on the store's database: degraded (default 10m). */
      maxTransactionAge: duration("10m"),
      /** PostgreSQL: a Vigil table not frozen by autovacuum for more transactions than this: degraded (default 500,000,000). */
      maxXidAge: z.number().int().min(1).default(500_000_000),
    })
    .default({
      maxWaitingAge: 300_000,
      maxDeadPerHour: 10,
      minFreeDisk: 500 << 20,
      maxStoreSize: 10 * 2 ** 30,
      maxWalSize: 2 ** 30,
      maxDeadTupleRatio: 0.2,
      maxTransactionAge: 600_000,
      maxXidAge: 500_000_000,
    }),
  retention: z
    // cancelled: unset, cancelled jobs go when dead ones do (as before it existed).
    .strictObject({ completed: duration("7d"), dead: duration("30d"), cancelled: duration().optional() })
    .default({ completed: 7 * 86_400_000, dead: 30 * 86_400_000 }),
});

export type VigilConfig = z.infer<typeof configSchema>;
export type QueueConfig = z.infer<typeof queueSchema>;
export type TriggerConfig = z.infer<typeof triggerSchema>;
export type ServiceConfig = z.infer<typeof serviceSchema>;
export type AlertConfig = z.infer<typeof alertSchema>;
