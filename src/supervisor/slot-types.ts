/** What a process slot is given: the process to run, the timings, and its callbacks. */
import type { Logger } from "../core/log.js";
import type { IncidentRecorder } from "./incidents.js";
import type { RestartPolicyOptions } from "./restart-policy.js";

/** What to run for one row, built from the config by `buildSlotSpecs`. */
export interface SlotSpec {
  /** Row name: `workers:1` for a multi-instance service, else the service name. */
  name: string;
  service: string;
  kind: "worker" | "command";
  /** 1-based instance number. */
  index: number;
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Heartbeats over IPC (workers and the triggers process). */
  ipc: boolean;
  probe?: string;
  statusFile?: string;
  /** Restart past this RSS in bytes (0 or absent: no limit). */
  maxMemory?: number;
  stackFile?: string;
  /** Where a worker records its command handlers' process groups (killed with it on a stall). */
  commandsDir?: string;
  logFile: string;
}

/** Supervision settings in ms, from `supervision` in the config. */
export interface SlotTiming extends RestartPolicyOptions {
  /** No heartbeat / probe success this long means stalled (default 5 s). */
  stallAfterMs: number;
  /** On a stop or restart, SIGTERM, then SIGKILL to the group this much later (default 5 s); a stalled worker is SIGKILLed at once. */
  killTimeoutMs: number;
}

export interface SlotContext {
  host: string;
  timing: SlotTiming;
  incidents: IncidentRecorder;
  /** Frees the leases of a worker id; resolves to how many jobs were freed. */
  releaseWorker(workerId: string, reason: string): Promise<number>;
  log: Logger;
  /** A child started or exited: the children registry must be rewritten. */
  childrenChanged(): void;
}
