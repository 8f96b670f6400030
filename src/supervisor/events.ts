/** What the supervisor and its incident recorder tell their listeners, as typed events. */
import type { Incident } from "../core/types.js";
import type { AlertEvent } from "../core/status.js";

/** The open incidents of `service` on this host were marked recovered at `at`. */
export interface RecoveredEvent {
  service: string;
  /** ms since the epoch */
  at: number;
  /** How many incidents were closed. */
  count: number;
}

/** Event name → listener arguments, for `EventEmitter<IncidentEvents>`. */
export interface IncidentEvents {
  /** An incident row was added. */
  incident: [Incident];
  recovered: [RecoveredEvent];
  /** An alert went to the sinks. */
  alert: [AlertEvent];
  /** A listener of the events above threw; logged, supervision goes on. */
  error: [Error];
}

/** The Supervisor's events: its incident recorder's, and `stopped` after a stop asked over the control socket. */
export interface SupervisorEvents extends IncidentEvents {
  stopped: [];
}
