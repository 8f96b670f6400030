/** What the store-upkeep health checks read from PostgreSQL's statistics views. */
import type { StoreTableUpkeep, StoreUpkeep } from "../store.js";
import type { Db } from "./db.js";

/**
 * The tables whose churn matters: jobs (every claim and completion), job_history and
 * job_keys (inserts, and retention's deletes), and the counter rows every completion
 * (job_live: every write) updates.
 */
const TABLES = ["jobs", "job_history", "job_keys", "job_counts", "job_live", "job_minutes", "job_failures"];

export async function pgUpkeep(db: Db, schema: string): Promise<StoreUpkeep> {
  const [size, tables, tx] = await Promise.all([
    db.query<{ n: number }>(
      `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS n FROM pg_class c
       JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = $1 AND c.relkind = 'r'`,
      [schema],
    ),
    db.query<{ table: string; live: number; dead: number; xid_age: number; vacuum_ms: number | null }>(
      `SELECT c.relname AS table, coalesce(s.n_live_tup, 0)::bigint AS live, coalesce(s.n_dead_tup, 0)::bigint AS dead,
         age(c.relfrozenxid)::bigint AS xid_age,
         (extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum)) * 1000)::bigint AS vacuum_ms
       FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
       LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
       WHERE ns.nspname = $1 AND c.relkind = 'r' AND c.relname = ANY ($2::text[]) ORDER BY c.relname`,
      [schema, TABLES],
    ),
    // Any session's open transaction holds back vacuum of every table in the database.
    db.query<{ ms: number | null }>(
      `SELECT (extract(epoch FROM now() - min(xact_start)) * 1000)::bigint AS ms FROM pg_stat_activity
       WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid() AND state <> 'idle'`,
    ),
  ]);
  const list: StoreTableUpkeep[] = tables.map((t) => ({
    table: t.table,
    liveTuples: t.live,
    deadTuples: t.dead,
    xidAge: t.xid_age,
    lastVacuumAgeMs: t.vacuum_ms,
  }));
  return {
    engine: "postgres",
    sizeBytes: size[0]?.n ?? 0,
    jobsHeld: list.filter((t) => t.table === "jobs" || t.table === "job_history").reduce((n, t) => n + Number(t.liveTuples), 0),
    tables: list,
    oldestTransactionMs: tx[0]?.ms ?? null,
  };
}
