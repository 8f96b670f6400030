/**
 * One bad next-stage job among many completions, against real stores (a SQLite file; a
 * fresh schema on the local PostgreSQL). The bad job's attempt fails on its own, with a
 * sentence naming the field and its limit; every other completion of the batch commits,
 * and the worker goes on claiming. On PostgreSQL such a job used to fail the whole
 * completion transaction on the server, which was retried forever: jobs stuck `active`,
 * claims stopped, heartbeats still green.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import type { Handler } from "../../src/handlers/types.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import type { Store } from "../../src/store/store.js";
import { Worker } from "../../src/worker/worker.js";
import { waitFor } from "../e2e/supervisor-helpers.js";
import type { WorkerMessage } from "../../src/child/protocol.js";
import { linkToSupervisor } from "../../src/worker/supervisor-link.js";
import { dropSchema, freshSchemaName, PG_URL, pgExec, requirePg } from "../store-contract/pg-helpers.js";

const silent = pino({ level: "silent" });

type Factory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const sqlite: Factory = async () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-poison-"));
  const s = await openSqliteStore(join(dir, "vigil.db"));
  return { store: s, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
};

const postgres: Factory = async () => {
  const schema = freshSchemaName("vigil_poison");
  const s = await openPostgresStore(PG_URL, { schema });
  return { store: s, cleanup: () => dropSchema(schema) };
};

const factories: [string, Factory][] = [["sqlite", sqlite]];
const hasPg = await requirePg("the poisoned hand-off tests on PostgreSQL");
if (hasPg) factories.push(["postgres", postgres]);

/** What the one bad handler adds to its route, and the words its job's error must carry. */
const POISONS: [string, Record<string, unknown>, RegExp][] = [
  ["priority 2**31", { priority: 2 ** 31 }, /priority .*2147483647/],
  ["delayMs 1e20", { delayMs: 1e20 }, /delayMs .*at most/],
  // Random hex: a repeated character would compress below PostgreSQL's index-row limit.
  ["a 4,000-character key", { key: randomBytes(2000).toString("hex") }, /key .*512 characters/],
];

/** How many jobs one batch holds in these tests (the figure). */
const JOBS = 170;

describe.each(factories)("a poisoned hand-off on %s", (_name, open) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  let worker: Worker | undefined;

  afterEach(async () => {
    await worker?.stop({ timeoutMs: 0 });
    worker = undefined;
    await store.close();
    await cleanup();
  });

  it.each(POISONS)("%s fails that job alone; the batch commits and claims go on", async (_what, poison, says) => {
    ({ store, cleanup } = await open());
    const w = new Worker(store, {
      queues: {
        a: {
          concurrency: JOBS,
          handler: async (job) => {
            const p = job.payload as { i: number; bad?: boolean };
            return { next: "b", payload: { i: p.i }, ...(p.bad ? poison : {}) };
          },
        },
        b: { concurrency: JOBS, handler: async () => "done" },
      },
      logger: silent,
    });
    w.on("store-error", () => {});
    worker = w.start();
    const bad = Math.floor(JOBS / 2);
    const ids = (await store.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ queue: "a", payload: { i, bad: i === bad } })))).map(
      (r) => r.job.id,
    );
    const poisoned = ids[bad]!;

    const dead = await waitFor(`job ${poisoned} dead`, async () => {
      const j = await store.get(poisoned);
      return j?.state === "dead" ? j : null;
    });
    expect(dead.error).toMatch(says);
    // Not retried: a result the store refuses is refused on every attempt.
    expect(dead.attempt).toBe(1);
    const others = ids.filter((id) => id !== poisoned);
    await waitFor("the rest of the batch completed", async () => {
      const jobs = await Promise.all(others.map((id) => store.get(id)));
      return jobs.every((j) => j?.state === "completed");
    });
    // Each completed job handed one job to `b`; none is stuck active with a live lease.
    await waitFor("every hand-off completed", async () => {
      const s = await store.stats();
      return s["b"]?.completed === JOBS - 1 && s["a"]?.active === 0 && s["b"]?.active === 0;
    });

    // The worker still claims.
    const more = await store.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ queue: "a", payload: { i: JOBS + i } })));
    for (const r of more) {
      const j: Job = await waitFor(`job ${r.job.id} completed`, async () => {
        const got = await store.get(r.job.id);
        return got?.state === "completed" ? got : null;
      });
      expect(j.attempt).toBe(1);
    }
  });
});

/** A store that refuses a next-stage job whose payload is "poison", for a reason of its own. */
type Refusing = () => Promise<{ store: Store; cleanup: () => Promise<void>; schema?: string; code: string }>;

const refusingSqlite: Refusing = async () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-refused-"));
  const s = await openSqliteStore(join(dir, "vigil.db"));
  const db = new Database(join(dir, "vigil.db"));
  db.exec(`CREATE TRIGGER no_poison BEFORE INSERT ON jobs WHEN NEW.payload = '"poison"' BEGIN SELECT RAISE(ABORT, 'no_poison'); END`);
  db.close();
  return { store: s, cleanup: async () => rmSync(dir, { recursive: true, force: true }), code: "SQLITE_CONSTRAINT_TRIGGER" };
};

const refusingPostgres: Refusing = async () => {
  const schema = freshSchemaName("vigil_refused");
  const s = await openPostgresStore(PG_URL, { schema });
  await pgExec(`ALTER TABLE "${schema}".jobs ADD CONSTRAINT no_poison CHECK (payload <> '"poison"')`);
  return { store: s, cleanup: () => dropSchema(schema), schema, code: "23514" };
};

const refusing: [string, Refusing][] = [["sqlite", refusingSqlite]];
if (hasPg) refusing.push(["postgres", refusingPostgres]);

/**
 * What validation cannot foresee: the store refuses one item for a reason of its own (here a
 * constraint or trigger the test adds; a full index would do the same). On PostgreSQL that
 * fails the whole batch's transaction, which is committed in parts until that item stands
 * alone; SQLite completes each item of a batch on its own.
 */
describe.each(refusing)("a completion the store refuses on %s", (name, open) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  let worker: Worker | undefined;
  const messages: WorkerMessage[] = [];

  const start = (s: Store, handler: Handler) => {
    const w = new Worker(s, {
      queues: { a: { concurrency: JOBS, handler }, b: { concurrency: JOBS, handler: async () => "done" } },
      logger: silent,
    });
    linkToSupervisor(w, (m) => messages.push(m));
    w.on("store-error", () => {});
    worker = w.start();
    return w;
  };

  const enqueue = async (n: number, from = 0, bad = -1) =>
    (await store.enqueueMany(Array.from({ length: n }, (_, i) => ({ queue: "a", payload: { i: from + i, bad: from + i === bad } })))).map(
      (r) => r.job.id,
    );

  afterEach(async () => {
    await worker?.stop({ timeoutMs: 0 });
    worker = undefined;
    messages.length = 0;
    await store.close();
    await cleanup();
  });

  it("fails that job alone, commits the rest of its batch, says so, and goes on claiming", async () => {
    const opened = await open();
    ({ store, cleanup } = opened);
    const refused: { jobId: number; error: string; code?: string }[] = [];
    const w = start(store, async (job) => {
      const p = job.payload as { i: number; bad?: boolean };
      return { next: "b", payload: p.bad ? "poison" : { i: p.i } };
    });
    w.on("store-refused", (info: { jobId: number; error: string; code?: string }) => refused.push(info));
    const bad = Math.floor(JOBS / 2);
    const ids = await enqueue(JOBS, 0, bad);
    const poisoned = ids[bad]!;

    const dead = await waitFor(`job ${poisoned} dead`, async () => {
      const j = await store.get(poisoned);
      return j?.state === "dead" ? j : null;
    });
    expect(dead.error).toMatch(/the store refused it \(.*no_poison.*\); the other completions of its batch were committed/);
    expect(dead.attempt).toBe(1);
    await waitFor("the rest of the batch completed", async () => {
      const s = await store.stats();
      return s["a"]?.completed === JOBS - 1 && s["a"]?.active === 0 && s["b"]?.completed === JOBS - 1 ? s : null;
    });
    // The worker said so: an event, and a message its supervisor turns into an incident.
    expect(refused).toEqual([expect.objectContaining({ jobId: poisoned, code: opened.code })]);
    expect(refused[0]!.error).toMatch(/no_poison/);
    expect(messages.filter((m) => m.t === "store-refused")).toEqual([
      expect.objectContaining({ t: "store-refused", jobId: poisoned, queue: "a", code: opened.code }),
    ]);

    const more = await enqueue(10, JOBS);
    await waitFor("ten more jobs completed", async () => {
      const jobs = await Promise.all(more.map((id) => store.get(id)));
      return jobs.every((j) => j?.state === "completed");
    });
  });

  // PostgreSQL only: SQLite has no serialization failures to raise.
  if (name === "postgres") it("a store-wide error (serialization failure) is retried whole: nothing is split off or failed", async () => {
    const opened = await open();
    ({ store, cleanup } = opened);
    const S = `"${opened.schema!}"`;
    await pgExec(`CREATE TABLE ${S}.hold (held boolean NOT NULL); INSERT INTO ${S}.hold VALUES (true);
      CREATE FUNCTION ${S}.refuse_while_held() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (SELECT held FROM ${S}.hold) THEN RAISE EXCEPTION 'held by the test' USING ERRCODE = '40001'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse BEFORE INSERT ON ${S}.jobs FOR EACH ROW WHEN (NEW.queue = 'b') EXECUTE FUNCTION ${S}.refuse_while_held();`);
    const errors: unknown[] = [];
    const refused: unknown[] = [];
    const w = start(store, async (job) => ({ next: "b", payload: job.payload }));
    w.on("store-error", (e) => errors.push(e));
    w.on("store-refused", (info) => refused.push(info));
    const ids = await enqueue(20);
    await waitFor("three failed commits", () => errors.length >= 3);
    // Nothing completed, nothing failed: the jobs wait, held (or not yet claimed).
    const held = await Promise.all(ids.map((id) => store.get(id)));
    expect(held.filter((j) => !["active", "waiting"].includes(j!.state))).toEqual([]);
    expect(held.some((j) => j!.state === "active")).toBe(true);

    await pgExec(`UPDATE ${S}.hold SET held = false`);
    await waitFor("every job completed", async () => {
      const jobs = await Promise.all(ids.map((id) => store.get(id)));
      return jobs.every((j) => j?.state === "completed" && j.attempt === 1);
    });
    // The next stage's jobs were handed on with those completions and run after them.
    await waitFor("every next-stage job completed", async () => (await store.stats())["b"]?.completed === 20);
    expect(refused).toEqual([]);
    expect(messages.filter((m) => m.t === "store-refused")).toEqual([]);
  });
});
