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
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import type { Store } from "../../src/store/store.js";
import { Worker } from "../../src/worker/worker.js";
import { waitFor } from "../e2e/supervisor-helpers.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";

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
if (await requirePg("the poisoned hand-off tests on PostgreSQL")) factories.push(["postgres", postgres]);

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
      ipc: false,
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
