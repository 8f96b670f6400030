/**
 * Health checks of the store itself, from `store.upkeep()`: its size and where it levels
 * off, the SQLite WAL, and on PostgreSQL dead tuples, autovacuum's freezing age and the
 * oldest open transaction (which holds every vacuum back). Each returns the shape of the
 * other checks (checks.ts); the same figures are `/metrics` gauges (http/metrics.ts).
 */
import { formatDuration } from "../core/duration.js";
import type { StoreUpkeep } from "../store/store.js";

type Verdict = { status: "ok" | "degraded" | "unhealthy"; message: string };

/** The `health:` limits these checks use (config.health), in bytes, ms and fractions. */
export interface StoreLimits {
  /** A store larger than this is degraded (default 10 GiB). */
  maxStoreSize: number;
  /** A SQLite WAL larger than this is degraded (default 1 GiB): checkpoints cannot keep up. */
  maxWalSize: number;
  /** Dead tuples above this fraction of a table's rows (and over 100,000) is degraded (default 0.2). */
  maxDeadTupleRatio: number;
  /** A transaction open longer than this is degraded (default 10 m). */
  maxTransactionAge: number;
  /** A jobs table not frozen for more transactions than this is degraded (default 500 million). */
  maxXidAge: number;
}

export const DEFAULT_STORE_LIMITS: StoreLimits = {
  maxStoreSize: 10 * 2 ** 30,
  maxWalSize: 2 ** 30,
  maxDeadTupleRatio: 0.2,
  maxTransactionAge: 600_000,
  maxXidAge: 500_000_000,
};

/** Dead tuples below this many never count, whatever the fraction (a small table churns). */
const DEAD_TUPLES_FLOOR = 100_000;

export const mib = (n: number): string => `${Math.round(n / (1 << 20)).toLocaleString("en-US")} MiB`;

/** What retention and the last day's throughput say about growth (jobs finished per day, retention in ms). */
export interface Growth {
  finishedPerDay: number;
  retentionMs: number;
}

/** `store-size`: the size now, and where retention makes it level off at the last day's rate. */
export function storeSizeCheck(u: StoreUpkeep, limits: StoreLimits, growth: Growth | null): Verdict {
  const perJob = u.jobsHeld > 0 ? u.sizeBytes / u.jobsHeld : 0;
  let outlook = "";
  if (growth && perJob > 0) {
    const level = growth.finishedPerDay * (growth.retentionMs / 86_400_000) * perJob;
    outlook = ` At the last day's ${Math.round(growth.finishedPerDay).toLocaleString("en-US")} finished jobs and ${formatDuration(growth.retentionMs)} retention it levels off near ${mib(level)} (${mib(perJob * 1000)} per thousand jobs).`;
  }
  const held = `${u.jobsHeld.toLocaleString("en-US")} jobs`;
  if (u.sizeBytes > limits.maxStoreSize) {
    return {
      status: "degraded",
      message: `The store takes ${mib(u.sizeBytes)} for about ${held} (limit ${mib(limits.maxStoreSize)}); shorten \`retention\` or raise \`health.maxStoreSize\` (docs/operations.md, "Sizing and retention").${outlook}`,
    };
  }
  return { status: "ok", message: `The store takes ${mib(u.sizeBytes)} for about ${held}.${outlook}` };
}

/** `store-wal` (SQLite): a WAL that keeps growing means a reader holds checkpoints back. */
export function walCheck(u: StoreUpkeep, limits: StoreLimits): Verdict {
  const wal = u.walBytes ?? 0;
  if (wal > limits.maxWalSize) {
    return {
      status: "degraded",
      message: `The store's WAL is ${mib(wal)} (limit ${mib(limits.maxWalSize)}): a long read keeps it from being checkpointed; find the process holding the store open in a long read (a backup, a stuck \`vigil\` command) and end it.`,
    };
  }
  return { status: "ok", message: `The store's WAL is ${mib(wal)}.` };
}

/** `store-vacuum` (PostgreSQL): dead tuples piling up, or a table autovacuum has not frozen. */
export function vacuumCheck(u: StoreUpkeep, limits: StoreLimits): Verdict {
  const tables = u.tables ?? [];
  const bloated = tables.filter(
    (t) => t.deadTuples > DEAD_TUPLES_FLOOR && t.deadTuples > limits.maxDeadTupleRatio * Math.max(1, t.liveTuples + t.deadTuples),
  );
  const old = tables.filter((t) => t.xidAge > limits.maxXidAge);
  const problems = [
    ...bloated.map((t) => `${t.table} holds ${t.deadTuples.toLocaleString("en-US")} dead rows beside ${t.liveTuples.toLocaleString("en-US")} live ones${t.lastVacuumAgeMs === null ? " and was never vacuumed" : `, last vacuumed ${formatDuration(t.lastVacuumAgeMs)} ago`}`),
    ...old.map((t) => `${t.table} has not been frozen for ${t.xidAge.toLocaleString("en-US")} transactions (limit ${limits.maxXidAge.toLocaleString("en-US")})`),
  ];
  if (problems.length > 0) {
    return {
      status: "degraded",
      message: `${problems.join("; ")}: autovacuum is not keeping up — end long transactions (the store-transactions check), then \`VACUUM (VERBOSE)\` the table or make autovacuum more eager for it (docs/operations.md, "PostgreSQL upkeep").`,
    };
  }
  const jobs = tables.find((t) => t.table === "jobs");
  return {
    status: "ok",
    message: jobs
      ? `The jobs table holds ${jobs.deadTuples.toLocaleString("en-US")} dead rows beside ${jobs.liveTuples.toLocaleString("en-US")} live ones; autovacuum keeps up.`
      : "Autovacuum keeps up.",
  };
}

/** `store-transactions` (PostgreSQL): an open transaction holds back vacuum of every table. */
export function transactionCheck(u: StoreUpkeep, limits: StoreLimits): Verdict {
  const ms = u.oldestTransactionMs ?? null;
  if (ms !== null && ms > limits.maxTransactionAge) {
    return {
      status: "degraded",
      message: `A transaction on the store's database has been open for ${formatDuration(ms)} (limit ${formatDuration(limits.maxTransactionAge)}): while it stays open no dead job row can be vacuumed, so claims slow down; find it in pg_stat_activity and end it.`,
    };
  }
  return { status: "ok", message: ms === null ? "No other transaction is open on the store's database." : `The oldest open transaction has run ${formatDuration(ms)}.` };
}

/** The checks that apply to the store's engine, by name. */
export function storeChecks(u: StoreUpkeep, limits: StoreLimits, growth: Growth | null): [string, Verdict][] {
  const out: [string, Verdict][] = [["store-size", storeSizeCheck(u, limits, growth)]];
  if (u.engine === "sqlite") out.push(["store-wal", walCheck(u, limits)]);
  else out.push(["store-vacuum", vacuumCheck(u, limits)], ["store-transactions", transactionCheck(u, limits)]);
  return out;
}
