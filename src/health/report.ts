/**
 * `vigil report`: the reliability table the old system kept by hand — uptime, MTBF, MTTR,
 * restarts per day, manual interventions per service; throughput, durations and dead jobs
 * per queue — computed from incident rows and the store's job figures.
 *
 * Definitions (all over the window `[since, until]`):
 * - downtime of a service: the union of its incidents' `[detectedAt, recoveredAt]`
 *   intervals clipped to the window (an open incident runs to `until`);
 *   uptime % = 100 × (1 − downtime / window).
 * - failures: incidents except `stop` and manual restarts (a person asking is not a fault).
 * - MTBF: up time / failures (null with no failure). MTTR: mean of `recoveredAt −
 *   detectedAt` over recovered incidents (null when none recovered).
 * - restarts: every incident except `stop` ends in a restart, and so does a `stop` whose
 *   detail says `action: "restart"` (a manual restart); restarts/day scales to 24 h.
 * - manual interventions: incidents whose detail says a person asked (`detail.manual`
 *   true, or `detail.requestedBy` set), as `vigil restart` and the dashboard record them.
 */
import type { Incident, QueueCounts, QueueReport } from "../core/types.js";
import type { Store } from "../store/store.js";

/** One service (process row) of one host over the window; times in ms. */
export interface ServiceReport {
  service: string;
  /** The host its incidents came from (`workers:1` of two hosts is two rows); null: unknown. */
  host: string | null;
  uptimePct: number;
  downtimeMs: number;
  incidents: number;
  failures: number;
  restarts: number;
  restartsPerDay: number;
  manualInterventions: number;
  /** Mean time between failures, ms; null without failures. */
  mtbfMs: number | null;
  /** Mean time to recover, ms; null when nothing recovered. */
  mttrMs: number | null;
  /** Incidents still open at `until`. */
  open: number;
  /** Incidents per cause. */
  causes: Record<string, number>;
}

/** One queue over the window, with its all-time totals. */
export interface QueueReportRow extends QueueReport {
  /** Completed jobs per hour over the window. */
  throughputPerHour: number;
  /** Totals for all time (they survive pruning). */
  totals: QueueCounts | null;
}

/** What `vigil report --json` and `/api/report` return. */
export interface Report {
  /** ms since the epoch */
  since: number;
  until: number;
  windowMs: number;
  services: ServiceReport[];
  queues: QueueReportRow[];
  manualInterventions: number;
  deadJobs: number;
}

/** The window and the services to list. */
export interface ReportOptions {
  /** Start of the window, ms since the epoch. */
  since: number;
  /** End of the window (default: now). */
  until?: number;
  /** Services to list even without incidents (e.g. from the status snapshot). */
  services?: string[];
  /** The host `services` run on (the status snapshot's supervisor host). */
  host?: string;
  /** Most incidents read (default 100 000). */
  maxIncidents?: number;
}

/** Whether an incident records a restart a person asked for. */
export function isManual(incident: Pick<Incident, "detail">): boolean {
  const d = incident.detail ?? {};
  return d["manual"] === true || (typeof d["requestedBy"] === "string" && d["requestedBy"] !== "");
}

/** Builds the report from the store. */
export async function buildReport(store: Store, opts: ReportOptions): Promise<Report> {
  const until = opts.until ?? store.clock.now();
  const [incidents, queueRows, stats] = await Promise.all([
    store.listIncidents({ since: opts.since, limit: opts.maxIncidents ?? 100_000 }),
    store.report(opts.since),
    store.stats(),
  ]);
  const r = computeReport(incidents, queueRows, { ...opts, until });
  for (const q of r.queues) q.totals = stats[q.queue] ?? null;
  for (const [queue, totals] of Object.entries(stats)) {
    if (!r.queues.some((q) => q.queue === queue)) {
      r.queues.push({ queue, completed: 0, dead: 0, failedAttempts: 0, p50Ms: null, p95Ms: null, throughputPerHour: 0, totals });
    }
  }
  r.queues.sort((a, b) => a.queue.localeCompare(b.queue));
  return r;
}

/** The pure part of `buildReport`, for rows already read. */
export function computeReport(
  incidents: readonly Incident[],
  queues: readonly QueueReport[],
  opts: ReportOptions & { until: number },
): Report {
  const { since, until } = opts;
  const windowMs = Math.max(1, until - since);
  // One row per host and service: `workers:1` on two hosts are two processes.
  const byService = new Map<string, { service: string; host: string | null; list: Incident[] }>();
  const rowOf = (service: string, host: string | null) => {
    const k = `${host ?? ""}\u0000${service}`;
    let r = byService.get(k);
    if (!r) byService.set(k, (r = { service, host, list: [] }));
    return r;
  };
  for (const name of opts.services ?? []) rowOf(name, opts.host ?? null);
  for (const inc of incidents) {
    const end = inc.recoveredAt ?? until;
    if (end < since || inc.detectedAt > until) continue;
    rowOf(inc.service, inc.host || (opts.host ?? null)).list.push(inc);
  }
  const services: ServiceReport[] = [];
  for (const { service, host, list } of byService.values()) {
    const downtimeMs = unionLength(
      list.map((i) => [Math.max(since, i.detectedAt), Math.min(until, i.recoveredAt ?? until)] as const),
    );
    const manual = list.filter(isManual).length;
    // A refused completion is about one job: its worker neither failed nor restarted.
    const failures = list.filter((i) => i.cause !== "stop" && i.cause !== "store-refused" && !isManual(i)).length;
    const restarts = list.filter((i) => (i.cause !== "stop" && i.cause !== "store-refused") || i.detail?.["action"] === "restart").length;
    const recovered = list.filter((i) => i.recoveredAt !== null);
    const causes: Record<string, number> = {};
    for (const i of list) causes[i.cause] = (causes[i.cause] ?? 0) + 1;
    services.push({
      service,
      host,
      uptimePct: round(100 * (1 - downtimeMs / windowMs), 3),
      downtimeMs,
      incidents: list.length,
      failures,
      restarts,
      restartsPerDay: round((restarts * 86_400_000) / windowMs, 2),
      manualInterventions: manual,
      mtbfMs: failures > 0 ? Math.round((windowMs - downtimeMs) / failures) : null,
      mttrMs:
        recovered.length > 0
          ? Math.round(recovered.reduce((n, i) => n + (i.recoveredAt! - i.detectedAt), 0) / recovered.length)
          : null,
      open: list.length - recovered.length,
      causes,
    });
  }
  services.sort((a, b) => (a.host ?? "").localeCompare(b.host ?? "") || a.service.localeCompare(b.service));
  const queueRows: QueueReportRow[] = queues.map((q) => ({
    ...q,
    throughputPerHour: round((q.completed * 3_600_000) / windowMs, 2),
    totals: null,
  }));
  return {
    since,
    until,
    windowMs,
    services,
    queues: queueRows,
    manualInterventions: services.reduce((n, s) => n + s.manualInterventions, 0),
    deadJobs: queueRows.reduce((n, q) => n + q.dead, 0),
  };
}

/** Total length covered by intervals, overlaps counted once. */
function unionLength(intervals: (readonly [number, number])[]): number {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const [a, b] of sorted) {
    if (a > curEnd) {
      if (curEnd > curStart) total += curEnd - curStart;
      curStart = a;
      curEnd = b;
    } else curEnd = Math.max(curEnd, b);
  }
  if (curEnd > curStart) total += curEnd - curStart;
  return total;
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
