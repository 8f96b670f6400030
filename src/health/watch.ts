/**
 * Health as alerts: runs the health checks periodically inside the supervisor and tells
 * the alert sink when the overall status changes — a `health` event (detail.status
 * `degraded` or `unhealthy`) when it gets worse, a `recovered` event when it is ok again.
 * The sink's rules then send one message per escalation and one recovery.
 */
import type { CheckStatus, HealthReport } from "./checks.js";
import { silentLogger, type OpsLogger } from "./log.js";
import type { AlertSink } from "./types.js";

export const HEALTH_SUBJECT = "health";

export interface HealthWatchOptions {
  run: () => Promise<HealthReport>;
  sink: AlertSink;
  host: string;
  /**
   * Time between runs, ms (default 30 s). The checks cost a few store reads and a statfs;
   * 30 s finds a full disk or a growing backlog long before it matters, while stalls and
   * crashes are alerted at once by the supervisor itself.
   */
  every?: number;
  logger?: OpsLogger;
}

export interface HealthWatch {
  /** Runs the checks now and alerts on a change; returns the report. */
  runOnce(): Promise<HealthReport | null>;
  stop(): void;
}

export function startHealthWatch(opts: HealthWatchOptions): HealthWatch {
  const log = opts.logger ?? silentLogger;
  let last: CheckStatus = "ok";
  let busy = false;

  const runOnce = async (): Promise<HealthReport | null> => {
    if (busy) return null;
    busy = true;
    try {
      const report = await opts.run();
      const failing = report.checks.filter((c) => c.status !== "ok");
      if (report.status !== "ok" && report.status !== last) {
        opts.sink.emit({
          kind: "health",
          subject: HEALTH_SUBJECT,
          host: opts.host,
          at: report.at,
          message: `Vigil is ${report.status}: ${failing.map((c) => c.message).join(" ")}`,
          detail: { status: report.status, checks: failing },
        });
      } else if (report.status === "ok" && last !== "ok") {
        opts.sink.emit({
          kind: "recovered",
          subject: HEALTH_SUBJECT,
          host: opts.host,
          at: report.at,
          message: "Vigil is healthy again.",
          detail: { kind: "health", was: last },
        });
      }
      last = report.status;
      return report;
    } catch (err) {
      log.warn({ err }, "health check run failed");
      return null;
    } finally {
      busy = false;
    }
  };

  const timer = setInterval(() => void runOnce(), opts.every ?? 30_000);
  timer.unref();
  return { runOnce, stop: () => clearInterval(timer) };
}
