import { afterEach, describe, expect, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchemaName, pgExec, PG_URL, requirePg } from "./pg-helpers.js";

/**
 * The jobs table is vacuumed once 2 % of it is dead (migration 8): behind millions of
 * finished jobs the server's default, 20 %, leaves the claim index bloated for a quarter
 * of an hour after a long transaction (see docs/operations.md).
 */
describe.runIf(await requirePg("the PostgreSQL vacuum settings"))("postgres jobs table vacuum settings", () => {
  let store: Store | null = null;
  let schema = "";
  afterEach(async () => {
    await store?.close();
    if (schema) await dropSchema(schema);
  });

  it("a fresh store's jobs table carries its own autovacuum scale factor", async () => {
    schema = freshSchemaName("vigil_vacuum");
    store = await openPostgresStore(PG_URL, { schema });
    const r = await pgExec(
      `SELECT c.reloptions AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = 'jobs'`,
      [schema],
    );
    expect(r.rows[0].o).toEqual(["autovacuum_vacuum_scale_factor=0.02"]);
  });
});
