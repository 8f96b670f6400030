/**
 * Flow control with two real `vigil worker` processes on one store, SQLite file and
 * PostgreSQL (run `npm run build` first). Each handler run is written to a ledger file
 * (start and end, per process); the checks read the ledger: `rate` holds in every sliding
 * window, `limit` and a group's limit bound the overlapping runs, and a paused queue starts
 * nothing new (also after its workers restart) until it is resumed.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";
import { LEDGER_FILES as FILES, ledger, maxInWindow, maxOverlap } from "./flow-helpers.js";
import { vigil, waitFor } from "./supervisor-helpers.js";
import { killAll, removeProject, started, startWorker, workerProject, type WorkerProject } from "./worker-helpers.js";

const QUEUES = `
queues:
  rated: { handler: ./ledger.mjs, concurrency: 50, rate: 20/1s }
  blocked: { handler: ./ledger.mjs, concurrency: 50, rate: 20/1s }
  limited: { handler: ./ledger.mjs, concurrency: 5, limit: 3 }
  grouped: { handler: ./ledger.mjs, concurrency: 10, group: { by: payload.customer, limit: 2 } }
  pausable: { handler: ./ledger.mjs, concurrency: 2 }
  polite: { handler: ./ledger.mjs, concurrency: 2 }
  dup: { handler: ./ledger.mjs, onDuplicate: replace }
`;

function flowSuite(name: string, storeLine: () => Promise<{ line: string; cleanup: () => Promise<void> }>): void {
  describe(`flow control with two worker processes: ${name}`, () => {
    let p: WorkerProject;
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      const s = await storeLine();
      cleanup = s.cleanup;
      p = workerProject(`store: ${s.line}\n${QUEUES}`, FILES);
      store = await openStore(s.line.startsWith("sqlite:") ? `sqlite:${p.db}` : s.line);
    });
    afterEach(async () => {
      await killAll();
    });
    afterAll(async () => {
      await store.close();
      removeProject(p);
      await cleanup();
    });

    async function drained(queue: string, n: number): Promise<void> {
      await waitFor(`${n} ${queue} jobs completed`, async () => ((await store.stats())[queue]?.completed ?? 0) >= n, 120_000, 200);
    }

    it("rate 20/1s over 200 jobs: no one-second sliding window holds more than 20 starts", async () => {
      const workers = [startWorker(p, "r1", "rated"), startWorker(p, "r2", "rated")];
      await Promise.all(workers.map(started));
      const made = await store.enqueueMany(Array.from({ length: 200 }, (_, i) => ({ queue: "rated", payload: { i } })));
      // While the budget is spent, a waiting job says what holds it.
      await waitFor("the first second's starts", () => ledger(p, "rated").length >= 20, 60_000, 50);
      const shown = JSON.parse(vigil(p, ["jobs", "show", String(made[199]!.job.id), "--json"]).stdout) as { state: string; why?: string };
      expect(shown.state).toBe("waiting");
      expect(shown.why).toMatch(/^waiting: held by flow control: queue rated: rate 20\/1s reached, next start in [\d.]+m?s \(\d+ s ago\)$/);
      await drained("rated", 200);
      const runs = ledger(p, "rated");
      expect(runs).toHaveLength(200);
      // (Which process starts a window's jobs is a race at each window's opening: the first
      // claim takes the whole budget, so one process may take them all.)
      // The store's start times (when each claim counted its starts) hold the guarantee exactly.
      const jobs = await store.list({ queue: "rated", limit: 0 });
      expect(maxInWindow(jobs.map((j) => j.startedAt!), 1000)).toBeLessThanOrEqual(20);
      // And so do the handlers' own start times, read from the ledger.
      const handlerMax = maxInWindow(runs.map((r) => r.start), 1000);
      expect(handlerMax).toBeLessThanOrEqual(20);
      // 200 starts at ≤ 20 per second cannot take less than 9 s from first to last.
      const starts = runs.map((r) => r.start);
      expect(Math.max(...starts) - Math.min(...starts)).toBeGreaterThanOrEqual(9000);
    }, 180_000);

    it("rate 20/1s: a worker whose event loop is blocked right after its claim does not crowd a window with late starts", async () => {
      const workers = [startWorker(p, "b1", "blocked"), startWorker(p, "b2", "blocked")];
      await Promise.all(workers.map(started));
      // The first job holds its process's loop for 1.5 s: the rest of that claim would start
      // after the other process's next claim, a second later. They are given back instead.
      await store.enqueueMany(Array.from({ length: 60 }, (_, i) => ({ queue: "blocked", payload: { i, block: i === 0 ? 1500 : 0 } })));
      await drained("blocked", 60);
      const runs = ledger(p, "blocked");
      expect(runs).toHaveLength(60);
      expect(maxInWindow(runs.map((r) => r.start), 1000)).toBeLessThanOrEqual(20);
      // Some jobs were given back unrun (their attempt not counted) and ran later.
      const jobs = await store.list({ queue: "blocked", limit: 0 });
      expect(jobs.every((j) => j.attempt === 1)).toBe(true);
    }, 180_000);

    it("ctx.rateLimited(1500) holds the whole queue on both processes and gives the job back uncounted", async () => {
      const workers = [startWorker(p, "h1", "polite"), startWorker(p, "h2", "polite")];
      await Promise.all(workers.map(started));
      const made = await store.enqueueMany(
        Array.from({ length: 40 }, (_, i) => ({ queue: "polite", payload: { i, hold: 100, ...(i === 4 ? { r429: 1500 } : {}) } })),
      );
      await drained("polite", 40);
      const limitedId = made[4]!.job.id;
      expect(readFileSync(join(p.dir, `r429-${limitedId}`), "utf8")).toMatch(/^\d+$/);
      expect(ledger(p, "polite")).toHaveLength(40);
      // The hold began when the store recorded it: no job of the queue was claimed (started)
      // on either process from then until it ended (100 ms allowed for a claim already
      // under way on PostgreSQL, whose clock the hold is read on).
      const state = (await store.queueStates()).find((q) => q.name === "polite")!;
      expect(state.heldReason).toBe("queue polite: rate limited by its handler for 1.5s (HTTP 429)");
      const heldAt = state.heldAt!;
      const jobs = await store.list({ queue: "polite", limit: 0 });
      expect(jobs.filter((j) => j.startedAt! >= heldAt + 100 && j.startedAt! < heldAt + 1500).map((j) => j.id)).toEqual([]);
      // The job itself ran again after the hold, its attempt not counted.
      const job = (await store.get(limitedId))!;
      expect(job).toMatchObject({ state: "completed", attempt: 1 });
      expect(job.startedAt!).toBeGreaterThanOrEqual(heldAt + 1500 - 100);
    }, 180_000);

    it("vigil enqueue --key K --replace (or the queue's onDuplicate: replace) replaces a waiting job's payload", async () => {
      const first = vigil(p, ["enqueue", "polite", '{"v":1}', "--key", "rk", "--json"]);
      const id = (JSON.parse(first.stdout) as { id: number }).id;
      expect(vigil(p, ["enqueue", "polite", '{"v":2}', "--key", "rk"]).stdout).toBe(`exists: job ${id} on polite (waiting)\n`);
      expect((await store.get(id))!.payload).toEqual({ v: 1 });
      expect(vigil(p, ["enqueue", "polite", '{"v":3}', "--key", "rk", "--replace"]).stdout).toBe(
        `replaced the payload of job ${id} on polite (waiting)\n`,
      );
      expect((await store.get(id))!.payload).toEqual({ v: 3 });
      const noKey = vigil(p, ["enqueue", "polite", '{"v":4}', "--replace"]);
      expect([noKey.status, noKey.stderr]).toEqual([1, "vigil: --replace needs --key: it replaces the payload of the waiting job holding that key\n"]);
      // The queue's config says replace: no flag needed.
      const d = JSON.parse(vigil(p, ["enqueue", "dup", '{"v":1}', "--key", "dk", "--json"]).stdout) as { id: number };
      vigil(p, ["enqueue", "dup", '{"v":2}', "--key", "dk"]);
      expect((await store.get(d.id))!.payload).toEqual({ v: 2 });
      await store.cancel(id);
      await store.cancel(d.id);
    }, 60_000);

    it("limit 3: never more than 3 runs at once over both processes", async () => {
      const workers = [startWorker(p, "l1", "limited"), startWorker(p, "l2", "limited")];
      await Promise.all(workers.map(started));
      await store.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ queue: "limited", payload: { i, hold: 150 } })));
      await drained("limited", 30);
      const runs = ledger(p, "limited");
      expect(runs).toHaveLength(30);
      expect(maxOverlap(runs)).toBeLessThanOrEqual(3);
    }, 180_000);

    it("group limit 2 per customer: each customer's limit holds while other customers' jobs flow", async () => {
      const workers = [startWorker(p, "g1", "grouped"), startWorker(p, "g2", "grouped")];
      await Promise.all(workers.map(started));
      const jobs = ["a", "b", "c"].flatMap((customer) =>
        Array.from({ length: 10 }, (_, i) => ({ queue: "grouped", payload: { customer, i, hold: 300 } })),
      );
      await store.enqueueMany(jobs);
      await drained("grouped", 30);
      const runs = ledger(p, "grouped");
      expect(runs).toHaveLength(30);
      for (const c of ["a", "b", "c"]) expect(maxOverlap(runs.filter((r) => r.customer === c))).toBeLessThanOrEqual(2);
      // Other customers ran beside a customer at its limit: more than 2 at once in all.
      expect(maxOverlap(runs)).toBeGreaterThan(2);
    }, 180_000);

    it("pause stops new starts within a second and survives a restart; resume brings them back", async () => {
      let workers = [startWorker(p, "p1", "pausable"), startWorker(p, "p2", "pausable")];
      await Promise.all(workers.map(started));
      await store.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ queue: "pausable", payload: { i, hold: 50 } })));
      await waitFor("some runs", () => ledger(p, "pausable").length >= 20, 60_000, 50);
      const typo = vigil(p, ["queues", "pause", "pausabel"]);
      expect(typo.status).toBe(1);
      expect(typo.stderr).toMatch(/^vigil: unknown queue "pausabel": known queues are .*pausable/);
      const paused = vigil(p, ["queues", "pause", "pausable"]);
      expect(paused.stderr).toBe("");
      expect(paused.status).toBe(0);
      const pausedAt = Date.now();
      const list = JSON.parse(vigil(p, ["queues", "list", "--json"]).stdout) as { name: string; paused: boolean; rate?: string }[];
      expect(list.find((q) => q.name === "pausable")?.paused).toBe(true);
      expect(list.find((q) => q.name === "rated")).toMatchObject({ paused: false, rate: "20/1s" });
      expect(list.find((q) => q.name === "grouped")).toMatchObject({ group: { by: "payload.customer", limit: 2 } });
      expect(vigil(p, ["queues", "list"]).stdout).toMatch(/\npausable\s+paused since \S+\s+\d+/);
      // Wait until nothing runs, then a while longer: no run may start after the first second.
      await waitFor("running jobs to finish", async () => ((await store.stats())["pausable"]?.active ?? 0) === 0, 30_000);
      await new Promise((r) => setTimeout(r, 1500));
      const before = ledger(p, "pausable");
      expect(before.filter((r) => r.start > pausedAt + 1000)).toEqual([]);
      expect(before.length).toBeLessThan(300);
      const waiting = (await store.list({ queue: "pausable", state: "waiting", limit: 1 }))[0]!;
      const shown = JSON.parse(vigil(p, ["jobs", "show", String(waiting.id), "--json"]).stdout) as { why?: string };
      expect(shown.why).toBe("waiting: queue pausable is paused; `vigil queues resume pausable` starts its jobs again");
      // The pause is stored: new worker processes start nothing either.
      await killAll();
      workers = [startWorker(p, "p3", "pausable"), startWorker(p, "p4", "pausable")];
      await Promise.all(workers.map(started));
      await new Promise((r) => setTimeout(r, 1500));
      expect(ledger(p, "pausable").length).toBe(before.length);
      const status = vigil(p, ["status", "--json"]);
      expect((JSON.parse(status.stdout) as { paused?: string[] }).paused).toEqual(["pausable"]);
      const resumed = vigil(p, ["queues", "resume", "pausable"]);
      expect(resumed.status).toBe(0);
      await drained("pausable", 300);
      expect(ledger(p, "pausable")).toHaveLength(300);
    }, 180_000);
  });
}

flowSuite("sqlite", async () => ({ line: "sqlite:vigil.db", cleanup: async () => {} }));

if (await requirePg("flow control end-to-end on PostgreSQL")) {
  flowSuite("postgres", async () => {
    const schema = freshSchemaName("vigil_flow");
    return { line: `${PG_URL}?schema=${schema}`, cleanup: () => dropSchema(schema) };
  });
}
