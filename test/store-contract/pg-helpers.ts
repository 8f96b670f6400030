/**
 * The local PostgreSQL for tests: its URL, whether it answers, and fresh schemas that are
 * dropped afterwards. Under CI=true a missing server fails the run; elsewhere the tests
 * that need it are skipped with a loud message.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { promisify } from "node:util";
import pg from "pg";
import { MIGRATIONS } from "../../src/store/postgres/migrations.js";

const runFile = promisify(execFile);

/** The test server (override with VIGIL_TEST_PG). */
export const PG_URL = process.env.VIGIL_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/test";

/** Whether the server answers a query within a few seconds. */
export async function pgAvailable(url = PG_URL): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Resolves to true when PostgreSQL is there. Missing: throws under CI (the run must fail),
 * otherwise prints why the tests are skipped and resolves to false.
 */
export async function requirePg(what: string): Promise<boolean> {
  if (await pgAvailable()) return true;
  const msg = `PostgreSQL is not reachable at ${PG_URL}: ${what} cannot run. Start it, or set VIGIL_TEST_PG.`;
  if (process.env.CI === "true") throw new Error(`${msg} (CI=true: a missing PostgreSQL fails the run)`);
  console.warn(`\n!!! SKIPPED: ${msg}\n`);
  return false;
}

let counter = 0;

/** A schema name no other test file or process uses. */
export function freshSchemaName(prefix = "vt"): string {
  return `${prefix}_${process.pid}_${counter++}_${randomBytes(3).toString("hex")}`;
}

/** Runs one statement on its own connection (setup and teardown). */
export async function pgExec(sql: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  client.on("error", () => {});
  await client.connect();
  try {
    return await client.query(sql, values);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * A fresh schema migrated by hand up to `version` with the real migrations, as an older
 * Vigil left it; returns its name.
 */
export async function schemaAtVersion(version: number, prefix = `vigil_m${version + 1}`): Promise<string> {
  const schema = freshSchemaName(prefix);
  const S = `"${schema}"`;
  await pgExec(`CREATE SCHEMA ${S}; CREATE TABLE ${S}.vigil_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`);
  for (const m of MIGRATIONS.filter((x) => x.version <= version)) {
    await pgExec(m.sql(S));
    await pgExec(`INSERT INTO ${S}.vigil_migrations VALUES ($1, $2, 0)`, [m.version, m.name]);
  }
  return schema;
}

export async function dropSchema(schema: string): Promise<void> {
  await pgExec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/**
 * Controls the local cluster with `pg_ctlcluster` (version from /etc/postgresql, cluster
 * `main`), for the tests that take the shared server down; run them in the `server-restart`
 * vitest group only.
 */
export function pgCtl(action: "start" | "stop" | "restart"): Promise<unknown> {
  return runFile("pg_ctlcluster", ["--skip-systemctl-redirect", readdirSync("/etc/postgresql")[0]!, "main", action]);
}

/** Whether the local server accepts connections (`pg_isready`). */
export async function pgIsReady(): Promise<boolean> {
  try {
    await runFile("pg_isready", ["-h", "127.0.0.1", "-p", "5432", "-q"]);
    return true;
  } catch {
    return false;
  }
}
