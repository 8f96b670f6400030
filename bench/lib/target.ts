/**
 * What every system under test offers the throughput benchmark: a fresh store or queue,
 * a producer (in the benchmark process) and a consumer (in a separate worker process).
 *
 * The context a target creates is plain JSON, because the worker and producer child
 * processes receive it over IPC and open their own connections with it.
 */

/** The system column of a result row (stable names: runs are compared over time). */
export type SystemName =
  | "vigil-sqlite"
  | "vigil-postgres"
  | "bullmq-redis"
  | "bullmq-postgres"
  | "pg-boss"
  | "graphile-worker"
  | "raw-sqlite";

/** Where a fresh store or queue lives; JSON, handed to child processes. */
export type TargetCtx = Record<string, string | number | boolean>;

/** The payload every benchmark job carries: a sequence number and when it was enqueued. */
export interface BenchPayload {
  /** Sequence number within the scenario. */
  i: number;
  /** Enqueue time in ms on the shared monotonic clock (`preciseNow()`). */
  t: number;
  /** A warm-up job: run but not measured. */
  w?: boolean;
}

export interface Producer {
  /** Enqueues one job and waits until it is stored. */
  enqueueOne(payload: BenchPayload): Promise<void>;
  /** Enqueues many jobs in one transaction (or one batch call where there are none). */
  enqueueBulk(payloads: BenchPayload[]): Promise<void>;
  close(): Promise<void>;
}

export interface Consumer {
  /**
   * Starts claiming. Everything slow (connections, migrations check) happens in
   * `openConsumer`; the drain clock starts just before this call.
   */
  start(): Promise<void>;
  /** Jobs not yet completed (waiting, active, scheduled, retrying). */
  outstanding(): Promise<number>;
  /** Stops claiming and closes every connection. */
  close(): Promise<void>;
}

export interface Target {
  /** Makes a fresh, empty store or queue. */
  create(): Promise<TargetCtx>;
  /** Removes it (schema, keys, files). Safe to call on a half-created one. */
  destroy(ctx: TargetCtx): Promise<void>;
  openProducer(ctx: TargetCtx): Promise<Producer>;
  /**
   * Prepares a consumer with the given concurrency (connected, not yet claiming). `onJob`
   * is called synchronously at the start of every handler run, with the job's payload;
   * the handler then returns at once.
   */
  openConsumer(ctx: TargetCtx, concurrency: number, onJob: (p: BenchPayload) => void): Promise<Consumer>;
  /** Extra lines for the settings section (server versions, durability). */
  describe?(): Promise<string[]>;
}

/** One row of a system's settings, printed before its figures. */
export interface TargetSpec {
  system: SystemName;
  /** `defaults`, or what was changed from them. */
  variant: string;
  /** How it is configured, in a sentence. */
  settings: string;
  /** Loads the target lazily (so a missing peer package fails only its own rows). */
  load(): Promise<Target>;
}

/**
 * Now, in ms with sub-microsecond precision, on the machine's monotonic clock
 * (`process.hrtime`, CLOCK_MONOTONIC on Linux), which every process on the machine shares.
 * Not `performance.timeOrigin + performance.now()`: each process fixes its own time
 * origin at start-up, and on a loaded machine two processes' origins were seen to
 * disagree by up to 10 ms — more than the latencies being measured.
 */
export function preciseNow(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
