/**
 * What bench/soak reads from PostgreSQL beside the store: the jobs table's tuple counts and
 * vacuum history (pg_stat_user_tables), and the long read it holds open in the middle.
 */
import pg from "pg";
import { PG_URL, pgQuery } from "./pg.js";

export interface TableStats {
  live: number;
  dead: number;
  /** Autovacuums and manual vacuums of the table so far. */
  autovacuums: number;
  vacuums: number;
  /** Heap and indexes, MB. */
  mb: number;
}

/** The schema's jobs table, as the statistics collector sees it now. */
export async function jobsTableStats(schema: string): Promise<TableStats> {
  const rows = await pgQuery<{ live: string; dead: string; av: string; v: string; bytes: string }>(
    `SELECT n_live_tup AS live, n_dead_tup AS dead, autovacuum_count AS av, vacuum_count AS v,
       pg_total_relation_size(relid) AS bytes
     FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'`,
    [schema],
  );
  const r = rows[0];
  if (!r) return { live: 0, dead: 0, autovacuums: 0, vacuums: 0, mb: 0 };
  return { live: Number(r.live), dead: Number(r.dead), autovacuums: Number(r.av), vacuums: Number(r.v), mb: Number(r.bytes) / (1 << 20) };
}

/** The server's autovacuum settings and the table's own storage parameters, for the header. */
export async function describeVacuum(schema: string): Promise<string> {
  const s = await pgQuery<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'autovacuum_naptime',
       'autovacuum_vacuum_scale_factor', 'autovacuum_vacuum_threshold', 'autovacuum_vacuum_insert_scale_factor')`,
  );
  const opts = await pgQuery<{ o: string[] | null }>(
    `SELECT c.reloptions AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = 'jobs'`,
    [schema],
  );
  const server = s.map((r) => `${r.name} ${r.setting}`).join(", ");
  return `${server}; jobs table options: ${opts[0]?.o?.join(", ") ?? "none"}`;
}

/**
 * A long-running read: a REPEATABLE READ transaction that counts the jobs table and then
 * sleeps, so its snapshot holds back what vacuum (and index scans) may clean up for `ms`.
 * Resolves when the transaction has ended.
 */
export async function holdLongRead(schema: string, ms: number): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    await client.query(`SELECT count(*) FROM "${schema}".jobs`);
    await client.query("SELECT pg_sleep($1)", [ms / 1000]);
    await client.query("COMMIT");
  } finally {
    await client.end().catch(() => {});
  }
}
