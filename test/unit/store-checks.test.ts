/**
 * The store's own health checks (size, SQLite WAL, PostgreSQL vacuum and open
 * transactions) and their `/metrics` gauges, read from real stores: a SQLite file and a
 * fresh PostgreSQL schema with a transaction really held open on another connection.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { runHealthChecks } from "../../src/health/checks.js";
import { DEFAULT_STORE_LIMITS, storeChecks, vacuumCheck } from "../../src/health/store-checks.js";
import { createMetrics } from "../../src/http/metrics.js";
import { openStore } from "../../src/store/open.js";
import type { Store, StoreUpkeep } from "../../src/store/store.js";
import { PG_URL, dropSchema, freshSchemaName, requirePg } from "../store-contract/pg-helpers.js";
import { completeJobs, tempStore, type TempStore } from "./ops-fixtures.js";

const LIMITS = { maxWaitingAge: 5 * 60_000, maxDeadPerHour: 2, minFreeDisk: 1 << 20 };

describe("store checks on SQLite", () => {
  let t: TempStore;
  beforeEach(async () => {
    t = await tempStore(new ManualClock(Date.now()));
  });
  afterEach(() => t.cleanup());

  it("reads the file, its WAL and the jobs held, and judges them by the limits", async () => {
    await completeJobs(t.store, "q", 40);
    const u = await t.store.upkeep();
    expect(u.engine).toBe("sqlite");
    expect(u.jobsHeld).toBe(40);
    expect(u.walBytes).toBeGreaterThan(0);
    expect(u.sizeBytes).toBeGreaterThan(u.walBytes!);
    const fine = new Map(storeChecks(u, DEFAULT_STORE_LIMITS, { finishedPerDay: 40, retentionMs: 7 * 86_400_000 }));
    expect([...fine.keys()]).toEqual(["store-size", "store-wal"]);
    expect(fine.get("store-size")).toMatchObject({ status: "ok", message: expect.stringContaining("about 40 jobs") });
    expect(fine.get("store-size")!.message).toContain("levels off near");
    const tight = new Map(storeChecks(u, { ...DEFAULT_STORE_LIMITS, maxStoreSize: 1000, maxWalSize: 1000 }, null));
    expect(tight.get("store-size")!.status).toBe("degraded");
    expect(tight.get("store-wal")).toMatchObject({ status: "degraded", message: expect.stringContaining("checkpointed") });
  });

  it("are in `vigil health` with the limits from config, and in /metrics", async () => {
    const stateDir = join(t.dir, ".vigil");
    mkdirSync(stateDir, { recursive: true });
    await completeJobs(t.store, "q", 5);
    const r = await runHealthChecks({ store: t.store, stateDir, limits: { ...LIMITS, maxWalSize: 1 }, storeFile: t.file, retention: 86_400_000 });
    const names = r.checks.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(["store-size", "store-wal"]));
    expect(names).not.toContain("store-vacuum");
    expect(r.checks.find((c) => c.name === "store-wal")!.status).toBe("degraded");
    expect(r.checks.find((c) => c.name === "store-size")!.status).toBe("ok");
    const text = await createMetrics({ store: t.store, snapshot: async () => { throw new Error("none"); } }).render();
    expect(text).toMatch(/^vigil_store_size_bytes [1-9]\d*$/m);
    expect(text).toMatch(/^vigil_store_wal_bytes [1-9]\d*$/m);
    expect(text).toMatch(/^vigil_store_jobs_held 5$/m);
  });
});

describe("store checks on PostgreSQL", async () => {
  const ok = await requirePg("the PostgreSQL store checks");
  let schema: string;
  let store: Store;
  beforeAll(async () => {
    if (!ok) return;
    schema = freshSchemaName("vchk");
    store = await openStore(`${PG_URL}?schema=${schema}`);
  });
  afterAll(async () => {
    if (!ok) return;
    await store.close();
    await dropSchema(schema);
  });

  it.runIf(ok)("sees a transaction held open on another connection, and its tables' vacuum state", async () => {
    await completeJobs(store, "q", 20);
    const held = new pg.Client({ connectionString: PG_URL });
    await held.connect();
    try {
      await held.query("BEGIN");
      await held.query("SELECT 1");
      await new Promise((r) => setTimeout(r, 400));
      const u = await store.upkeep();
      expect(u.engine).toBe("postgres");
      expect(u.oldestTransactionMs).toBeGreaterThanOrEqual(300);
      expect(u.tables!.map((x) => x.table)).toEqual(["job_counts", "job_failures", "job_history", "job_keys", "job_live", "job_minutes", "jobs"]);
      expect(u.jobsHeld).toBe(u.tables!.filter((x) => x.table === "jobs" || x.table === "job_history").reduce((n, x) => n + x.liveTuples, 0));
      expect(u.tables!.every((x) => x.xidAge > 0)).toBe(true);
      expect(u.sizeBytes).toBeGreaterThan(0);
      const checks = new Map(storeChecks(u, { ...DEFAULT_STORE_LIMITS, maxTransactionAge: 200 }, null));
      expect([...checks.keys()]).toEqual(["store-size", "store-vacuum", "store-transactions"]);
      expect(checks.get("store-transactions")).toMatchObject({ status: "degraded", message: expect.stringContaining("pg_stat_activity") });
      expect(new Map(storeChecks(u, { ...DEFAULT_STORE_LIMITS, maxXidAge: 1 }, null)).get("store-vacuum")!.status).toBe("degraded");
      const text = await createMetrics({ store, snapshot: async () => { throw new Error("none"); } }).render();
      expect(text).toMatch(/^vigil_store_oldest_transaction_seconds (0\.[3-9]|[1-9])/m);
      expect(text).toMatch(/^vigil_store_xid_age\{table="jobs"\} [1-9]/m);
      expect(text).toMatch(/^vigil_store_dead_tuples\{table="jobs"\} \d+$/m);
    } finally {
      await held.query("ROLLBACK").catch(() => {});
      await held.end();
    }
    const after = await store.upkeep();
    // Other sessions may hold transactions on the shared server; ours has ended.
    expect(after.oldestTransactionMs ?? 0).toBeLessThan(300_000);
  });
});

describe("vacuum check", () => {
  const table = (over: Partial<NonNullable<StoreUpkeep["tables"]>[number]>) => ({
    table: "jobs",
    liveTuples: 1_000_000,
    deadTuples: 1000,
    xidAge: 1000,
    lastVacuumAgeMs: 60_000,
    ...over,
  });
  const upkeep = (tables: NonNullable<StoreUpkeep["tables"]>): StoreUpkeep => ({ engine: "postgres", sizeBytes: 1, jobsHeld: 1, tables });

  it("is degraded by dead rows over the fraction and the floor, not by a small table's churn", () => {
    expect(vacuumCheck(upkeep([table({})]), DEFAULT_STORE_LIMITS).status).toBe("ok");
    const bloated = vacuumCheck(upkeep([table({ deadTuples: 400_000, lastVacuumAgeMs: null })]), DEFAULT_STORE_LIMITS);
    expect(bloated).toMatchObject({ status: "degraded", message: expect.stringContaining("never vacuumed") });
    // Half dead, but only 50,000 rows: under the floor.
    expect(vacuumCheck(upkeep([table({ liveTuples: 50_000, deadTuples: 50_000 })]), DEFAULT_STORE_LIMITS).status).toBe("ok");
    expect(vacuumCheck(upkeep([table({ xidAge: 600_000_000 })]), DEFAULT_STORE_LIMITS).message).toContain("not been frozen");
  });
});
