/**
 * `/metrics` in the Prometheus text format, from prom-client with its own Registry (never
 * the library's global one, so embedding Vigil cannot collide with an application's
 * metrics). Values are read from the store and the status snapshot at scrape time: a
 * scrape every 15 s costs a handful of indexed queries, and nothing runs between scrapes.
 *
 * Series (besides prom-client's default process_* and nodejs_* metrics, which include the
 * supervisor's event-loop lag):
 * - vigil_jobs{queue,state}                      jobs per state now (gauge)
 * - vigil_jobs_completed_total{queue}            jobs completed, all time (counter; survives pruning)
 * - vigil_jobs_dead_total{queue}                 jobs dead, all time (counter)
 * - vigil_queue_oldest_waiting_seconds{queue}    age of the oldest due waiting job
 * - vigil_job_duration_seconds{queue,quantile}   p50/p95 of jobs finished in the last 5 min
 * - vigil_service_up{service}                    1 while the process runs with a fresh heartbeat
 * - vigil_service_heartbeat_age_seconds{service}
 * - vigil_service_restarts_total{service}        restarts seen by the supervisor (counter)
 * - vigil_incidents_total{service,cause}         incidents recorded since this process started
 * - vigil_stalls_total{service}                  the `stall` incidents among them
 * - vigil_trigger_lag_seconds{trigger}, vigil_trigger_last_poll_age_seconds{trigger},
 *   vigil_trigger_records{trigger,kind="seen"|"rejected"}
 * - vigil_alerts_total{outcome}                  sent, suppressed, delivered, failed, dropped
 * - vigil_http_requests_total{route,status}
 * - vigil_store_size_bytes, vigil_store_jobs_held  the store on disk and the jobs in it
 *   (its growth: `deriv(vigil_store_size_bytes[1h])`)
 * - vigil_store_wal_bytes                         SQLite: the WAL file
 * - vigil_store_dead_tuples{table}, vigil_store_xid_age{table},
 *   vigil_store_last_vacuum_age_seconds{table}    PostgreSQL: per Vigil table
 * - vigil_store_oldest_transaction_seconds        PostgreSQL: the oldest open transaction on the database
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Store } from "../store/store.js";
import type { AlertStats } from "../health/alerts.js";
import type { StatusSnapshot } from "../core/status.js";

/** Where the series are read from at scrape time. */
export interface MetricsSources {
  store: Store;
  snapshot: () => Promise<StatusSnapshot>;
  alerts?: () => AlertStats;
  /** A heartbeat older than this counts as down in `vigil_service_up` (default 5 s). */
  stallAfter?: number;
}

/** The registry and how to render it. */
export interface Metrics {
  registry: Registry;
  contentType: string;
  /** Refreshes every series from the sources and renders the text format. */
  render(): Promise<string>;
  countRequest(route: string, status: number): void;
}

/** Window for the duration quantiles: long enough to hold a few jobs on a quiet queue. */
const DURATION_WINDOW_MS = 5 * 60_000;
/**
 * The quantiles are recomputed at most this often. They read every job finished in the
 * window (a few hundred ms on a store of 100k jobs), and a 5-minute quantile moves little
 * in 30 s, so scrapes every 15 s reuse the last figures instead of paying for them twice.
 */
const DURATION_REFRESH_MS = 30_000;

/** Creates the registry with every series above and prom-client's default metrics. */
export function createMetrics(src: MetricsSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const startedAt = src.store.clock.now();
  const stallAfter = src.stallAfter ?? 5000;
  const g = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  const c = (name: string, help: string, labelNames: string[]) =>
    new Counter({ name, help, labelNames, registers: [registry] });

  const jobs = g("vigil_jobs", "Jobs per queue and state, now.", ["queue", "state"]);
  const completed = c("vigil_jobs_completed_total", "Jobs completed, all time (survives pruning).", ["queue"]);
  const dead = c("vigil_jobs_dead_total", "Jobs dead, all time (survives pruning).", ["queue"]);
  const oldest = g("vigil_queue_oldest_waiting_seconds", "Age of the oldest due waiting job.", ["queue"]);
  const duration = g("vigil_job_duration_seconds", "Duration quantiles of jobs finished in the last 5 minutes.", [
    "queue",
    "quantile",
  ]);
  const up = g("vigil_service_up", "1 while the process runs with a fresh heartbeat.", ["service"]);
  const hbAge = g("vigil_service_heartbeat_age_seconds", "Seconds since the last heartbeat.", ["service"]);
  const restarts = c("vigil_service_restarts_total", "Restarts seen by the supervisor.", ["service"]);
  const incidents = c("vigil_incidents_total", "Incidents recorded since this process started.", ["service", "cause"]);
  const stalls = c("vigil_stalls_total", "Stall incidents recorded since this process started.", ["service"]);
  const trigLag = g("vigil_trigger_lag_seconds", "Seconds between a record appearing and its job.", ["trigger"]);
  const trigPoll = g("vigil_trigger_last_poll_age_seconds", "Seconds since the trigger's last poll.", ["trigger"]);
  const trigRecords = g("vigil_trigger_records", "Records a trigger has seen or rejected.", ["trigger", "kind"]);
  const alerts = g("vigil_alerts_total", "Alert events by outcome since this process started.", ["outcome"]);
  const requests = c("vigil_http_requests_total", "HTTP requests served.", ["route", "status"]);
  const storeSize = g("vigil_store_size_bytes", "Bytes the store takes (SQLite file and WAL; PostgreSQL tables and indexes).", []);
  const storeJobs = g("vigil_store_jobs_held", "Jobs the store holds (an estimate).", []);
  const storeWal = g("vigil_store_wal_bytes", "SQLite: bytes in the WAL file.", []);
  const deadTuples = g("vigil_store_dead_tuples", "PostgreSQL: dead rows in a Vigil table, waiting for vacuum.", ["table"]);
  const xidAge = g("vigil_store_xid_age", "PostgreSQL: transactions since a Vigil table was last frozen.", ["table"]);
  const vacuumAge = g("vigil_store_last_vacuum_age_seconds", "PostgreSQL: seconds since a Vigil table's last (auto)vacuum.", ["table"]);
  const oldestTx = g("vigil_store_oldest_transaction_seconds", "PostgreSQL: seconds the oldest open transaction on the database has run.", []);

  const names = new Map<Counter, string>([
    [completed, "completed"],
    [dead, "dead"],
    [restarts, "restarts"],
  ]);
  // Counters move by the growth of the store's totals; the first scrape adds the whole total.
  const seen = new Map<string, number>();
  const bump = (counter: Counter, labels: Record<string, string>, value: number): void => {
    const key = names.get(counter) + JSON.stringify(labels);
    const prev = seen.get(key);
    // A smaller value means the source restarted (a new supervisor): take it as the new base.
    const delta = prev === undefined ? value : value >= prev ? value - prev : 0;
    seen.set(key, value);
    counter.inc(labels, delta);
  };
  let lastIncidentId = 0;
  let durationsAt = -Infinity;
  let durationsCache: Awaited<ReturnType<Store["report"]>> = [];
  const durationsNow = async (now: number) => {
    if (now - durationsAt >= DURATION_REFRESH_MS) {
      durationsCache = await src.store.report(now - DURATION_WINDOW_MS);
      durationsAt = now;
    }
    return durationsCache;
  };

  const refresh = async (): Promise<void> => {
    const now = src.store.clock.now();
    const [stats, waiting, durations, snapshot, newIncidents, upkeep] = await Promise.all([
      src.store.stats(),
      src.store.oldestWaiting(),
      durationsNow(now),
      src.snapshot().catch(() => null),
      src.store.listIncidents({ since: startedAt, limit: 10_000 }),
      src.store.upkeep(),
    ]);
    storeSize.set(upkeep.sizeBytes);
    storeJobs.set(upkeep.jobsHeld);
    if (upkeep.walBytes !== undefined) storeWal.set(upkeep.walBytes);
    for (const gauge of [deadTuples, xidAge, vacuumAge]) gauge.reset();
    for (const t of upkeep.tables ?? []) {
      deadTuples.set({ table: t.table }, t.deadTuples);
      xidAge.set({ table: t.table }, t.xidAge);
      if (t.lastVacuumAgeMs !== null) vacuumAge.set({ table: t.table }, t.lastVacuumAgeMs / 1000);
    }
    if (upkeep.engine === "postgres") oldestTx.set((upkeep.oldestTransactionMs ?? 0) / 1000);
    jobs.reset();
    for (const [queue, counts] of Object.entries(stats)) {
      for (const [state, n] of Object.entries(counts)) jobs.set({ queue, state }, n);
      bump(completed, { queue }, counts.completed);
      bump(dead, { queue }, counts.dead);
    }
    oldest.reset();
    for (const [queue, age] of Object.entries(waiting)) oldest.set({ queue }, age / 1000);
    duration.reset();
    for (const r of durations) {
      if (r.p50Ms !== null) duration.set({ queue: r.queue, quantile: "0.5" }, r.p50Ms / 1000);
      if (r.p95Ms !== null) duration.set({ queue: r.queue, quantile: "0.95" }, r.p95Ms / 1000);
    }
    for (const inc of newIncidents) {
      if (inc.id <= lastIncidentId) continue;
      incidents.inc({ service: inc.service, cause: inc.cause });
      if (inc.cause === "stall") stalls.inc({ service: inc.service });
    }
    lastIncidentId = Math.max(lastIncidentId, ...newIncidents.map((i) => i.id));
    up.reset();
    hbAge.reset();
    trigLag.reset();
    trigPoll.reset();
    trigRecords.reset();
    for (const s of snapshot?.services ?? []) {
      const fresh = s.heartbeatAgeMs === null || s.heartbeatAgeMs <= stallAfter;
      up.set({ service: s.name }, s.state === "running" && fresh ? 1 : 0);
      if (s.heartbeatAgeMs !== null) hbAge.set({ service: s.name }, s.heartbeatAgeMs / 1000);
      bump(restarts, { service: s.name }, s.restarts);
    }
    for (const t of snapshot?.triggers ?? []) {
      if (t.lag !== null) trigLag.set({ trigger: t.name }, t.lag / 1000);
      if (t.lastPollAt !== null) trigPoll.set({ trigger: t.name }, Math.max(0, now - t.lastPollAt) / 1000);
      trigRecords.set({ trigger: t.name, kind: "seen" }, t.seen);
      trigRecords.set({ trigger: t.name, kind: "rejected" }, t.rejected);
    }
    if (src.alerts) {
      const a = src.alerts();
      for (const outcome of ["sent", "suppressed", "delivered", "failed", "dropped"] as const) {
        alerts.set({ outcome }, a[outcome]);
      }
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    async render(): Promise<string> {
      await refresh();
      return registry.metrics();
    },
    countRequest(route: string, status: number): void {
      requests.inc({ route, status: String(status) });
    },
  };
}
