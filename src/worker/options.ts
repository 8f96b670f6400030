/** What a Worker is told, and the defaults it fills in. */
import type { Logger } from "pino";
import { JOB_BACKOFF, type BackoffPolicy } from "../core/backoff.js";
import type { Handler } from "../handlers/types.js";
import { DEFAULT_LEASE_MS, DEFAULT_MAX_STALLS, type QueueFlow } from "../store/store.js";
import { DEFAULT_PREFETCH } from "./lease-buffer.js";
import type { WedgedEvent } from "./events.js";
import type { FrozenInfo } from "./freeze.js";

/** One queue's settings. Durations in ms. */
export interface QueueOptions {
  handler: Handler;
  /** Jobs of this queue run at once in this worker (default 1). */
  concurrency?: number;
  /** A handler running longer is aborted and its attempt fails (default 5 min). */
  timeout?: number;
  /** After a timeout's abort, how long the handler may take to settle before the worker is wedged (default 5 s). */
  killGrace?: number;
  /** A handler that called ctx.heartbeat() and then stops for this long is treated as hung (default: off). */
  heartbeatTimeout?: number;
  /** Attempts before a job is dead (default: the job's own `maxAttempts`, set at enqueue). */
  attempts?: number;
  /** Retry delays, exponential with jitter (default 1 s to 5 min). */
  backoff?: BackoffPolicy;
  /** Lease length (default 10 s), renewed every third of it. */
  lease?: number;
  /**
   * Jobs leased ahead of free slots, per queue, so a freed slot starts its next job at once
   * and one claim serves several jobs (default 10; 0 turns it off). Only used while the
   * queue's handlers are quick (~20 ms or less); see lease-buffer.ts.
   */
  prefetch?: number;
  /** Stalls before a job is dead, used when this worker reaps expired leases (default 3). */
  maxStalls?: number;
  /** The result becomes the payload of a job on this queue. */
  next?: string;
  /** Times one pipeline run may pass through this queue (default: unbounded). */
  maxRounds?: number;
  /**
   * Flow control over every worker and host (`rate`, `limit`, `group`), enforced by the
   * store at claim time. A start is counted when the job is claimed, so a claimed job must
   * start soon: such a queue leases ahead only within the start slack (see `rateOnly`).
   */
  flow?: QueueFlow;
}

/** Reported when a handler never settled after its abort: the process should be replaced. */
export type WedgedInfo = WedgedEvent;

export interface WorkerOptions {
  /** Queue name → handler, or handler with settings. */
  queues: Record<string, Handler | QueueOptions>;
  /** Stable id in leases and incidents (default: `host:pid:random`). */
  workerId?: string;
  /**
   * What the worker knows of queues it hands work on to but may not run: their
   * `maxRounds` and `attempts`. Queues in `queues` are known already.
   */
  stages?: Record<string, { maxRounds?: number; attempts?: number }>;
  /** After stop() is called, how long in-flight jobs may run before they are given back (default 10 s). */
  shutdownTimeout?: number;
  /** Idle poll interval (default 1 s when the store notifies, 500 ms when it does not). */
  pollInterval?: number;
  /** How often this worker reaps expired leases while it holds the `reaper` lock (default: every 5 s, or half the shortest lease if less). */
  reapInterval?: number;
  /** Called when a handler is wedged. Default: only the `wedged` event (`vigil worker` exits). */
  onWedged?: (info: WedgedInfo) => void;
  /**
   * ms: finding its own clock jumped further than this between two looks (SIGSTOP, a VM
   * pause, a long block), the worker aborts its jobs without recording them and stops,
   * since they may run elsewhere by now (freeze.ts). `vigil worker` gets the supervisor's
   * `stallAfter`. Default: off.
   */
  frozenAfter?: number;
  /** Called when the worker found itself frozen, after its jobs were aborted (`vigil worker` exits). */
  onFrozen?: (info: FrozenInfo) => void;
  /** Logger; default: pino JSON lines on stdout at VIGIL_LOG_LEVEL (default `info`). */
  logger?: Logger;
}

/** A queue's settings with every default filled in. */
export interface QueueSettings {
  name: string;
  handler: Handler;
  concurrency: number;
  timeout: number;
  killGrace: number;
  heartbeatTimeout: number | undefined;
  attempts: number | undefined;
  backoff: BackoffPolicy;
  lease: number;
  prefetch: number;
  maxStalls: number;
  next: string | undefined;
  maxRounds: number | undefined;
  flow: QueueFlow | undefined;
}

/** Default handler timeout: 5 min (DESIGN.md defaults). */
export const DEFAULT_TIMEOUT_MS = 5 * 60_000;
/** Default grace after a timeout's abort before the process counts as wedged: 5 s. */
export const DEFAULT_KILL_GRACE_MS = 5000;
/**
 * Default time in-flight jobs get to finish on a graceful stop: 10 s. Long enough for the
 * short stages a pipeline usually runs to end on their own (no repeat work); short enough
 * that a deploy or restart is not held up. What has not finished is given back without
 * counting an attempt, so a longer wait only trades restart speed for less repeated work.
 */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/**
 * A queue's options with the defaults above filled in; throws when the handler is missing.
 * `defaultPrefetch` is the prefetch of a queue that sets none (DEFAULT_PREFETCH, or a
 * store's larger `claimBatchHint`).
 */
export function queueSettings(name: string, q: Handler | QueueOptions, defaultPrefetch = DEFAULT_PREFETCH): QueueSettings {
  const o: QueueOptions = typeof q === "function" ? { handler: q } : q;
  if (typeof o.handler !== "function") throw new Error(`queue ${name}: handler must be a function`);
  return {
    name,
    handler: o.handler,
    concurrency: Math.max(1, Math.floor(o.concurrency ?? 1)),
    timeout: o.timeout ?? DEFAULT_TIMEOUT_MS,
    killGrace: o.killGrace ?? DEFAULT_KILL_GRACE_MS,
    heartbeatTimeout: o.heartbeatTimeout,
    attempts: o.attempts,
    backoff: o.backoff ?? JOB_BACKOFF,
    lease: o.lease ?? DEFAULT_LEASE_MS,
    prefetch: hasFlow(o.flow) && !rateOnly(o.flow) ? 0 : Math.max(0, Math.floor(o.prefetch ?? defaultPrefetch)),
    maxStalls: o.maxStalls ?? DEFAULT_MAX_STALLS,
    next: o.next,
    maxRounds: o.maxRounds,
    flow: hasFlow(o.flow) ? o.flow : undefined,
  };
}

/**
 * A queue whose only flow control is its own `rate` still leases ahead, but no more than
 * its handlers start within the rate's start slack (lease-buffer.ts, FLOW_PREFETCH_WAIT_MS).
 * With a `limit` or a group, leased jobs count as active everywhere: one worker must not
 * hold them idle while others could run them, so nothing is leased ahead.
 */
export function rateOnly(f: QueueFlow | undefined): boolean {
  return f !== undefined && f.rate !== undefined && f.limit === undefined && f.group === undefined;
}

function hasFlow(f: QueueFlow | undefined): f is QueueFlow {
  return f !== undefined && (f.rate !== undefined || f.limit !== undefined || f.group !== undefined);
}
