/**
 * Incidents and alerts as the supervisor raises them. Every fault becomes a store row
 * (the only store writes the supervisor makes, with `releaseWorker`), an event for the
 * HTTP server and dashboard, and an alert for the sinks. A store that is briefly
 * unreachable never stops supervision: the failure is logged and the process is still
 * restarted.
 */
import type { Logger } from "../core/log.js";
import { EventEmitter } from "node:events";
import type { Incident, IncidentCause } from "../core/types.js";
import type { AlertEvent, AlertKind, AlertSink } from "../core/status.js";
import type { Store } from "../store/store.js";
import type { IncidentEvents } from "./events.js";

/** Events (events.ts): `incident` (an incident opened), `recovered`, `alert`. */
export class IncidentRecorder extends EventEmitter<IncidentEvents> {
  constructor(
    private readonly store: Store,
    private readonly host: string,
    private readonly sink: AlertSink,
    private readonly log: Logger,
  ) {
    super();
    this.on("error", (err) => this.log.warn({ err }, "incident listener failed"));
  }

  /** Adds an incident row; null if the store refused (already logged). */
  async open(service: string, cause: IncidentCause, detail: Record<string, unknown>, detectedAt = Date.now()): Promise<Incident | null> {
    try {
      const inc = await this.store.addIncident({ service, host: this.host, cause, detectedAt, detail });
      this.emit("incident", inc);
      return inc;
    } catch (err) {
      this.log.warn({ err }, `could not record the ${cause} incident of ${service}`);
      return null;
    }
  }

  /** Marks the open incidents of `service` on this host recovered at `at` (or only incident `id`). */
  async resolve(service: string, at = Date.now(), id?: number): Promise<number> {
    try {
      const n = await this.store.resolveIncidents(service, { at, host: this.host, ...(id === undefined ? {} : { id }) });
      if (n > 0) this.emit("recovered", { service, at, count: n });
      return n;
    } catch (err) {
      this.log.warn({ err }, `could not mark the incidents of ${service} recovered`);
      return 0;
    }
  }

  async update(id: number, detail: Record<string, unknown>): Promise<void> {
    try {
      await this.store.updateIncident(id, detail);
    } catch (err) {
      this.log.warn({ err }, `could not update incident ${id}`);
    }
  }

  /** Sends an alert event to the sink (never waits on it) and to listeners. */
  alert(kind: AlertKind, subject: string, message: string, detail?: Record<string, unknown>): void {
    const event: AlertEvent = { kind, subject, host: this.host, at: Date.now(), message, ...(detail ? { detail } : {}) };
    this.emit("alert", event);
    try {
      this.sink.emit(event);
    } catch (err) {
      this.log.warn({ err }, "alert sink failed");
    }
  }
}

/** The default sink: alerts go only to listeners and the log. */
export const noopAlertSink: AlertSink = { emit: () => {} };
