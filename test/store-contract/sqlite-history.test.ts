/**
 * Where a SQLite store keeps its jobs (migration 10): unfinished ones in `jobs`, finished
 * ones (completed, dead, cancelled) in `job_history`, moved there by the transaction that
 * finishes them. Checked on real files, the tables read directly beside the store's own
 * answers: keys held across both tables, a retry moving a job back, ids never handed out
 * twice, and a store at migration 9 migrating with every read answering as before.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { InvalidStateError, type VigilError } from "../../src/core/errors.js";
import { FINAL_STATES, JOB_STATES, type Job } from "../../src/core/types.js";
import { MIGRATIONS, SCHEMA_VERSION } from "../../src/store/sqlite/migrations.js";
import { ROW_COLUMNS, toJob, type JobRow } from "../../src/store/sqlite/rows.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite/store.js";
import type { Store } from "../../src/store/store.js";

let dir: string;
const open: Store[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-history-"));
});
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

async function openAt(file: string, clock?: ManualClock): Promise<SqliteStore> {
  const s = (await openSqliteStore(file, clock ? { clock } : {})) as SqliteStore;
  open.push(s);
  return s;
}

/** The ids and states in one table, read through a connection of its own. */
function table(file: string, name: "jobs" | "job_history"): Map<number, string> {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare(`SELECT id, state FROM ${name} ORDER BY id`).all() as { id: number; state: string }[];
    return new Map(rows.map((r) => [r.id, r.state]));
  } finally {
    db.close();
  }
}

const LIVE = JOB_STATES.filter((s) => !FINAL_STATES.includes(s));

/** Every job in `jobs` is unfinished, every one in `job_history` finished, none in both. */
function expectSplit(file: string): { live: Map<number, string>; done: Map<number, string> } {
  const live = table(file, "jobs");
  const done = table(file, "job_history");
  expect([...live.values()].filter((s) => !LIVE.includes(s as never))).toEqual([]);
  expect([...done.values()].filter((s) => !FINAL_STATES.includes(s as never))).toEqual([]);
  expect([...live.keys()].filter((id) => done.has(id))).toEqual([]);
  return { live, done };
}

const W = "w:1";
const LEASE = 60_000;

describe("sqlite job_history", () => {
  it("moves each job as it completes, dies, is cancelled or stalls to death; unfinished ones stay in jobs", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const file = join(dir, "v.db");
    const s = await openAt(file, clock);
    const id = async (queue: string, payload: unknown, opts = {}) => (await s.enqueue(queue, payload, opts)).job.id;
    const claim = async (queue: string, n = 1) => s.claim({ workerId: W, queues: { [queue]: n }, leaseMs: LEASE });

    const completed = await id("a", "c");
    let [l] = await claim("a");
    await s.complete(l!, { ok: 1 });
    // A group commit with a next-stage job: the parent moves, its child starts in jobs.
    const parent = await id("b", "p");
    [l] = await claim("b");
    const [outcome] = await s.completeMany([{ lease: l!, result: null, next: [{ queue: "c", payload: "child" }] }]);
    const child = outcome!.ok ? outcome!.next[0]!.id : -1;
    const dead = await id("d", "dead", { maxAttempts: 1 });
    [l] = await claim("d");
    await s.fail(l!, { message: "boom" });
    const retrying = await id("e", "retry", { maxAttempts: 3 });
    [l] = await claim("e");
    await s.fail(l!, { message: "again" }, { retryAt: clock.now() + 60_000 });
    const cancelledWaiting = await id("f", "cw");
    await s.cancel(cancelledWaiting);
    const cancelledActive = await id("g", "ca");
    [l] = await claim("g");
    await s.cancel(cancelledActive);
    const stalled = await id("h", "stall");
    await claim("h");
    expect(await s.releaseWorker(W, "gone", { maxStalls: 1 })).toBe(1);
    const scheduled = await id("i", "later", { delayMs: 3_600_000 });
    const waiting = await id("j", "w");
    const active = await id("k", "a");
    await claim("k");

    const { live, done } = expectSplit(file);
    expect(Object.fromEntries(live)).toEqual({
      [child]: "waiting", [retrying]: "failed", [scheduled]: "scheduled", [waiting]: "waiting", [active]: "active",
    });
    expect(Object.fromEntries(done)).toEqual({
      [completed]: "completed", [parent]: "completed", [dead]: "dead", [cancelledWaiting]: "cancelled",
      [cancelledActive]: "cancelled", [stalled]: "dead",
    });
    // The store answers over both tables as one.
    for (const [jobId, state] of [...live, ...done]) expect((await s.get(jobId))?.state).toBe(state);
    const all = (await s.list({ limit: 0 })).map((j) => j.id);
    expect(all).toEqual([...live.keys(), ...done.keys()].sort((x, y) => y - x));
    for (const state of JOB_STATES) {
      const want = [...live, ...done].filter(([, st]) => st === state).map(([i]) => i).sort((x, y) => y - x);
      expect((await s.list({ state, limit: 0 })).map((j) => j.id)).toEqual(want);
    }
    expect((await s.getRun(parent))?.jobs.map((j) => [j.id, j.state])).toEqual([[parent, "completed"], [child, "waiting"]]);
    expect((await s.get(completed))?.result).toEqual({ ok: 1 });
    expect((await s.get(cancelledActive))?.history.map((h) => h.outcome)).toEqual(["cancelled"]);
    const stats = await s.stats();
    expect([stats.a?.completed, stats.d?.dead, stats.f?.cancelled, stats.g?.cancelled, stats.h?.dead, stats.e?.failed]).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it("a completed job keeps its key across tables; dead, cancel and prune free it; a retry moves a dead job back and it runs", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const file = join(dir, "k.db");
    const s = await openAt(file, clock);
    const claimOne = async (queue: string) => (await s.claim({ workerId: W, queues: { [queue]: 1 }, leaseMs: LEASE }))[0]!;

    const held = (await s.enqueue("q", 1, { key: "K" })).job;
    await s.complete(await claimOne("q"), null);
    expect(table(file, "job_history").get(held.id)).toBe("completed");
    // The completed holder, now in job_history, still dedupes (and is not replaced).
    for (const opts of [{ key: "K" }, { key: "K", onDuplicate: "replace" as const }]) {
      const again = await s.enqueue("q", 2, opts);
      expect([again.created, again.job.id, again.job.state, again.job.payload]).toEqual([false, held.id, "completed", 1]);
    }
    expect(await s.enqueueMany([{ queue: "q", payload: 3, key: "K" }])).toMatchObject([{ created: false, job: { id: held.id } }]);

    // A dead holder frees its key; so does a cancelled one.
    const dead = (await s.enqueue("q", 1, { key: "D", maxAttempts: 1 })).job;
    await s.fail(await claimOne("q"), { message: "boom" });
    const cancelled = (await s.enqueue("q", 1, { key: "C" })).job;
    await s.cancel(cancelled.id);
    const d2 = await s.enqueue("q", 2, { key: "D" });
    const c2 = await s.enqueue("q", 2, { key: "C" });
    expect([d2.created, c2.created]).toEqual([true, true]);
    expect(d2.job.id).toBeGreaterThan(cancelled.id);

    // Retrying the dead job while another holds its key is refused, as before, whether the
    // holder is unfinished (jobs) or completed (job_history).
    const refused = async () => s.retry(dead.id).then(() => null, (e: unknown) => e);
    expect(await refused()).toBeInstanceOf(InvalidStateError);
    await s.cancel(c2.job.id);
    const [l] = await s.claim({ workerId: W, queues: { q: 5 }, leaseMs: LEASE });
    expect(l!.jobId).toBe(d2.job.id);
    await s.complete(l!, null);
    expect(String(await refused())).toContain(`live job ${d2.job.id}`);
    // The cancelled one's key is free: its retry moves it back into jobs, and it runs.
    const back = await s.retry(cancelled.id);
    expect(back).toMatchObject({ id: cancelled.id, state: "waiting", key: "C", attempt: 0 });
    expect(table(file, "jobs").get(cancelled.id)).toBe("waiting");
    expect(table(file, "job_history").has(cancelled.id)).toBe(false);
    expect((await s.enqueue("q", 9, { key: "C" })).created).toBe(false);
    const again = await claimOne("q");
    expect(again.jobId).toBe(cancelled.id);
    await s.complete(again, "ran");
    expect(await s.get(cancelled.id)).toMatchObject({ state: "completed", result: "ran", attempt: 1 });
    expectSplit(file);

    // Pruning a completed holder frees its key.
    clock.advance(1000);
    expect(await s.prune({ completedBefore: clock.now() })).toMatchObject({ completed: 3 });
    expect(await s.get(held.id)).toBeNull();
    const k2 = await s.enqueue("q", 4, { key: "K" });
    expect(k2.created).toBe(true);
    expect(k2.job.id).toBeGreaterThan(d2.job.id);
  });

  it("never hands out an id twice: not after jobs empties and the store reopens, nor after history is pruned", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const file = join(dir, "ids.db");
    let s: Store = await openAt(file, clock);
    await s.enqueueMany([1, 2, 3].map((payload) => ({ queue: "q", payload })));
    for (const l of await s.claim({ workerId: W, queues: { q: 3 }, leaseMs: LEASE })) await s.complete(l, null);
    expect(table(file, "jobs").size).toBe(0);
    await s.close();
    s = await openAt(file, clock);
    const fourth = (await s.enqueue("q", 4)).job;
    expect(fourth.id).toBe(4);
    await s.cancel(fourth.id);
    clock.advance(1000);
    expect(await s.prune({ completedBefore: clock.now(), deadBefore: clock.now() })).toEqual({ completed: 3, dead: 1 });
    expect([table(file, "jobs").size, table(file, "job_history").size]).toEqual([0, 0]);
    await s.close();
    s = await openAt(file, clock);
    expect((await s.enqueue("q", 5)).job.id).toBe(5);
  });
});

/** A store as migration 9 left it, holding `rows` (every column) and `tables`' rows as they are. */
function writeVersion9(file: string, rows: Record<string, unknown>[], tables: Record<string, Record<string, unknown>[]>): void {
  const db = new Database(file);
  try {
    db.exec("CREATE TABLE vigil_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
    for (const m of MIGRATIONS.slice(0, 9)) db.exec(m);
    db.exec("INSERT INTO vigil_meta VALUES ('schema_version', '9')");
    const put = (name: string, r: Record<string, unknown>) => {
      const cols = Object.keys(r);
      db.prepare(`INSERT INTO ${name} (${cols.join(", ")}) VALUES (${cols.map((c) => `@${c}`).join(", ")})`).run(r);
    };
    db.transaction(() => {
      for (const r of rows) put("jobs", r);
      for (const [name, rs] of Object.entries(tables)) for (const r of rs) put(name, r);
    })();
  } finally {
    db.close();
  }
}

/** Everything the store answers about its jobs (sizes and times of the file aside). */
async function reads(s: Store, ids: number[], roots: number[]): Promise<unknown> {
  const lists: Record<string, Job[]> = {
    all: await s.list({ limit: 0 }),
    page: await s.list({ limit: 3, beforeId: ids[Math.floor(ids.length / 2)]! }),
    preview: await s.list({ limit: 5, preview: 4 }),
  };
  for (const state of JOB_STATES) lists[state] = await s.list({ state, limit: 0 });
  for (const queue of ["a", "b", "c"]) lists[`queue ${queue}`] = await s.list({ queue, limit: 0 });
  for (const root of roots) lists[`run ${root}`] = await s.list({ rootId: root, limit: 0 });
  const waiting = lists.waiting!.map((j) => j.id);
  return {
    get: await Promise.all(ids.map((i) => s.get(i))),
    lists,
    stats: await s.stats(),
    report: await s.report(0),
    runs: await s.listRuns({}),
    runsByKey: await s.listRuns({ search: "run-" }),
    runsByText: await s.listRuns({ search: "needle" }),
    runsDone: await s.listRuns({ state: "completed" }),
    getRun: await Promise.all(roots.map((r) => s.getRun(r))),
    rounds: await Promise.all(roots.map((r) => s.countRounds(r, "b", 10))),
    ahead: await Promise.all(waiting.map((i) => s.jobsAhead(i))),
    held: (await s.upkeep()).jobsHeld,
    oldest: await s.oldestWaiting(),
    due: await s.nextDueAt(["a", "b", "c"]),
  };
}

describe("sqlite migration 10", () => {
  it("a store at migration 9 with finished and unfinished jobs migrates, and every read answers as before", async () => {
    // The jobs are made by the store's own verbs on a current store; then the same rows go,
    // with every other table, into a file made by migrations 1-9 (where all jobs were in
    // one table), which the store opens and migrates.
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const src = await openAt(join(dir, "src.db"), clock);
    const roots: number[] = [];
    for (let r = 0; r < 4; r++) {
      const root = (await src.enqueue("a", { r, text: r === 2 ? "a needle" : "hay" }, { key: `run-${r}` })).job.id;
      roots.push(root);
      const [l] = await src.claim({ workerId: W, queues: { a: 1 }, leaseMs: LEASE });
      await src.complete(l!, { r }, r < 3 ? [{ queue: "b", payload: { r } }, { queue: "b", payload: { r, two: true } }] : []);
      clock.advance(61_000);
    }
    for (const l of await src.claim({ workerId: W, queues: { b: 3 }, leaseMs: LEASE })) {
      if (l.job.payload && (l.job.payload as { two?: boolean }).two) await src.fail(l, { message: "no" });
      else await src.complete(l, null);
      clock.advance(1000);
    }
    await src.enqueueMany([
      { queue: "c", payload: 1, key: "keep" },
      { queue: "c", payload: 2, maxAttempts: 1 },
      { queue: "c", payload: 3, delayMs: 3_600_000 },
      { queue: "c", payload: 4, priority: 5 },
      { queue: "c", payload: 5 },
      { queue: "c", payload: 6 },
    ]);
    const cl = await src.claim({ workerId: W, queues: { c: 2 }, leaseMs: LEASE });
    await src.complete(cl.find((l) => l.job.key === "keep") ?? cl[0]!, "kept");
    await src.cancel((await src.list({ queue: "c", state: "waiting" }))[0]!.id);
    const leftActive = (await src.claim({ workerId: W, queues: { c: 1 }, leaseMs: LEASE }))[0]!;
    await src.fail((await src.claim({ workerId: W, queues: { b: 5 }, leaseMs: LEASE }))[0]!, { message: "later" }, { retryAt: clock.now() + 1000 });
    const ids = (await src.list({ limit: 0 })).map((j) => j.id).sort((x, y) => x - y);
    const want = await reads(src, ids, roots);
    await src.close();

    const srcDb = new Database(join(dir, "src.db"), { readonly: true });
    const every = srcDb.prepare(`SELECT ${ROW_COLUMNS} FROM jobs UNION ALL SELECT ${ROW_COLUMNS} FROM job_history ORDER BY id`).all() as Record<string, unknown>[];
    const others: Record<string, Record<string, unknown>[]> = {};
    for (const name of ["queue_totals", "job_minutes", "job_failures", "job_hours", "queues", "incidents"]) {
      others[name] = srcDb.prepare(`SELECT * FROM ${name}`).all() as Record<string, unknown>[];
    }
    srcDb.close();
    expect(new Set(every.map((r) => r["state"]))).toEqual(new Set(JOB_STATES));
    const file = join(dir, "v9.db");
    writeVersion9(file, every, others);
    // What the version-9 code read for a job: its row in the one jobs table.
    const before = new Database(file, { readonly: true });
    const oldRows = (before.prepare("SELECT * FROM jobs ORDER BY id").all() as JobRow[]).map(toJob);
    expect(before.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'job_history'").pluck().get()).toBe(0);
    before.close();

    // A read-only open (`vigil health`, `vigil doctor`) cannot migrate: it refuses the old
    // schema with what to run, instead of failing on a table the old schema lacks.
    const refused = await openSqliteStore(file, { readOnly: true }).then(
      () => null,
      (e: unknown) => e as VigilError,
    );
    expect(refused?.code).toBe("STORE_UNREACHABLE");
    expect(refused?.message).toMatch(/older schema.*vigil migrate/);

    const s = await openAt(file, clock);
    expect(s.migratedOnOpen).toBe(1);
    const ro = (await openSqliteStore(file, { readOnly: true, clock })) as SqliteStore;
    open.push(ro);
    expect(await Promise.all(ids.map((i) => ro.get(i)))).toEqual(oldRows);
    expect(SCHEMA_VERSION).toBe(10);
    const { live, done } = expectSplit(file);
    expect(live.size + done.size).toBe(ids.length);
    expect(await Promise.all(ids.map((i) => s.get(i)))).toEqual(oldRows);
    expect(await reads(s, ids, roots)).toEqual(want);

    // The migrated store goes on: the lease taken before still completes, a completed
    // job's key still dedupes, and new ids start above every old one.
    await s.complete(leftActive, "late");
    expect(table(file, "job_history").get(leftActive.jobId)).toBe("completed");
    expect((await s.enqueue("c", 0, { key: "keep" })).created).toBe(false);
    expect((await s.enqueue("c", 0)).job.id).toBe(Math.max(...ids) + 1);
  });
});
