/**
 * Where a PostgreSQL job lives (migration 12): unfinished jobs in `jobs`, finished ones in
 * `job_history`, moved by the statement that finishes them; idempotency keys in `job_keys`,
 * held by unfinished and completed jobs alike. Shown on the real server: the tables after
 * each verb, keys across both tables (also while a holder finishes under a crowd of
 * enqueues of its key), and migration 12 on a store left at version 11.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import { STORED_COLUMNS, rowToJob, type JobRow } from "../../src/store/postgres/rows.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchemaName, pgExec, PG_URL, requirePg, schemaAtVersion } from "./pg-helpers.js";

const LIVE = ["scheduled", "waiting", "active", "failed"];

describe.runIf(await requirePg("the PostgreSQL job history"))("postgres job history", () => {
  const schemas: string[] = [];
  const stores: Store[] = [];
  const open = async (schema: string): Promise<Store> => {
    if (!schemas.includes(schema)) schemas.push(schema);
    const store = await openPostgresStore(PG_URL, { schema });
    stores.push(store);
    return store;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const s of schemas.splice(0)) await dropSchema(s);
  });

  /** Each table's rows as `id:state`, in id order. */
  const tables = async (schema: string) => {
    const of = async (t: string) =>
      (await pgExec(`SELECT id, state FROM "${schema}".${t} ORDER BY id`)).rows.map((r) => `${r.id}:${r.state}`);
    return { jobs: await of("jobs"), history: await of("job_history") };
  };
  const keys = async (schema: string) =>
    Object.fromEntries((await pgExec(`SELECT key, job_id FROM "${schema}".job_keys ORDER BY key`)).rows.map((r) => [r.key, Number(r.job_id)]));

  it("a job leaves jobs for job_history as it finishes, keys held by completed jobs dedupe, a death frees its key, a retry moves it back", async () => {
    const schema = freshSchemaName("vigil_hist");
    const store = await open(schema);
    const [a, b, c, d, e] = await store.enqueueMany([
      { queue: "q", payload: "a", key: "ka" },
      { queue: "q", payload: "b", key: "kb" },
      { queue: "q", payload: "c", key: "kc" },
      { queue: "q", payload: "d" },
      { queue: "q", payload: "e" },
    ]);
    const ids = [a, b, c, d, e].map((r) => r!.job.id);
    await store.cancel(c!.job.id);
    const leases = await store.claim({ workerId: "w", queues: { q: 10 }, leaseMs: 60_000 });
    expect(leases.map((l) => l.jobId)).toEqual([ids[0], ids[1], ids[3], ids[4]]);
    const [la, lb, , le] = leases;
    const [next] = await store.complete(la!, 1, [{ queue: "n", payload: "after-a" }]);
    await store.fail(lb!, { message: "last" });
    await store.fail(le!, { message: "again" }, { retryAt: Date.now() + 60_000 });
    expect(await tables(schema)).toEqual({
      jobs: [`${ids[3]}:active`, `${ids[4]}:failed`, `${next!.id}:waiting`],
      history: [`${ids[0]}:completed`, `${ids[1]}:dead`, `${ids[2]}:cancelled`],
    });
    expect(await keys(schema)).toEqual({ ka: ids[0] });

    // The completed job still holds its key; the dead and the cancelled one gave theirs back.
    const again = await store.enqueue("q", "a2", { key: "ka" });
    expect([again.created, again.job.id, again.job.state]).toEqual([false, ids[0], "completed"]);
    const [b2, c2] = await store.enqueueMany([
      { queue: "q", payload: "b2", key: "kb" },
      { queue: "q", payload: "c2", key: "kc" },
    ]);
    expect([b2!.created, c2!.created]).toEqual([true, true]);
    expect(await keys(schema)).toEqual({ ka: ids[0], kb: b2!.job.id, kc: c2!.job.id });

    // A dead job whose key another job now holds is not retried; once that one is
    // cancelled it is, back in jobs with its key, and runs to completion.
    expect((await store.retry(ids[1]!).catch((err: { code: string }) => err)).code).toBe("INVALID_STATE");
    await store.cancel(b2!.job.id);
    const back = await store.retry(ids[1]!);
    expect(back).toMatchObject({ id: ids[1], state: "waiting", attempt: 0, key: "kb" });
    expect((await tables(schema)).jobs).toContain(`${ids[1]}:waiting`);
    expect((await keys(schema)).kb).toBe(ids[1]);
    const lb2 = (await store.claim({ workerId: "w", queues: { q: 10 }, leaseMs: 60_000 })).find((l) => l.jobId === ids[1]);
    await store.complete(lb2!, "done");
    expect((await tables(schema)).history).toContain(`${ids[1]}:completed`);
    expect(await store.get(ids[1]!)).toMatchObject({ state: "completed", result: "done", history: [{ message: "last" }] });

    // Pruning deletes from job_history and gives completed jobs' keys back.
    expect(await store.prune({ completedBefore: Date.now() + 1 })).toMatchObject({ completed: 2 });
    expect((await keys(schema)).ka).toBeUndefined();
    expect((await store.enqueue("q", "a3", { key: "ka" })).created).toBe(true);
  });

  it("ids are never reused: once jobs is empty, a reopened store numbers on above every id in job_history", async () => {
    const schema = freshSchemaName("vigil_hist_ids");
    let store = await open(schema);
    await store.enqueueMany([1, 2, 3].map((n) => ({ queue: "q", payload: n })));
    const leases = await store.claim({ workerId: "w", queues: { q: 3 }, leaseMs: 60_000 });
    await store.completeMany(leases.map((lease) => ({ lease, result: null })));
    expect((await tables(schema)).jobs).toEqual([]);
    await store.close();
    stores.splice(0);
    store = await open(schema);
    const { job } = await store.enqueue("q", 4);
    expect(job.id).toBeGreaterThan(Math.max(...leases.map((l) => l.jobId)));
    expect((await store.get(leases[0]!.jobId))?.state).toBe("completed");
  });

  it("many enqueues of a key racing its holder's completion, or its death, never make a second holder", async () => {
    const schema = freshSchemaName("vigil_hist_race");
    const store = await open(schema);
    // Other pools: the enqueues arrive on other connections than the completion.
    const crowd = [await open(schema), await open(schema), await open(schema)];
    for (let round = 0; round < 8; round++) {
      const key = `k${round}`;
      const dies = round % 2 === 1;
      const holder = (await store.enqueue("q", round, { key })).job;
      const [lease] = await store.claim({ workerId: "w", queues: { q: 1 }, leaseMs: 60_000 });
      expect(lease!.jobId).toBe(holder.id);
      let finished = false;
      const results: { created: boolean; id: number }[] = [];
      const hammer = async (s: Store) => {
        // Until shortly after the holder finished: some before, some during, some after.
        for (let extra = 0; extra < 5; extra += finished ? 1 : 0) {
          const r = await s.enqueue("q", `dup-${round}`, { key });
          results.push({ created: r.created, id: r.job.id });
        }
      };
      const finish = async () => {
        await new Promise((r) => setTimeout(r, 5 + round));
        if (dies) await store.fail(lease!, { message: "gone" });
        else await store.complete(lease!, "ok");
        finished = true;
      };
      await Promise.all([...crowd.flatMap((s) => [hammer(s), hammer(s)]), finish()]);
      const rows = (
        await pgExec(
          `SELECT id, state FROM "${schema}".jobs WHERE key = $1 UNION ALL SELECT id, state FROM "${schema}".job_history WHERE key = $1 ORDER BY id`,
          [key],
        )
      ).rows.map((r) => ({ id: Number(r.id), state: r.state as string }));
      const holders = rows.filter((r) => r.state !== "dead" && r.state !== "cancelled");
      expect(holders).toHaveLength(1);
      expect((await keys(schema))[key]).toBe(holders[0]!.id);
      if (dies) {
        // Exactly one enqueue made the new holder; every other one returned a holder of its time.
        expect(rows).toHaveLength(2);
        expect(results.filter((r) => r.created).map((r) => r.id)).toEqual([holders[0]!.id]);
        expect(results.every((r) => r.id === holder.id || r.id === holders[0]!.id)).toBe(true);
      } else {
        expect(rows).toEqual([{ id: holder.id, state: "completed" }]);
        expect(results.every((r) => !r.created && r.id === holder.id)).toBe(true);
      }
      expect(results.length).toBeGreaterThanOrEqual(30);
      await store.prune({ completedBefore: Date.now() + 1, deadBefore: Date.now() + 1 });
      for (const s of [store]) for (const l of await s.claim({ workerId: "w", queues: { q: 100 }, leaseMs: 60_000 })) await s.complete(l, null);
    }
  });

  it("migration 12 moves a version-11 store's finished jobs to job_history by renaming, and every read answers as before", async () => {
    const schema = await schemaAtVersion(11, "vigil_m12");
    schemas.push(schema);
    const S = `"${schema}"`;
    const now = Date.now();
    // A version-11 store as the old statements left it: runs handed on, every state, keys
    // held by unfinished and completed jobs, a dead job's key held again by a newer job.
    const insert = async (j: Record<string, unknown>): Promise<number> => {
      const row = { queue: "q", state: "completed", payload: '"p"', max_attempts: 3, run_at: now - 9000, created_at: now - 9000, history: "[]", ...j };
      const cols = Object.keys(row);
      const r = await pgExec(`INSERT INTO ${S}.jobs (${cols.join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")}) RETURNING id`, Object.values(row));
      return Number(r.rows[0].id);
    };
    const done = { started_at: now - 8000, finished_at: now - 7000, attempt: 1, result: '"ok"', worker_id: "h:1:w" };
    const r1 = await insert({ key: "run-1", ...done });
    const r1b = await insert({ queue: "impl", parent_id: r1, root_id: r1, ...done });
    const r1c = await insert({ queue: "qa", parent_id: r1b, root_id: r1, state: "active", attempt: 1, started_at: now - 1000, worker_id: "h:1:w", token: "t:1", lease_until: now + 600_000 });
    const r2 = await insert({ key: "run-2", state: "dead", attempt: 3, finished_at: now - 6000, error: "boom", history: JSON.stringify([{ attempt: 3, outcome: "error", message: "boom", at: now - 6000 }]) });
    const r2b = await insert({ key: "run-2", state: "waiting" });
    const r3 = await insert({ key: "run-3", state: "cancelled", finished_at: now - 5000 });
    const s1 = await insert({ state: "scheduled", run_at: now + 3_600_000, grp: "g1", max_stalls: 2 });
    const f1 = await insert({ queue: "impl", state: "failed", attempt: 1, run_at: now + 60_000, error: "e", history: JSON.stringify([{ attempt: 1, outcome: "error", message: "e", at: now - 100 }]) });
    for (let i = 0; i < 25; i++) await insert({ queue: i % 2 ? "q" : "impl", key: i % 5 === 0 ? `done-${i}` : null, ...done });
    await pgExec(`INSERT INTO ${S}.job_counts (queue, shard, completed) SELECT queue, 0, count(*) FROM ${S}.jobs WHERE state = 'completed' GROUP BY queue`);
    const before = (await pgExec(`SELECT * FROM ${S}.jobs ORDER BY id DESC`)).rows as (JobRow & { max_stalls: number | null; grp: string | null })[];
    const jobsBefore: Job[] = before.map((r) => rowToJob(normalize(r)));
    const maxId = Math.max(...jobsBefore.map((j) => j.id));

    const store = await open(schema);
    const migrated = await pgExec(`SELECT version FROM ${S}.vigil_migrations ORDER BY version DESC LIMIT 1`);
    expect(migrated.rows[0].version).toBe(12);

    // The tables: unfinished rows in jobs, the rest in job_history, row for row as they were.
    const t = await tables(schema);
    const live = jobsBefore.filter((j) => LIVE.includes(j.state));
    expect(t.jobs).toEqual(live.map((j) => `${j.id}:${j.state}`).reverse());
    expect(t.history).toEqual(jobsBefore.filter((j) => !LIVE.includes(j.state)).map((j) => `${j.id}:${j.state}`).reverse());
    const all = (await pgExec(`SELECT * FROM ${S}.jobs UNION ALL SELECT * FROM ${S}.job_history ORDER BY id DESC`)).rows;
    expect(all).toEqual(before);
    const columns = async (table: string) =>
      (await pgExec(`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, [schema, table])).rows.map((r) => r.column_name);
    expect(await columns("jobs")).toEqual(await columns("job_history"));
    expect([...(await columns("jobs"))].sort()).toEqual([...STORED_COLUMNS].sort());
    expect(await keys(schema)).toEqual({
      "run-1": r1, "run-2": r2b, ...Object.fromEntries([0, 5, 10, 15, 20].map((i) => [`done-${i}`, jobsBefore.find((j) => j.key === `done-${i}`)!.id])),
    });
    const triggers = await pgExec(
      `SELECT DISTINCT event_object_table AS t FROM information_schema.triggers WHERE trigger_schema = $1 ORDER BY 1`,
      [schema],
    );
    expect(triggers.rows).toEqual([{ t: "jobs" }]);
    const owner = await pgExec(`SELECT pg_get_serial_sequence($1, 'id') AS s`, [`${S}.jobs`]);
    expect(owner.rows[0].s).toBe(`${schema}.jobs_id_seq`);

    // Every read answers as before.
    for (const j of jobsBefore) expect(await store.get(j.id)).toEqual(j);
    expect(await store.list({ limit: 0 })).toEqual(jobsBefore);
    for (const state of ["completed", "dead", "cancelled", "waiting", "active", "scheduled", "failed"] as const) {
      expect(await store.list({ state, limit: 0 })).toEqual(jobsBefore.filter((j) => j.state === state));
      expect(await store.list({ queue: "impl", state, limit: 0 })).toEqual(jobsBefore.filter((j) => j.state === state && j.queue === "impl"));
    }
    const pages: Job[] = [];
    for (let beforeId: number | undefined; ; ) {
      const page = await store.list({ limit: 7, ...(beforeId === undefined ? {} : { beforeId }) });
      if (page.length === 0) break;
      pages.push(...page);
      beforeId = page.at(-1)!.id;
    }
    expect(pages).toEqual(jobsBefore);
    expect(await store.list({ rootId: r1, limit: 0 })).toEqual(jobsBefore.filter((j) => j.id === r1 || j.rootId === r1));
    expect(await store.countRounds(r1, "qa", 10)).toBe(1);
    const run = await store.getRun(r1c);
    expect(run).toMatchObject({ id: r1, state: "running", jobCount: 3 });
    expect(run!.jobs.map((j) => j.id)).toEqual([r1, r1b, r1c]);
    const runs = await store.listRuns({ limit: 100 });
    const roots = jobsBefore.filter((j) => j.rootId === null);
    expect(runs.runs.map((r) => r.id)).toEqual(roots.map((j) => j.id));
    expect(runs.runs.find((r) => r.id === r2)?.state).toBe("dead");
    expect(runs.runs.find((r) => r.id === r3)?.state).toBe("cancelled");
    expect((await store.listRuns({ search: "run-" })).runs.map((r) => r.id)).toEqual([r3, r2b, r2, r1]);
    expect((await store.listRuns({ state: "completed", limit: 100 })).runs.length).toBe(roots.filter((j) => j.state === "completed").length - 1);
    const counted: Record<string, Record<string, number>> = {};
    for (const j of jobsBefore) (counted[j.queue] ??= {})[j.state] = (counted[j.queue]![j.state] ?? 0) + 1;
    const stats = await store.stats();
    for (const [queue, states] of Object.entries(counted)) expect(stats[queue]).toMatchObject(states);
    expect(await store.jobsAhead(r2b)).toBe(0);

    // Keys, new ids and the verbs carry on from the migrated rows.
    expect(await store.enqueue("q", "x", { key: "run-1" })).toMatchObject({ created: false, job: { id: r1 } });
    expect(await store.enqueue("q", "x", { key: "run-2" })).toMatchObject({ created: false, job: { id: r2b } });
    const fresh = await store.enqueue("q", "x", { key: "run-3" });
    expect(fresh.created).toBe(true);
    expect(fresh.job.id).toBeGreaterThan(maxId);
    await store.complete({ jobId: r1c, token: "t:1" }, "qa-ok");
    expect(await store.getRun(r1)).toMatchObject({ state: "completed" });
    expect((await store.retry(f1)).state).toBe("waiting");
    expect((await store.get(s1))?.state).toBe("scheduled");
  });
});

/** A row read straight from the table, as the store's statements return it (ids and times as numbers). */
function normalize(r: Record<string, unknown>): JobRow {
  const out: Record<string, unknown> = { ...r };
  for (const c of ["id", "run_at", "created_at", "started_at", "finished_at", "parent_id", "root_id", "lease_until"]) {
    if (out[c] !== null && out[c] !== undefined) out[c] = Number(out[c]);
  }
  return out as unknown as JobRow;
}
