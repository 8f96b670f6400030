/**
 * Flow control across two hosts: two `vigil start` supervisors, each in its own project
 * folder with its own VIGIL_HOST and two worker processes, on one PostgreSQL schema (run
 * `npm run build` first). Each handler run goes to the ledger of its host's folder; the
 * checks read both: `rate` holds in every sliding second, `limit` and a group's limit bound
 * the runs overlapping over both hosts, both hosts do work, and a pause sent through one
 * host stops new starts on both within a second until a resume through the other.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";
import { LEDGER_FILES, ledger, maxInWindow, maxOverlap, type Run } from "./flow-helpers.js";
import { removeShared, sharedDir, startHost } from "./multi-host-helpers.js";
import { allRunning, cleanUp, makeProject, vigil, waitFor, type Project, type Running } from "./supervisor-helpers.js";

const ready = await requirePg("flow control across two hosts");

/**
 * limited and grouped run at most one and two jobs per worker process: their limits (3, and
 * 2 for each of 4 customers) can then be reached only with the other host's processes (a
 * process whose own job ends claims the freed slot first, so one host with room for all of
 * it would keep it). rated runs three 500 ms jobs per process: one host starts at most
 * about 12 a second, so the rate (20 a second) is reached only with both (the first claim
 * after a window opens takes its whole budget, so a host with room for it all could take
 * every window).
 */
function hostYaml(schema: string): string {
  return `store: ${PG_URL}
schema: ${schema}
queues:
  rated: { handler: ./ledger.mjs, concurrency: 3, rate: 20/1s }
  limited: { handler: ./ledger.mjs, concurrency: 1, limit: 3 }
  grouped: { handler: ./ledger.mjs, concurrency: 2, group: { by: payload.customer, limit: 2 } }
  pausable: { handler: ./ledger.mjs, concurrency: 2 }
services:
  workers: { queues: [rated, limited, grouped, pausable], instances: 2 }
http: { enabled: false }
`;
}

describe.runIf(ready)("flow control across two hosts sharing one PostgreSQL store", () => {
  const schema = freshSchemaName("vigil_flow_hosts");
  const shared = sharedDir();
  const hosts: { p: Project; runs: Running[] }[] = [];
  let store: Store;

  /** The runs of `queue` on both hosts, and on how many hosts (folders) they ran. */
  function runs(queue: string): { all: Run[]; hosts: number } {
    const per = hosts.map((h) => ledger(h.p, queue));
    return { all: per.flat(), hosts: per.filter((r) => r.length > 0).length };
  }

  async function drained(queue: string, n: number): Promise<void> {
    await waitFor(`${n} ${queue} jobs completed`, async () => ((await store.stats())[queue]?.completed ?? 0) >= n, 120_000, 200);
  }

  beforeAll(async () => {
    for (const name of ["host-a", "host-b"]) {
      const p = makeProject(hostYaml(schema), LEDGER_FILES);
      const h = { p, runs: [startHost(p, name, shared)] };
      hosts.push(h);
      await allRunning(p, h.runs[0], 60_000);
    }
    store = await openPostgresStore(PG_URL, { schema });
  }, 150_000);

  afterAll(async () => {
    for (const h of hosts) await cleanUp(h.p, h.runs);
    await store?.close();
    await dropSchema(schema);
    removeShared(shared);
  });

  it("rate 20/1s over 200 jobs: no one-second sliding window holds more than 20 starts over both hosts", async () => {
    await store.enqueueMany(Array.from({ length: 200 }, (_, i) => ({ queue: "rated", payload: { i, hold: 500 } })));
    await drained("rated", 200);
    const r = runs("rated");
    expect(r.all).toHaveLength(200);
    expect(r.hosts).toBe(2);
    expect(maxInWindow(r.all.map((x) => x.start), 1000)).toBeLessThanOrEqual(20);
    // And the rate is used, not starved: 200 jobs at 20 per 1.1 s take about 10 s.
    const span = Math.max(...r.all.map((x) => x.start)) - Math.min(...r.all.map((x) => x.start));
    expect(span).toBeGreaterThanOrEqual(8000);
  }, 180_000);

  it("limit 3: never more than 3 runs at once over both hosts", async () => {
    await store.enqueueMany(Array.from({ length: 40 }, (_, i) => ({ queue: "limited", payload: { i, hold: 150 } })));
    await drained("limited", 40);
    const r = runs("limited");
    expect(r.all).toHaveLength(40);
    expect(r.hosts).toBe(2);
    expect(maxOverlap(r.all)).toBeLessThanOrEqual(3);
    expect(maxOverlap(r.all)).toBe(3);
  }, 180_000);

  it("group limit 2 per customer: each customer's limit holds over both hosts while other customers' jobs flow", async () => {
    const customers = ["a", "b", "c", "d"];
    await store.enqueueMany(Array.from({ length: 48 }, (_, i) => ({ queue: "grouped", payload: { i, customer: customers[i % 4], hold: 150 } })));
    await drained("grouped", 48);
    const r = runs("grouped");
    expect(r.all).toHaveLength(48);
    expect(r.hosts).toBe(2);
    for (const c of customers) expect(maxOverlap(r.all.filter((x) => x.customer === c))).toBeLessThanOrEqual(2);
    expect(maxOverlap(r.all)).toBeGreaterThan(2);
  }, 180_000);

  it("a pause through one host stops new starts on both within a second; a resume through the other brings them back", async () => {
    const [a, b] = hosts as [(typeof hosts)[0], (typeof hosts)[0]];
    await store.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ queue: "pausable", payload: { i, hold: 50 } })));
    await waitFor("runs on both hosts", () => runs("pausable").hosts === 2 && runs("pausable").all.length >= 20, 60_000, 50);
    const paused = vigil(a.p, ["queues", "pause", "pausable"]);
    expect(paused.status).toBe(0);
    const pausedAt = Date.now();
    await waitFor("running jobs to finish", async () => ((await store.stats())["pausable"]?.active ?? 0) === 0, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    const before = runs("pausable").all;
    expect(before.filter((r) => r.start > pausedAt + 1000)).toEqual([]);
    expect(before.length).toBeLessThan(300);
    const seen = JSON.parse(vigil(b.p, ["queues", "list", "--json"]).stdout) as { name: string; paused: boolean }[];
    expect(seen.find((q) => q.name === "pausable")?.paused).toBe(true);
    expect(vigil(b.p, ["queues", "resume", "pausable"]).status).toBe(0);
    await drained("pausable", 300);
    const after = runs("pausable");
    expect(after.all).toHaveLength(300);
    expect(after.hosts).toBe(2);
  }, 180_000);
});
