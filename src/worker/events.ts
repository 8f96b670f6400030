/**
 * What a Worker tells whoever listens, as typed events (`worker.on("failed", (f) => ...)`).
 * The Worker itself speaks to no other process: `vigil worker` turns these events into
 * the messages its supervisor expects (supervisor-link.ts).
 */
import type { Job, JobErrorInfo } from "../core/types.js";
import type { FrozenInfo } from "./freeze.js";

/** The worker has started claiming. */
export interface ReadyEvent {
  workerId: string;
  pid: number;
  queues: string[];
}

/** A completion was committed (with the next-stage jobs it created). */
export interface CompletedEvent {
  jobId: number;
  queue: string;
  result: unknown;
  next: Job[];
}

/** An attempt failed and was recorded: retried at `retryAt`, or `dead`. */
export interface FailedEvent {
  jobId: number;
  queue: string;
  /** What was recorded; an Error when the result itself could not be stored. */
  error: JobErrorInfo | Error;
  retryAt?: number;
  dead: boolean;
}

/** Another worker has the job, or it was cancelled: its result is discarded. */
export interface LeaseLostEvent {
  jobId: number;
  queue: string;
}

/** A handler passed its timeout (or went silent past its heartbeat timeout); its signal was aborted. */
export interface TimeoutEvent {
  jobId: number;
  queue: string;
  timeoutMs: number;
}

/** Reported when a handler never settled after its abort: the process should be replaced. */
export interface WedgedEvent {
  jobId: number;
  queue: string;
  reason: string;
}

/**
 * The store refused this one completion (a constraint, a trigger): its job is dead and the
 * rest of its batch committed. `code` is the store's error code.
 */
export interface StoreRefusedEvent {
  jobId: number;
  queue: string;
  error: string;
  code?: string;
}

export type FrozenEvent = FrozenInfo;

/** Event name → listener arguments, for `EventEmitter<WorkerEvents>`. */
export interface WorkerEvents {
  ready: [ReadyEvent];
  completed: [CompletedEvent];
  failed: [FailedEvent];
  "lease-lost": [LeaseLostEvent];
  timeout: [TimeoutEvent];
  wedged: [WedgedEvent];
  frozen: [FrozenEvent];
  "store-refused": [StoreRefusedEvent];
  /** A store call failed (an outage, a refused write); the worker retries or gives the job back. */
  "store-error": [unknown];
  /** stop() began: no more claims; in-flight jobs finish or are given back. */
  draining: [];
  stopped: [];
}
