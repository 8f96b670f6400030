/**
 * PostgreSQL migrations 7 and 11 on a store that already holds history: the counters status
 * and report read are seeded from the jobs held and from what pruning had already counted;
 * the live-state counters then follow every write, from any connection.
 */
import { afterEach, describe, expect, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, pgExec, requirePg, PG_URL, schemaAtVersion } from "./pg-helpers.js";

describe.runIf(await requirePg("the PostgreSQL counters migration"))("postgres counters migration", () => {
  let schema = "";
  let store: Store | null = null;
  afterEach(async () => {
    await store?.close();
    await dropSchema(schema);
  });
  /** A fresh schema migrated by hand up to `version`, as an older Vigil left it; its quoted name. */
  const schemaAt = async (version: number): Promise<string> => {
    schema = await schemaAtVersion(version);
    return `"${schema}"`;
  };

  it("seeds per-queue totals, per-minute counts and failed attempts from a version-6 store", async () => {
    const S = await schemaAt(6);
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

  it("seeds the live-state counters from a version-10 store; every write keeps them equal to a count", async () => {
    const S = await schemaAt(10);
    const now = Date.now();
    await pgExec(
      `INSERT INTO ${S}.jobs (queue, state, payload, max_attempts, run_at, created_at, history)
       SELECT 'q', 'waiting', '1', 3, $1::bigint, $1::bigint, '[]'::jsonb FROM generate_series(1, 4)
       UNION ALL SELECT 'q', 'scheduled', '1', 3, $1::bigint + 60000, $1::bigint, '[]'
       UNION ALL SELECT 'r', 'waiting', '1', 3, $1::bigint, $1::bigint, '[]'`,
      [now - 1000],
    );
    store = await openPostgresStore(PG_URL, { schema });
    // A second store: another pool, so other connections (other counter shards) write too.
    const other = await openPostgresStore(PG_URL, { schema });
    const counted = async () => {
      const rows = await pgExec(`SELECT queue, state, count(*)::int AS n FROM ${S}.jobs GROUP BY queue, state`);
      const out: Record<string, Record<string, number>> = {};
      for (const r of rows.rows) (out[r.queue] ??= {})[r.state] = r.n;
      return out;
    };
    const agree = async () => {
      const stats = await store!.stats();
      for (const [queue, states] of Object.entries(await counted())) {
        for (const [state, n] of Object.entries(states)) if (state !== "completed") expect({ queue, state, n: stats[queue]![state as "waiting"] }).toEqual({ queue, state, n });
      }
      for (const [queue, c] of Object.entries(stats)) {
        const held = (await counted())[queue] ?? {};
        for (const state of ["waiting", "scheduled", "failed", "active"] as const) expect({ queue, state, n: c[state] }).toEqual({ queue, state, n: held[state] ?? 0 });
      }
    };
    try {
      await agree();
      expect((await store.stats()).q).toMatchObject({ waiting: 4, scheduled: 1 });
      await other.enqueueMany([1, 2, 3].map((n) => ({ queue: "r", payload: n })));
      const leases = await store.claim({ workerId: "w:1", queues: { q: 3, r: 2 }, leaseMs: 60_000 });
      expect(leases).toHaveLength(5);
      await agree();
      await other.renewMany(leases, 60_000);
      await other.complete(leases[0]!, null, [{ queue: "s", payload: 1 }]);
      await store.fail(leases[1]!, { message: "x" }, { retryAt: now + 60_000 });
      await other.fail(leases[2]!, { message: "x" });
      await store.release(leases[3]!);
      await agree();
      await other.cancel(leases[4]!.jobId);
      await store.retry(leases[2]!.jobId);
      await agree();
      expect(await other.releaseWorker("w:1")).toBe(0);
      expect(await store.prune({ completedBefore: Date.now() + 1, deadBefore: Date.now() + 1 })).toMatchObject({ completed: 1 });
      await agree();
    } finally {
      await other.close();
    }
  });
});
