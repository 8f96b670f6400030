/** The local PostgreSQL every PostgreSQL-backed system is measured on, and its upkeep. */
import { randomBytes } from "node:crypto";
import pg from "pg";

/** Local server, trust auth (the project's test set-up). Override with VIGIL_BENCH_PG. */
export const PG_URL = process.env["VIGIL_BENCH_PG"] ?? "postgres://postgres@127.0.0.1:5432/test";

/** A schema name nobody else uses: `bench_<what>_<8 hex>`. */
export function freshSchema(what: string): string {
  return `bench_${what}_${randomBytes(4).toString("hex")}`;
}

/** Runs one statement on a short-lived connection. */
export async function pgQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: PG_URL });
  // A server restart or a dropped socket arrives as an 'error' event; the awaited query
  // below rejects too, so this listener only keeps it from crashing the process.
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Drops a benchmark schema and everything in it. Only `bench_*` names, by construction. */
export async function dropSchema(schema: string): Promise<void> {
  if (!/^bench_[a-z0-9_]+$/.test(schema)) throw new Error(`refusing to drop schema ${schema}`);
  await pgQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** Server version and the settings that decide commit cost, for the settings section. */
export async function describePostgres(): Promise<string> {
  const rows = await pgQuery<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'fsync', 'synchronous_commit')`,
  );
  const s = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  return `PostgreSQL ${s["server_version"]} at ${new URL(PG_URL).host} (fsync ${s["fsync"]}, synchronous_commit ${s["synchronous_commit"]})`;
}
