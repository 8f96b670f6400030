/**
 * The worker runtime against real stores (a SQLite file in a temp folder; a fresh schema on
 * the local PostgreSQL): retries, backoff, dead jobs, timeouts, heartbeat timeouts,
 * hand-offs, fan-out, maxRounds, lost leases, a graceful stop that commits every
 * completion, and a worker whose loop was held past `frozenAfter`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NonRetryableError, RetryAfterError } from "../../src/core/errors.js";
import type { Job } from "../../src/core/types.js";
import type { Handler } from "../../src/handlers/types.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import type { Store } from "../../src/store/store.js";
import { FrozenError, type FrozenInfo } from "../../src/worker/freeze.js";
import { JobTimeoutError } from "../../src/worker/job-run.js";
import type { QueueOptions, WedgedInfo, WorkerOptions } from "../../src/index.js";
import { Worker } from "../../src/worker/worker.js";
import { waitFor } from "../e2e/supervisor-helpers.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";

const silent = pino({ level: "silent" });
const fast = { baseMs: 10, maxMs: 20 };

let store: Store;
let cleanup: () => Promise<void>;
let workers: Worker[] = [];

type Factory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const sqlite: Factory = async () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-worker-"));
  const s = await openSqliteStore(join(dir, "vigil.db"), { maxPayload: 64 * 1024 });
  return { store: s, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
};

const postgres: Factory = async () => {
  const schema = freshSchemaName("vigil_worker");
  const s = await openPostgresStore(PG_URL, { maxPayload: 64 * 1024, schema });
  return { store: s, cleanup: () => dropSchema(schema) };
};

const factories: [string, Factory][] = [["sqlite", sqlite]];
if (await requirePg("the worker tests on PostgreSQL")) factories.push(["postgres", postgres]);

function run(queues: Record<string, Handler | QueueOptions>, extra: Partial<WorkerOptions> = {}): Worker {
  const w = new Worker(store, { queues, logger: silent, ...extra });
  workers.push(w);
  return w.start();
}

async function settled(id: number, states: Job["state"][] = ["completed", "dead"]): Promise<Job> {
  return waitFor(`job ${id} in ${states.join("/")}`, async () => {
    const j = await store.get(id);
    return j && states.includes(j.state) ? j : null;
  });
}

describe.each(factories)("Worker on %s", (_name, open) => {
  beforeEach(async () => {
    ({ store, cleanup } = await open());
  });

  afterEach(async () => {
    for (const w of workers) await w.stop({ timeoutMs: 0 });
    workers = [];
    await store.close();
    await cleanup();
  });

  it("runs a handler with the job and stores its result", async () => {
    const seen: unknown[] = [];
    run({
      hello: async (job, ctx) => {
        seen.push({ ...job, aborted: ctx.signal.aborted });
        ctx.log.info("hi");
        ctx.heartbeat();
        return { greeting: `hello ${(job.payload as { name: string }).name}` };
      },
    });
    const { job } = await store.enqueue("hello", { name: "ada" }, { key: "k1" });
    const done = await settled(job.id);
    expect(done.state).toBe("completed");
    expect(done.result).toEqual({ greeting: "hello ada" });
    expect(seen).toEqual([
      expect.objectContaining({ id: job.id, queue: "hello", payload: { name: "ada" }, key: "k1", attempt: 1, aborted: false }),
    ]);
  });

  it("retries with backoff, keeping message and stack of each failed attempt", async () => {
    run({
      flaky: {
        backoff: fast,
        attempts: 5,
        handler: async (job) => {
          if (job.attempt < 3) throw new Error(`boom ${job.attempt}`);
          return { ok: job.attempt };
        },
      },
    });
    const { job } = await store.enqueue("flaky", {});
    const done = await settled(job.id);
    expect(done.state).toBe("completed");
    expect(done.result).toEqual({ ok: 3 });
    expect(done.history.map((h) => [h.attempt, h.outcome, h.message])).toEqual([
      [1, "error", "boom 1"],
      [2, "error", "boom 2"],
    ]);
    expect(done.history[0]!.stack).toContain("worker.test.ts");
  });

  it("sends a job to dead when attempts are exhausted", async () => {
    let calls = 0;
    run({ bad: { backoff: fast, attempts: 3, handler: async () => { calls++; throw new Error("always"); } } });
    const { job } = await store.enqueue("bad", {});
    const done = await settled(job.id);
    expect(done.state).toBe("dead");
    expect(calls).toBe(3);
    expect(done.history).toHaveLength(3);
    expect(done.error).toBe("always");
  });

  it("sends a NonRetryableError straight to dead", async () => {
    let calls = 0;
    run({ nr: { backoff: fast, attempts: 5, handler: async () => { calls++; throw new NonRetryableError("bad input"); } } });
    const { job } = await store.enqueue("nr", {});
    const done = await settled(job.id);
    expect(done.state).toBe("dead");
    expect(calls).toBe(1);
    expect(done.history.map((h) => h.message)).toEqual(["bad input"]);
  });

  it("honours RetryAfterError's delay", async () => {
    const failed: { retryAt?: number }[] = [];
    const w = run({ later: { backoff: fast, handler: async () => { throw new RetryAfterError(60_000, "rate limited"); } } });
    w.on("failed", (f) => failed.push(f));
    const before = Date.now();
    const { job } = await store.enqueue("later", {});
    await waitFor("the failure", () => failed.length === 1);
    const j = (await store.get(job.id))!;
    expect(["failed", "scheduled"]).toContain(j.state);
    expect(j.runAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(failed[0]!.retryAt).toBe(j.runAt);
  });

  it("aborts a handler at its timeout and retries it", async () => {
    const reasons: unknown[] = [];
    const timeouts: unknown[] = [];
    const w = run({
      slow: {
        timeout: 150,
        backoff: fast,
        handler: (job, ctx) =>
          job.attempt === 1
            ? new Promise((_, reject) =>
                ctx.signal.addEventListener("abort", () => {
                  reasons.push(ctx.signal.reason);
                  reject(ctx.signal.reason as Error);
                }),
              )
            : { second: true },
      },
    });
    w.on("timeout", (t) => timeouts.push(t));
    const { job } = await store.enqueue("slow", {});
    const done = await settled(job.id);
    expect(done.result).toEqual({ second: true });
    expect(done.history.map((h) => h.outcome)).toEqual(["timeout"]);
    expect(reasons[0]).toBeInstanceOf(JobTimeoutError);
    expect(timeouts).toEqual([{ jobId: job.id, queue: "slow", timeoutMs: 150 }]);
  });

  it("reports a handler that ignores its abort as wedged after killGrace", async () => {
    const wedged: WedgedInfo[] = [];
    const viaOption: WedgedInfo[] = [];
    const w = run(
      { stuck: { timeout: 100, killGrace: 200, attempts: 1, handler: () => new Promise(() => {}) } },
      { onWedged: (i) => viaOption.push(i) },
    );
    w.on("wedged", (i: WedgedInfo) => wedged.push(i));
    const { job } = await store.enqueue("stuck", {});
    await waitFor("wedged", () => wedged.length === 1);
    expect(wedged[0]).toMatchObject({ jobId: job.id, queue: "stuck" });
    expect(viaOption).toEqual(wedged);
    // The handler may still be running: nothing is recorded, and the lease is kept (the
    // process exits and its jobs are freed once it is gone) so no retry starts beside it.
    const j = (await store.get(job.id))!;
    expect([j.state, j.workerId, j.history]).toEqual(["active", w.workerId, []]);
  });

  it("aborts its jobs unrecorded and stops when its loop was held past frozenAfter", async () => {
    const frozen: FrozenInfo[] = [];
    const reasons: unknown[] = [];
    let started = false;
    const w = run(
      {
        held: (_job, ctx) => {
          started = true;
          ctx.signal.addEventListener("abort", () => reasons.push(ctx.signal.reason));
          return new Promise((resolve) => setTimeout(() => resolve("done"), 400));
        },
      },
      { frozenAfter: 300, onFrozen: (i) => frozen.push(i) },
    );
    const stopped = new Promise((resolve) => w.once("stopped", resolve));
    const { job } = await store.enqueue("held", {});
    await waitFor("the handler started", () => started);
    // The whole loop held past frozenAfter, as a SIGSTOP or a paused VM would hold it.
    const until = performance.now() + 700;
    while (performance.now() < until) {
      // held
    }
    await stopped;
    expect(frozen).toHaveLength(1);
    expect(frozen[0]!.gapMs).toBeGreaterThan(300);
    expect(reasons[0]).toBeInstanceOf(FrozenError);
    const j = (await store.get(job.id))!;
    expect([j.state, j.history]).toEqual(["active", []]);
  });

  it("treats a handler that stopped heartbeating as hung", async () => {
    run({
      beats: {
        timeout: 60_000,
        heartbeatTimeout: 200,
        backoff: fast,
        handler: (job, ctx) => {
          if (job.attempt > 1) return "fine";
          ctx.heartbeat({ step: 1 });
          return new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(new Error("aborted"))));
        },
      },
    });
    const { job } = await store.enqueue("beats", {});
    const done = await settled(job.id);
    expect(done.result).toBe("fine");
    expect(done.history[0]!.outcome).toBe("timeout");
    expect(done.history[0]!.message).toContain("no heartbeat for 200 ms");
  });

  it("keeps a job alive while its handler heartbeats past heartbeatTimeout", async () => {
    run({
      steady: {
        heartbeatTimeout: 150,
        handler: async (_job, ctx) => {
          for (let i = 0; i < 6; i++) {
            ctx.heartbeat(i);
            await new Promise((r) => setTimeout(r, 50));
          }
          return "done";
        },
      },
    });
    const { job } = await store.enqueue("steady", {});
    const done = await settled(job.id);
    expect(done.result).toBe("done");
    expect(done.history).toEqual([]);
  });

  it("hands a result on to the next queue in the same completion", async () => {
    run({ a: { next: "b", handler: async (job) => ({ from: job.id }) }, b: async (job) => ({ got: job.payload }) });
    const { job } = await store.enqueue("a", { idea: 1 });
    await settled(job.id);
    const bs = await waitFor("b done", async () => {
      const list = await store.list({ queue: "b", limit: 0 });
      return list.length === 1 && list[0]!.state === "completed" ? list : null;
    });
    expect(bs[0]!.payload).toEqual({ from: job.id });
    expect(bs[0]!.parentId).toBe(job.id);
    expect(bs[0]!.rootId).toBe(job.id);
    expect(bs[0]!.result).toEqual({ got: { from: job.id } });
  });

  it("fans out when a handler returns an array of routes", async () => {
    const got: unknown[] = [];
    run({
      split: async () => [
        { next: "part", payload: 1 },
        { next: "part", payload: 2, priority: 5 },
        { next: "other", payload: { x: 3 } },
      ],
      part: async (job) => got.push(job.payload),
    });
    const { job } = await store.enqueue("split", {});
    await settled(job.id);
    const made = await store.list({ rootId: job.id, limit: 0 });
    expect(made.filter((j) => j.id !== job.id).map((j) => [j.queue, j.payload]).sort()).toEqual([
      ["other", { x: 3 }],
      ["part", 1],
      ["part", 2],
    ]);
    await waitFor("both parts", () => got.length === 2);
    // A plain object with extra keys is a result, not a route.
    const plain = { next: "part", payload: 1, note: "data" };
    run({ keep: async () => plain });
    const { job: k } = await store.enqueue("keep", {});
    expect((await settled(k.id)).result).toEqual(plain);
    expect((await store.list({ rootId: k.id, limit: 0 })).map((j) => j.id)).toEqual([k.id]);
  });

  it("bounds a loop with maxRounds: the job that would pass it goes dead", async () => {
    run({
      impl: { maxRounds: 3, next: "qa", handler: async (job) => ({ draft: job.id }) },
      qa: async (job) => ({ next: "impl", payload: { findings: job.payload } }),
    });
    const { job: root } = await store.enqueue("impl", {});
    const dead = await waitFor("a dead qa job", async () => {
      const qa = await store.list({ queue: "qa", state: "dead", limit: 0 });
      return qa.length ? qa : null;
    });
    const lineage = await store.list({ rootId: root.id, limit: 0 });
    expect(lineage.filter((j) => j.queue === "impl")).toHaveLength(3);
    expect(lineage.filter((j) => j.queue === "qa")).toHaveLength(3);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.error).toContain("maxRounds");
    expect(dead[0]!.error).toContain('"impl"');
  });

  it("aborts a job whose lease was lost and discards its result", async () => {
    const lost: unknown[] = [];
    let reason: unknown;
    const w = run({
      long: {
        lease: 300,
        handler: (_job, ctx) =>
          new Promise((resolve) =>
            ctx.signal.addEventListener("abort", () => {
              reason = ctx.signal.reason;
              resolve({ late: true });
            }),
          ),
      },
    });
    w.on("lease-lost", (l) => lost.push(l));
    const { job } = await store.enqueue("long", {});
    await settled(job.id, ["active"]);
    await store.cancel(job.id);
    await waitFor("lease lost", () => lost.length === 1);
    expect((reason as Error).name).toBe("LeaseLostError");
    const j = (await store.get(job.id))!;
    expect(j.state).toBe("cancelled");
    expect(j.result).toBeNull();
  });

  it("sends a job whose result cannot be stored to dead, saying why", async () => {
    run({ big: async () => ({ blob: "x".repeat(100 * 1024) }), odd: async () => ({ n: 1n }) });
    const { job } = await store.enqueue("big", {});
    const done = await settled(job.id);
    expect(done.state).toBe("dead");
    expect(done.error).toContain("the result could not be stored");
    expect(done.error).toContain("over the limit");
    const { job: odd } = await store.enqueue("odd", {});
    const oddDone = await settled(odd.id);
    expect(oddDone.state).toBe("dead");
    expect(oddDone.error).toContain("not JSON-serialisable");
  });

  it("on stop, commits every completion and gives back unfinished jobs without counting an attempt", async () => {
    const returned = new Set<number>();
    const w = run({
      many: {
        concurrency: 50,
        handler: async (job) => {
          if ((job.payload as { slow?: boolean }).slow) {
            await new Promise((r) => setTimeout(r, 60_000));
          }
          returned.add(job.id);
          return job.id;
        },
      },
    });
    const items = Array.from({ length: 3000 }, (_, i) => ({ queue: "many", payload: { i, slow: i % 1000 === 0 } }));
    await store.enqueueMany(items);
    await waitFor("some completions", () => returned.size > 200, 30_000, 5);
    await w.stop({ timeoutMs: 200 });
    const all = await store.list({ queue: "many", limit: 0 });
    expect(all).toHaveLength(3000);
    const byState = (s: Job["state"]) => all.filter((j) => j.state === s);
    expect(byState("active")).toEqual([]);
    // Every handler that returned has its completion recorded, and nothing else completed.
    expect(new Set(byState("completed").map((j) => j.id))).toEqual(returned);
    // The rest is back in waiting with no attempt counted.
    expect(byState("waiting").length + byState("completed").length).toBe(3000);
    for (const j of byState("waiting")) expect(j.attempt).toBe(0);
    const slow = all.filter((j) => (j.payload as { slow: boolean }).slow);
    expect(slow.some((j) => j.state === "waiting")).toBe(true);
  });
});
