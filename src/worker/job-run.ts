/** One attempt of one job inside a worker: its abort signal, context and timers. */
import type { Logger } from "pino";
import { RateLimitedError } from "../core/errors.js";
import { monotonicNow } from "../core/clock.js";
import type { Lease } from "../core/types.js";
import type { HandlerContext, HandlerJob } from "../handlers/types.js";
import type { QueueSettings } from "./options.js";

/** Why a job's signal was aborted because it ran too long or stopped heartbeating. */
export class JobTimeoutError extends Error {
  constructor(
    message: string,
    readonly kind: "timeout" | "heartbeat",
  ) {
    super(message);
    this.name = "JobTimeoutError";
  }
}

/** Why a job's signal was aborted at a graceful stop: it is given back, not failed. */
export class ShutdownAbortError extends Error {
  constructor() {
    super("the worker is shutting down; the job is given back to run again elsewhere");
    this.name = "ShutdownAbortError";
  }
}

export interface JobRunHooks {
  /** The handler stopped heartbeating for `heartbeatTimeout`. */
  onHeartbeatTimeout(run: JobRun): void;
}

/** The state of one running attempt: what the handler sees and what the worker tracks. */
export class JobRun {
  readonly job: HandlerJob;
  readonly ctx: HandlerContext;
  /** The handler's promise has settled. */
  settled = false;
  /**
   * Whatever the handler returns from now on is discarded: it timed out, its lease was
   * lost, or it was given back at a stop.
   */
  gone = false;
  /**
   * The lease is still this worker's, so it is renewed: true until it is lost, given back,
   * or the attempt recorded. A timed-out attempt keeps it until its handler settles (see
   * `timeoutError`), so no retry can start while the handler may still run.
   */
  holdsLease = true;
  /** Why it timed out; its attempt is failed with this once the handler has settled. */
  timeoutError: JobTimeoutError | undefined;
  /** Declared wedged: it did not settle within killGrace of its abort. */
  wedged = false;
  /** ms since the epoch of the last ctx.heartbeat(), if any. */
  lastBeatAt: number | undefined;
  progress: unknown;
  /**
   * When the handler times out (see Worker's deadline sweep), and when it started, in
   * monotonic ms: a step of the wall clock must not time a handler out early or late.
   */
  readonly deadline: number;
  readonly startedMono = monotonicNow();
  /** Its timeout (or heartbeat timeout) has fired. */
  timedOut = false;
  graceTimer: NodeJS.Timeout | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private logger: Logger | undefined;
  /**
   * Made on first use of ctx.signal: most no-op-fast handlers never look at it, and an
   * AbortController per job was a measurable share of a fast drain's CPU time.
   */
  private controller: AbortController | undefined;
  private abortReason: Error | undefined;

  constructor(
    readonly lease: Lease,
    readonly q: QueueSettings,
    private readonly parentLog: Logger,
    readonly startedAt: number,
    private readonly hooks: JobRunHooks,
  ) {
    this.deadline = this.startedMono + q.timeout;
    const j = lease.job;
    this.job = {
      id: j.id,
      queue: j.queue,
      payload: j.payload,
      key: j.key,
      attempt: j.attempt,
      createdAt: j.createdAt,
      source: j.source,
      parentId: j.parentId,
      rootId: j.rootId,
    };
    // A child logger costs a few microseconds; most handlers never log, so it is made on
    // first use instead of once per job.
    const self = this;
    this.ctx = {
      get signal(): AbortSignal {
        return self.signal;
      },
      heartbeat: (progress?: unknown) => self.beat(progress),
      rateLimited: (ms: number, reason?: string): never => {
        if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
          throw new TypeError(`ctx.rateLimited(ms): ms must be a number of milliseconds, not ${String(ms)}`);
        }
        throw new RateLimitedError(ms, reason);
      },
      get log(): Logger {
        self.logger ??= self.parentLog.child({ jobId: j.id, queue: j.queue, attempt: j.attempt });
        return self.logger;
      },
    };
  }

  /** The handler's abort signal; aborted with the first reason given to `abort`. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  get jobId(): number {
    return this.lease.jobId;
  }

  private beat(progress: unknown): void {
    if (this.settled) return;
    this.lastBeatAt = Date.now();
    if (progress !== undefined) this.progress = progress;
    const limit = this.q.heartbeatTimeout;
    if (limit === undefined || this.gone) return;
    if (this.beatTimer) this.beatTimer.refresh();
    else this.beatTimer = setTimeout(() => this.hooks.onHeartbeatTimeout(this), limit);
  }

  /** Aborts the handler's signal (once; later reasons are ignored). */
  abort(reason: Error): void {
    if (this.abortReason) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  stopHeartbeatWatch(): void {
    clearTimeout(this.beatTimer);
    this.beatTimer = undefined;
  }

  clearTimers(): void {
    clearTimeout(this.graceTimer);
    this.stopHeartbeatWatch();
    this.graceTimer = undefined;
  }
}
