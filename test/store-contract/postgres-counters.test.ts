/**
 * PostgreSQL migration 7 on a store that already holds history: the counters status and
 * report read are seeded from the jobs held and from what pruning had already counted.
 */
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS } from "../../src/store/postgres/migrations.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchemaName, pgExec, requirePg, PG_URL } from "./pg-helpers.js";

describe.runIf(await requirePg("the PostgreSQL counters migration"))("postgres counters migration", () => {
  let schema = "";
  let store: Store | null = null;
  afterEach(async () => {
    await store?.close();
    await dropSchema(schema);
  });

  it("seeds per-queue totals, per-minute counts and failed attempts from a version-6 store", async () => {
    schema = freshSchemaName("vigil_m7");
    const S = `"${schema}"`;
    await pgExec(`CREATE SCHEMA ${S}; CREATE TABLE ${S}.vigil_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`);
    for (const m of MIGRATIONS.filter((x) => x.version <= 6)) {
      await pgExec(m.sql(S));
      await pgExec(`INSERT INTO ${S}.vigil_migrations VALUES ($1, $2, 0)`, [m.version, m.name]);
    }
    const now = Date.now();
    // Three completed jobs held, two completed ones pruned earlier, one dead after a failure.
    await pgExec(
      `INSERT INTO ${S}.jobs (queue, state, payload, max_attempts, run_at, created_at, started_at, finished_at, history)
       SELECT 'q', 'completed', '1', 3, $1::bigint, $1::bigint, $1::bigint - 100, $1::bigint, '[]' FROM generate_series(1, 3)
       UNION ALL
       SELECT 'q', 'dead', '1', 1, $1::bigint, $1::bigint, $1::bigint, $1::bigint,
         jsonb_build_array(jsonb_build_object('attempt', 1, 'outcome', 'error', 'message', 'x', 'at', $1::bigint))`,
      [now - 60_000],
    );
    await pgExec(`INSERT INTO ${S}.job_totals (queue, state, n) VALUES ('q', 'completed', 2), ('q', 'dead', 4)`);

    store = await openPostgresStore(PG_URL, { schema });
    expect((await store.stats()).q).toMatchObject({ completed: 5, dead: 5 });
    expect(await store.report(now - 3_600_000)).toMatchObject([{ queue: "q", completed: 3, dead: 1, failedAttempts: 1, p50Ms: 100 }]);
    const left = await pgExec(`SELECT state, n FROM ${S}.job_totals ORDER BY state`);
    expect(left.rows).toEqual([{ state: "dead", n: "4" }]);
  });
});
