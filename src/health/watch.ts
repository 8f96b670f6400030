/**
 * Health as alerts: runs the health checks periodically inside the supervisor and tells
 * the alert sink when the overall status changes — a `health` event (detail.status
 * `degraded` or `unhealthy`) when it gets worse, a `recovered` event when it is ok again.
 * The sink's rules then send one message per escalation and one recovery.
 *
 * With a store it also watches the per-queue dead totals and emits `job-dead` (subject:
 * the queue) when they grow — the supervisor never sees jobs, so this is where jobs that
 * died become alerts. Jobs already dead when the watch starts are not alerted.
 */
import { startPeriodic } from "../core/periodic.js";
import type { CheckStatus, HealthReport } from "./checks.js";
import { silentLogger, type Logger } from "../core/log.js";
import type { Store } from "../store/store.js";
import type { AlertSink } from "../core/status.js";

/** The subject of `health` alerts and their recovery. */
export const HEALTH_SUBJECT = "health";

/** Options of `startHealthWatch`. */
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
  /** Watch dead totals per queue for `job-dead` alerts (optional). */
  store?: Store;
  logger?: Logger;
}

/** A running health watch. */
export interface HealthWatch {
  /** Runs the checks now and alerts on a change; returns the report. */
  runOnce(): Promise<HealthReport | null>;
  stop(): void;
}

/** Starts running the checks every `every` ms and alerting on changes. */
export function startHealthWatch(opts: HealthWatchOptions): HealthWatch {
  const log = opts.logger ?? silentLogger;
  let last: CheckStatus = "ok";
  let deadSeen: Record<string, number> | null = null;

  const watchDead = async (): Promise<void> => {
    if (!opts.store) return;
    const stats = await opts.store.stats();
    const now: Record<string, number> = {};
    for (const [queue, counts] of Object.entries(stats)) now[queue] = counts.dead;
    if (deadSeen) {
      for (const [queue, dead] of Object.entries(now)) {
        const grew = dead - (deadSeen[queue] ?? 0);
        if (grew <= 0) continue;
        opts.sink.emit({
          kind: "job-dead",
          subject: queue,
          host: opts.host,
          at: Date.now(),
          message: `${grew} job(s) died on queue ${queue}; \`vigil jobs list --state dead --queue ${queue}\` shows why.`,
          detail: { count: grew, total: dead },
        });
      }
    }
    deadSeen = now;
  };

  const check = async (): Promise<HealthReport | null> => {
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
      await watchDead().catch((err: unknown) => log.warn({ err }, "dead-job watch failed"));
      return report;
    } catch (err) {
      log.warn({ err }, "health check run failed");
      return null;
    }
  };

  const task = startPeriodic({ name: "health watch", every: opts.every ?? 30_000, run: check, log });
  return { runOnce: task.runOnce, stop: () => void task.stop() };
}
