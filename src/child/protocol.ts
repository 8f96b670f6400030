/**
 * What a `vigil worker` process and its supervisor tell each other over Node's IPC
 * channel (`process.send`). The supervisor only watches processes: it never sees
 * payloads, only job ids and queue names for incidents.
 *
 * The same channel serves the `vigil triggers` process (trigger polling and housekeeping),
 * which the supervisor runs and watches like a worker.
 */
import type { TriggerStatus } from "../core/status.js";

/** Environment the supervisor sets for a worker process. */
export const ENV_WORKER_ID = "VIGIL_WORKER_ID";
/** Where the worker's watchdog thread writes the blocked main thread's stack (JSON). */
export const ENV_STACK_FILE = "VIGIL_STACK_FILE";
/** The service and instance name (`workers:1`), for logs. */
export const ENV_SERVICE = "VIGIL_SERVICE";
/** The supervisor's `stallAfter` in ms: a worker frozen longer stops itself (freeze.ts). */
export const ENV_STALL_AFTER = "VIGIL_STALL_AFTER_MS";

/**
 * How often the worker's main event loop reports that it is alive. The supervisor
 * declares a worker stalled after `stallAfter` (default 5 s) without one, so one
 * second leaves room for four missed beats from GC pauses or a busy machine.
 */
export const HEARTBEAT_INTERVAL_MS = 1000;

export interface ActiveJobInfo {
  jobId: number;
  queue: string;
  attempt: number;
  /** ms since the epoch */
  startedAt: number;
}

export type WorkerMessage =
  /** The worker has opened the store and is claiming. */
  | { t: "ready"; workerId: string; pid: number; queues: string[] }
  /** Sent from the main event loop every HEARTBEAT_INTERVAL_MS. */
  | { t: "hb"; at: number; active: ActiveJobInfo[]; lagMs: number; rssBytes: number }
  /** A handler passed its timeout; its signal was aborted. */
  | { t: "job-timeout"; jobId: number; queue: string; timeoutMs: number }
  /**
   * The store refused this job's completion on its own (a server-side error, not an outage);
   * the job is dead and the rest of its batch committed. `code` is the store's error code.
   */
  | { t: "store-refused"; jobId: number; queue: string; error: string; code?: string }
  /** A handler did not settle within killGrace after its abort (or its heartbeat stopped): the worker exits. */
  | { t: "wedged"; jobId: number; queue: string; reason: string }
  /** The worker is draining after SIGTERM (or a `drain` message). */
  | { t: "draining" }
  /** From the `vigil triggers` process (it heartbeats like a worker): each trigger's state. */
  | { t: "triggers"; triggers: TriggerStatus[] };

export type SupervisorMessage = { t: "drain" };

/** What the watchdog thread writes to ENV_STACK_FILE when the main loop is blocked. */
export interface BlockedStack {
  pid: number;
  /** ms since the epoch */
  capturedAt: number;
  /** How long the main loop had not beaten when captured. */
  blockedForMs: number;
  frames: { functionName: string; url: string; line: number; column: number }[];
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === "object" && m !== null && typeof (m as { t?: unknown }).t === "string";
}

/** Sends over this process's IPC channel, when it has one (a supervisor started it). */
export function sendToParent(m: WorkerMessage): void {
  // The callback swallows a channel closed between the check and the send.
  if (process.send && process.connected) process.send(m, undefined, undefined, () => {});
}
