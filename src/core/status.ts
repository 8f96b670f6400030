/**
 * Shapes shared by the supervisor (which produces them), the status file, the HTTP API,
 * the dashboard and the CLI (which read them). `StatusSnapshot` is the contract of
 * `vigil status --json` and `.vigil/status.json` (DESIGN.md): fields may be added, never
 * renamed.
 */
import type { Incident, QueueCounts } from "./types.js";

export type ServiceState = "starting" | "running" | "stalled" | "restarting" | "crash-looping" | "stopped";

export interface ServiceStatus {
  /** One row per process: `workers:1`, `workers:2`; a single-instance service keeps its name. */
  name: string;
  /** The service in the config this process belongs to. */
  service: string;
  kind: "worker" | "command";
  host: string;
  state: ServiceState;
  pid: number | null;
  restarts: number;
  /** ms since the last heartbeat (or successful probe / status-file touch); null if none yet. */
  heartbeatAgeMs: number | null;
  /** ms since the epoch the current process started. */
  startedAt: number | null;
  rssBytes: number | null;
  /** Worker id (for workers) as it appears on leases. */
  workerId?: string | null;
  /** Jobs the worker reported running in its last heartbeat. */
  activeJobs?: number;
  lastExit?: { code: number | null; signal: string | null; at: number } | null;
  /** When a restart is due (restarting / crash-looping). */
  nextRestartAt?: number | null;
}

export interface TriggerStatus {
  name: string;
  kind: "tail" | "watch" | "file" | "schedule";
  queue: string;
  /** ms since the epoch of the last completed poll, or null. */
  lastPollAt: number | null;
  /** ms between a record appearing and the poll that turned it into a job (last poll), or null. */
  lag: number | null;
  seen: number;
  rejected: number;
  error: string | null;
  host?: string | null;
  /** Whether this process holds the trigger's leader lock (false: another process polls it). */
  leader?: boolean;
  /** A schedule trigger: ms since the epoch of the last tick enqueued (null: none yet, or not known here). */
  lastTickAt?: number | null;
  /** A schedule trigger: ms since the epoch of its next tick (null: the expression has no more). */
  nextTickAt?: number | null;
  /** A schedule trigger: ticks this process skipped as missed after a downtime (`misfire`). */
  missedTicks?: number;
}

export interface StatusSnapshot {
  /** ms since the epoch this snapshot was made. */
  at: number;
  supervisor: { pid: number; host: string; startedAt: number; version: string } | null;
  services: ServiceStatus[];
  queues: Record<string, QueueCounts>;
  /** Queues paused by `vigil queues pause` (their waiting jobs wait on purpose). */
  paused?: string[];
  triggers: TriggerStatus[];
  incidents: Incident[];
  /** Where the snapshot came from: the live supervisor, the status file, or the store alone. */
  source: "supervisor" | "status-file" | "store";
}

export type AlertKind = "stall" | "crash" | "crash-loop" | "job-dead" | "health" | "recovered" | "memory" | "probe";

/** What the supervisor tells the alert sinks. Sinks dedupe and rate-limit per service + kind. */
export interface AlertEvent {
  kind: AlertKind;
  /** The service (or queue for job-dead, or `health`) the event is about. */
  subject: string;
  host: string;
  /** ms since the epoch */
  at: number;
  message: string;
  /** For `recovered`: the kind that recovered. For `health`: degraded | unhealthy. */
  detail?: Record<string, unknown>;
}

/** Where alert events go; the supervisor never waits on it. */
export interface AlertSink {
  emit(event: AlertEvent): void;
  close?(): Promise<void>;
}
