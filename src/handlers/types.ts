/**
 * The handler contract (DESIGN.md, "Handler contract"): what a stage's code receives and
 * what it returns. A module handler is `export default async function (job, ctx)`; a
 * command handler is built into the same shape by `commandHandler`.
 */
import type { Logger } from "pino";
import type { JobSource } from "../core/types.js";

/** What a handler sees of its job. Fields may be added, never renamed. */
export interface HandlerJob<P = unknown> {
  id: number;
  queue: string;
  payload: P;
  /** The idempotency key, if the job was enqueued with one. */
  key: string | null;
  /** This attempt, from 1. A value above 1 means an earlier attempt failed or stalled. */
  attempt: number;
  /** ms since the epoch */
  createdAt: number;
  /** Which trigger, file and offset made the job, if a trigger did. */
  source: JobSource | null;
  /** The job whose result this job's payload is (pipeline stages), if any. */
  parentId: number | null;
  /** The first job of this pipeline run, if this job was made by a stage hand-off. */
  rootId: number | null;
}

/** What a handler gets beside its job. */
export interface HandlerContext {
  /**
   * Aborted when the handler must stop: its `timeout` passed, its lease was lost (another
   * worker has the job now), or the worker is shutting down. Pass it to fetch, child
   * processes and timers; a handler that ignores it is declared wedged `killGrace` later.
   */
  signal: AbortSignal;
  /**
   * Says "still making progress". With a queue `heartbeatTimeout`, a handler that has
   * called this once and then stops calling it for that long is treated as hung.
   */
  heartbeat(progress?: unknown): void;
  /** A pino logger bound to the job id, queue and attempt; writes JSON lines to stdout. */
  log: Logger;
  /**
   * The provider answered "too many requests" (HTTP 429): throws, ending the handler; the
   * job goes back unrun (its attempt not counted) and the whole queue, or the job's group
   * when the queue has `group`, starts nothing for `ms`, on every worker and host.
   */
  rateLimited(ms: number, reason?: string): never;
}

/**
 * A stage: returns the job's result (JSON-serialisable; it becomes the next stage's payload,
 * see src/pipeline/route.ts for explicit routing). Throwing fails the attempt;
 * `NonRetryableError` sends the job to `dead`, `RetryAfterError` sets the retry delay.
 */
export type Handler<P = unknown, R = unknown> = (job: HandlerJob<P>, ctx: HandlerContext) => R | Promise<R>;
