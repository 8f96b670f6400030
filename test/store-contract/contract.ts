/**
 * The store contract: what every `Store` adapter guarantees, run unchanged against each
 * engine. `open` makes a fresh, migrated, empty store (the suite passes a ManualClock in
 * `opts.clock` where time must move); the suite closes the store, then calls `cleanup`.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { VigilError } from "../../src/core/errors.js";
import type { Job, Lease } from "../../src/core/types.js";
import type { Store, StoreOptions } from "../../src/store/store.js";

export type OpenStore = (opts?: StoreOptions) => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const LEASE = 10_000;

/** Resolves once `cond` holds; fails with `what` after `ms` (generous: shared 2-core machine). */
async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The error `fn` rejects with (fails the test if it resolves). */
async function errorOf(fn: () => Promise<unknown>): Promise<VigilError> {
  try {
    await fn();
  } catch (err) {
    return err as VigilError;
  }
  throw new Error("expected a rejection");
}

export function defineStoreContract(name: string, open: OpenStore): void {
  describe(`store contract: ${name}`, () => {
    let clock: ManualClock;
    let store: Store;
    const opened: { store: Store; cleanup: () => Promise<void> }[] = [];

    const fresh = async (opts: StoreOptions = {}): Promise<Store> => {
      const r = await open({ clock, ...opts });
      opened.push(r);
      return r.store;
    };
    const claim = (queues: Record<string, number>, workerId = "w1", leaseMs = LEASE, s = store) =>
      s.claim({ workerId, queues, leaseMs });
    const claimOne = async (queue = "q", workerId = "w1"): Promise<Lease> => {
      const [lease] = await claim({ [queue]: 1 }, workerId);
      if (!lease) throw new Error(`nothing to claim on ${queue}`);
      return lease;
    };
    const must = async (id: number): Promise<Job> => {
      const job = await store.get(id);
      if (!job) throw new Error(`job ${id} is missing`);
      return job;
    };

    beforeEach(async () => {
      clock = new ManualClock();
      store = await fresh();
    });
    afterEach(async () => {
      for (const r of opened.splice(0)) {
        await r.store.close();
        await r.cleanup();
      }
    });

    describe("enqueue", () => {
      it("stores a waiting job with defaults", async () => {
        const { job, created } = await store.enqueue("q", { n: 1, s: "é" });
        expect(created).toBe(true);
        expect(job).toMatchObject({
          queue: "q", state: "waiting", key: null, payload: { n: 1, s: "é" }, result: null, error: null,
          attempt: 0, maxAttempts: 5, stalls: 0, priority: 0, runAt: clock.now(), createdAt: clock.now(),
          startedAt: null, finishedAt: null, parentId: null, rootId: null, workerId: null, leaseUntil: null,
          history: [],
        });
        expect(await store.get(job.id)).toEqual(job);
        expect(await store.get(job.id + 1000)).toBeNull();
      });

      it("keeps options: priority, attempts, source", async () => {
        const source = { trigger: "ideas", path: "data/ideas.log", offset: 42 };
        const { job } = await store.enqueue("q", null, { priority: 7, maxAttempts: 2, source });
        expect(job).toMatchObject({ priority: 7, maxAttempts: 2, source, payload: null });
        const { job: d } = await (await fresh({ clock, defaultAttempts: 9 })).enqueue("q", 1);
        expect(d.maxAttempts).toBe(9);
      });

      it("with a key returns the live job instead of a second one", async () => {
        const a = await store.enqueue("q", { v: 1 }, { key: "idea-42" });
        const b = await store.enqueue("q", { v: 2 }, { key: "idea-42" });
        expect(b.created).toBe(false);
        expect(b.job.id).toBe(a.job.id);
        expect(b.job.payload).toEqual({ v: 1 });
        expect((await store.list({ limit: 0 })).length).toBe(1);
      });

      it("with a key makes a new job once the old one is dead or cancelled", async () => {
        const a = await store.enqueue("q", 1, { key: "k" });
        await store.cancel(a.job.id);
        const b = await store.enqueue("q", 2, { key: "k" });
        expect(b.created).toBe(true);
        expect(b.job.id).not.toBe(a.job.id);
        const lease = await claimOne();
        await store.fail(lease, { message: "no" });
        const c = await store.enqueue("q", 3, { key: "k" });
        expect(c.created).toBe(true);
        expect(new Set([a.job.id, b.job.id, c.job.id]).size).toBe(3);
      });

      it("with a delay or runAt is scheduled, and claimable once due", async () => {
        const { job } = await store.enqueue("q", 1, { delayMs: 5000 });
        const { job: at } = await store.enqueue("q", 2, { runAt: clock.now() + 8000 });
        expect(job).toMatchObject({ state: "scheduled", runAt: clock.now() + 5000 });
        expect(at).toMatchObject({ state: "scheduled", runAt: clock.now() + 8000 });
        expect(await claim({ q: 10 })).toEqual([]);
        clock.advance(5000);
        expect((await claim({ q: 10 })).map((l) => l.jobId)).toEqual([job.id]);
        clock.advance(3000);
        expect((await claim({ q: 10 })).map((l) => l.jobId)).toEqual([at.id]);
      });

      it("enqueueMany is all or nothing", async () => {
        const ok = await store.enqueueMany([
          { queue: "a", payload: 1 },
          { queue: "b", payload: 2, key: "x" },
          { queue: "b", payload: 3, key: "x" },
        ]);
        expect(ok.map((r) => r.created)).toEqual([true, true, false]);
        expect(ok[2]!.job.id).toBe(ok[1]!.job.id);
        const bad = await errorOf(() =>
          store.enqueueMany([{ queue: "a", payload: 4 }, { queue: "no spaces", payload: 5 }]),
        );
        expect(bad.code).toBe("BAD_INPUT");
        expect((await store.list({ limit: 0 })).map((j) => j.payload).sort()).toEqual([1, 2]);
      });

      it("refuses bad queue names, unserialisable and oversized payloads, writing nothing", async () => {
        expect((await errorOf(() => store.enqueue("bad name", 1))).code).toBe("BAD_INPUT");
        expect((await errorOf(() => store.enqueue("", 1))).code).toBe("BAD_INPUT");
        expect((await errorOf(() => store.enqueue("q", { n: 10n }))).code).toBe("BAD_INPUT");
        const big = "x".repeat((1 << 20) + 1);
        const tooBig = await errorOf(() => store.enqueue("q", big));
        expect(tooBig.code).toBe("PAYLOAD_TOO_LARGE");
        expect(tooBig.message).toMatch(/limit of 1048576 bytes/);
        const small = await fresh({ clock, maxPayload: 64 });
        expect((await errorOf(() => small.enqueue("q", "y".repeat(100)))).code).toBe("PAYLOAD_TOO_LARGE");
        expect(await small.list({ limit: 0 })).toEqual([]);
        expect(await store.list({ limit: 0 })).toEqual([]);
      });
    });

    describe("claim", () => {
      it("leases with a fresh token, counts the attempt and sets the lease", async () => {
        const { job } = await store.enqueue("q", { a: 1 });
        clock.advance(250);
        const leases = await claim({ q: 5 }, "w1", 3000);
        expect(leases.length).toBe(1);
        const l = leases[0]!;
        expect(l).toMatchObject({ jobId: job.id, workerId: "w1", leaseUntil: clock.now() + 3000 });
        expect(typeof l.token).toBe("string");
        expect(l.token.length).toBeGreaterThanOrEqual(16);
        expect(l.job).toMatchObject({
          id: job.id, state: "active", attempt: 1, startedAt: clock.now(), workerId: "w1",
          leaseUntil: clock.now() + 3000, payload: { a: 1 },
        });
        expect(await claim({ q: 5 }, "w2")).toEqual([]);
        await store.release(l);
        const again = await claimOne("q", "w2");
        expect(again.token).not.toBe(l.token);
        expect(again.job.attempt).toBe(1);
      });

      it("orders by priority, then run_at, then id", async () => {
        const ids: Record<string, number> = {};
        const add = async (name: string, opts: { priority?: number; runAt?: number }) => {
          ids[name] = (await store.enqueue("q", name, opts)).job.id;
        };
        const t = clock.now();
        await add("low-early", { priority: 0, runAt: t - 3000 });
        await add("high-late", { priority: 5, runAt: t - 1000 });
        await add("high-early", { priority: 5, runAt: t - 2000 });
        await add("mid-a", { priority: 1, runAt: t - 500 });
        await add("mid-b", { priority: 1, runAt: t - 500 });
        const order: unknown[] = [];
        for (let i = 0; i < 5; i++) order.push((await claimOne()).job.payload);
        expect(order).toEqual(["high-early", "high-late", "mid-a", "mid-b", "low-early"]);
      });

      it("takes at most the per-queue max, and only from the queues asked", async () => {
        for (const q of ["a", "b", "c"]) for (let i = 0; i < 5; i++) await store.enqueue(q, i);
        const leases = await claim({ a: 2, b: 1, d: 4 });
        const byQueue = leases.reduce<Record<string, number>>((m, l) => ((m[l.job.queue] = (m[l.job.queue] ?? 0) + 1), m), {});
        expect(byQueue).toEqual({ a: 2, b: 1 });
        expect(await claim({ a: 0 })).toEqual([]);
        expect((await store.stats()).c!.waiting).toBe(5);
      });

      it("never hands one job to two workers", async () => {
        await store.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ queue: "q", payload: i })));
        const rounds = await Promise.all(
          Array.from({ length: 12 }, (_, i) => claim({ q: 40 }, `w${i}`)),
        );
        const ids = rounds.flat().map((l) => l.jobId);
        expect(ids.length).toBe(300);
        expect(new Set(ids).size).toBe(300);
        const stats = await store.stats();
        expect(stats.q).toMatchObject({ waiting: 0, active: 300 });
      });
    });

    describe("leases are fenced", () => {
      it("renew extends the lease; a stale token is LEASE_LOST", async () => {
        await store.enqueue("q", 1);
        const l = await claimOne();
        clock.advance(1000);
        expect(await store.renew(l, 5000)).toBe(clock.now() + 5000);
        expect((await must(l.jobId)).leaseUntil).toBe(clock.now() + 5000);
        const lost = await errorOf(() => store.renew({ jobId: l.jobId, token: "not-the-token" }, 5000));
        expect(lost.code).toBe("LEASE_LOST");
        await store.enqueue("q", 2);
        const l2 = await claimOne();
        expect(await store.renewMany([l, l2, { jobId: l2.jobId, token: "stale" }], 7000)).toEqual([l2.jobId]);
      });

      it("a worker whose lease was taken over cannot complete, fail, renew or release", async () => {
        const { job } = await store.enqueue("q", 1);
        const old = await claimOne("q", "frozen");
        clock.advance(LEASE + 1);
        expect(await store.reapExpired()).toBe(1);
        const fresh2 = await claimOne("q", "healthy");
        expect(fresh2.job.attempt).toBe(2);
        for (const act of [
          () => store.complete(old, { by: "frozen" }),
          () => store.fail(old, { message: "late" }),
          () => store.renew(old, LEASE),
          () => store.release(old),
        ]) {
          expect((await errorOf(act)).code).toBe("LEASE_LOST");
        }
        const [outcome] = await store.completeMany([{ lease: old, result: { by: "frozen" } }]);
        expect(outcome!.ok).toBe(false);
        await store.complete(fresh2, { by: "healthy" });
        const done = await must(job.id);
        expect(done).toMatchObject({ state: "completed", result: { by: "healthy" } });
        expect((await errorOf(() => store.complete(fresh2, { by: "again" }))).code).toBe("LEASE_LOST");
        expect((await must(job.id)).result).toEqual({ by: "healthy" });
      });

      it("after cancel, the running worker's completion is refused", async () => {
        const { job } = await store.enqueue("q", 1);
        const l = await claimOne();
        const c = await store.cancel(job.id);
        expect(c).toMatchObject({ state: "cancelled", workerId: null, finishedAt: clock.now() });
        expect(c.history.map((h) => h.outcome)).toEqual(["cancelled"]);
        expect((await errorOf(() => store.complete(l, 1))).code).toBe("LEASE_LOST");
        expect((await must(job.id)).state).toBe("cancelled");
      });
    });

    describe("complete", () => {
      it("stores the result and finish time", async () => {
        const { job } = await store.enqueue("q", 1);
        const l = await claimOne();
        clock.advance(40);
        expect(await store.complete(l, { ok: [1, 2] })).toEqual([]);
        expect(await must(job.id)).toMatchObject({
          state: "completed", result: { ok: [1, 2] }, finishedAt: clock.now(), workerId: null, leaseUntil: null, attempt: 1,
        });
      });

      it("creates next-stage jobs in the same transaction, linked to parent and root", async () => {
        const { job: idea } = await store.enqueue("outline", { idea: 1 });
        const l1 = await claimOne("outline");
        const [impl] = await store.complete(l1, { outline: 1 }, [{ queue: "implement", payload: { outline: 1 }, priority: 3 }]);
        expect(impl).toMatchObject({ queue: "implement", state: "waiting", payload: { outline: 1 }, priority: 3, parentId: idea.id, rootId: idea.id });
        const l2 = await claimOne("implement");
        const [qa] = await store.complete(l2, { code: 1 }, [{ queue: "qa", payload: { code: 1 } }]);
        expect(qa).toMatchObject({ parentId: impl!.id, rootId: idea.id });
        expect((await store.list({ rootId: idea.id, limit: 0 })).map((j) => j.id).sort((a, b) => a - b)).toEqual([idea.id, impl!.id, qa!.id]);
      });

      it("a refused completion creates no next-stage jobs; a too-large result writes nothing", async () => {
        await store.enqueue("q", 1);
        const l = await claimOne();
        await store.cancel(l.jobId);
        await errorOf(() => store.complete(l, 1, [{ queue: "next", payload: 1 }]));
        expect(await store.list({ queue: "next" })).toEqual([]);
        const small = await fresh({ clock, maxPayload: 32 });
        await small.enqueue("q", 1);
        const [sl] = await small.claim({ workerId: "w", queues: { q: 1 }, leaseMs: LEASE });
        expect((await errorOf(() => small.complete(sl!, "z".repeat(64)))).code).toBe("PAYLOAD_TOO_LARGE");
        expect((await small.get(sl!.jobId))!.state).toBe("active");
      });

      it("completeMany checks each item on its own", async () => {
        const small = await fresh({ clock, maxPayload: 32 });
        await small.enqueueMany([1, 2, 3, 4].map((n) => ({ queue: "q", payload: n })));
        const leases = await small.claim({ workerId: "w", queues: { q: 4 }, leaseMs: LEASE });
        expect(leases.length).toBe(4);
        const [a, b, c, d] = leases as [Lease, Lease, Lease, Lease];
        await small.cancel(b.jobId);
        const out = await small.completeMany([
          { lease: a, result: "a" },
          { lease: b, result: "b" },
          { lease: c, result: "c".repeat(64) },
          { lease: d, result: "d", next: [{ queue: "n", payload: "from-d" }] },
        ]);
        expect(out.map((o) => o.ok)).toEqual([true, false, false, true]);
        expect(out[1]!.ok === false && (out[1]!.error as VigilError).code).toBe("LEASE_LOST");
        expect(out[2]!.ok === false && (out[2]!.error as VigilError).code).toBe("PAYLOAD_TOO_LARGE");
        const made = out[3]!.ok ? out[3]!.next : [];
        expect(made.map((j) => [j.queue, j.payload, j.parentId])).toEqual([["n", "from-d", d.jobId]]);
        const states = await Promise.all(leases.map(async (l) => (await small.get(l.jobId))!.state));
        expect(states).toEqual(["completed", "cancelled", "active", "completed"]);
        expect((await small.get(a.jobId))!.result).toBe("a");
      });
    });

    describe("fail, release, cancel, retry", () => {
      it("fail with retryAt records the attempt and comes back when due", async () => {
        const { job } = await store.enqueue("q", 1);
        const l = await claimOne();
        const failed = await store.fail(l, { message: "boom", stack: "Error: boom\n    at x" }, { retryAt: clock.now() + 2000 });
        expect(failed).toMatchObject({ state: "failed", runAt: clock.now() + 2000, error: "boom", workerId: null, finishedAt: null });
        expect(failed.history).toEqual([
          expect.objectContaining({ attempt: 1, outcome: "error", message: "boom", stack: "Error: boom\n    at x", at: clock.now() }),
        ]);
        expect(await claim({ q: 1 })).toEqual([]);
        clock.advance(2000);
        const again = await claimOne();
        expect(again.jobId).toBe(job.id);
        expect(again.job.attempt).toBe(2);
        const dead = await store.fail(again, { message: "again", outcome: "timeout" });
        expect(dead).toMatchObject({ state: "dead", finishedAt: clock.now(), error: "again" });
        expect(dead.history.map((h) => [h.attempt, h.outcome, h.message])).toEqual([[1, "error", "boom"], [2, "timeout", "again"]]);
      });

      it("release gives the job back without counting the attempt", async () => {
        const { job } = await store.enqueue("q", 1);
        const l = await claimOne();
        await store.release(l);
        expect(await must(job.id)).toMatchObject({ state: "waiting", attempt: 0, workerId: null, leaseUntil: null, history: [], stalls: 0 });
      });

      it("cancel refuses completed jobs and unknown ids", async () => {
        const { job } = await store.enqueue("q", 1);
        await store.complete(await claimOne(), 1);
        expect((await errorOf(() => store.cancel(job.id))).code).toBe("INVALID_STATE");
        expect((await errorOf(() => store.cancel(job.id + 99))).code).toBe("NOT_FOUND");
        const { job: w } = await store.enqueue("q", 2);
        expect((await store.cancel(w.id)).state).toBe("cancelled");
        expect(await claim({ q: 5 })).toEqual([]);
      });

      it("retry puts dead, failed and cancelled jobs back with fresh attempts and kept history", async () => {
        const { job } = await store.enqueue("q", 1, { maxAttempts: 1 });
        await store.fail(await claimOne(), { message: "x" });
        clock.advance(10);
        const back = await store.retry(job.id);
        expect(back).toMatchObject({ state: "waiting", attempt: 0, finishedAt: null, runAt: clock.now() });
        expect(back.history.map((h) => h.message)).toEqual(["x"]);
        expect((await errorOf(() => store.retry(job.id))).code).toBe("INVALID_STATE");
        const l = await claimOne();
        expect(l.job.attempt).toBe(1);
        await store.fail(l, { message: "y" }, { retryAt: clock.now() + 60_000 });
        expect((await store.retry(job.id)).state).toBe("waiting");
        await store.cancel(job.id);
        expect((await store.retry(job.id)).state).toBe("waiting");
        expect((await errorOf(() => store.retry(job.id + 99))).code).toBe("NOT_FOUND");
      });
    });

    describe("stalls", () => {
      it("releaseWorker frees every lease of that worker at once, counting a stall", async () => {
        await store.enqueueMany([1, 2, 3, 4].map((n) => ({ queue: "q", payload: n })));
        const mine = await claim({ q: 3 }, "dead-worker");
        const other = await claimOne("q", "live-worker");
        expect(await store.releaseWorker("dead-worker", "worker exited (SIGKILL)")).toBe(3);
        for (const l of mine) {
          const j = await must(l.jobId);
          expect(j).toMatchObject({ state: "waiting", stalls: 1, attempt: 1, workerId: null, leaseUntil: null });
          expect(j.history).toEqual([expect.objectContaining({ attempt: 1, outcome: "stall", message: "worker exited (SIGKILL)" })]);
        }
        expect((await must(other.jobId)).state).toBe("active");
        expect(await store.releaseWorker("dead-worker")).toBe(0);
        const back = await claim({ q: 5 }, "w2");
        expect(back.map((l) => l.job.attempt).sort()).toEqual([2, 2, 2]);
      });

      it("a job is dead after maxStalls stalls or when its attempts are used up", async () => {
        const { job } = await store.enqueue("q", 1, { maxAttempts: 10 });
        const { job: once } = await store.enqueue("q", 2, { maxAttempts: 1 });
        for (let i = 1; i <= 2; i++) {
          await claim({ q: 5 }, "w");
          expect(await store.releaseWorker("w", "gone", { maxStalls: 2 })).toBe(i === 1 ? 2 : 1);
        }
        expect(await must(once.id)).toMatchObject({ state: "dead", stalls: 1, finishedAt: clock.now() });
        const j = await must(job.id);
        expect(j).toMatchObject({ state: "dead", stalls: 2, attempt: 2 });
        expect(j.history.map((h) => h.outcome)).toEqual(["stall", "stall"]);
      });

      it("reapExpired returns only leases that ran out", async () => {
        await store.enqueueMany([1, 2].map((n) => ({ queue: "q", payload: n })));
        const [short] = await claim({ q: 1 }, "w1", 1000);
        const [long] = await claim({ q: 1 }, "w2", 60_000);
        clock.advance(999);
        expect(await store.reapExpired()).toBe(0);
        clock.advance(2);
        expect(await store.reapExpired()).toBe(1);
        expect(await must(short!.jobId)).toMatchObject({ state: "waiting", stalls: 1 });
        expect((await must(long!.jobId)).state).toBe("active");
        const again = await claim({ q: 1 }, "w3", 1000);
        clock.advance(1001);
        expect(await store.reapExpired({ maxStalls: 2 })).toBe(1);
        expect((await must(again[0]!.jobId)).state).toBe("dead");
      });
    });

    describe("reads and upkeep", () => {
      it("stats count every state, and completed/dead survive pruning", async () => {
        await store.enqueueMany([1, 2, 3, 4, 5, 6].map((n) => ({ queue: "q", payload: n })));
        await store.enqueue("q", 7, { delayMs: 60_000 });
        await store.enqueue("other", 8);
        const [a, b, c, d] = await claim({ q: 4 });
        await store.complete(a!, 1);
        await store.complete(b!, 2);
        await store.fail(c!, { message: "x" });
        await store.fail(d!, { message: "y" }, { retryAt: clock.now() + 1000 });
        const [e] = await claim({ q: 1 });
        const { job: f } = await store.enqueue("q", 9);
        await store.cancel(f.id);
        const expected = { scheduled: 1, waiting: 1, active: 1, completed: 2, failed: 1, dead: 1, cancelled: 1 };
        expect((await store.stats()).q).toEqual(expected);
        expect((await store.stats()).other).toMatchObject({ waiting: 1 });
        clock.advance(10_000);
        expect(await store.prune({ completedBefore: clock.now(), deadBefore: clock.now(), batch: 1 })).toEqual({ completed: 2, dead: 2 });
        expect(await store.get(a!.jobId)).toBeNull();
        expect(await store.get(e!.jobId)).not.toBeNull();
        expect((await store.stats()).q).toEqual(expected);
        expect(await store.prune({ completedBefore: clock.now() })).toEqual({ completed: 0, dead: 0 });
      });

      it("prune keeps what finished after the cut-off", async () => {
        await store.enqueueMany([1, 2].map((n) => ({ queue: "q", payload: n })));
        await store.complete(await claimOne(), 1);
        clock.advance(5000);
        const cut = clock.now();
        await store.complete(await claimOne(), 2);
        expect(await store.prune({ completedBefore: cut })).toEqual({ completed: 1, dead: 0 });
        expect((await store.list({ state: "completed" })).map((j) => j.payload)).toEqual([2]);
      });

      it("oldestWaiting gives the age of the oldest due job per queue", async () => {
        await store.enqueue("a", 1);
        clock.advance(1500);
        await store.enqueue("a", 2);
        await store.enqueue("b", 3, { delayMs: 60_000 });
        clock.advance(500);
        expect(await store.oldestWaiting()).toEqual({ a: 2000 });
      });

      it("report gives throughput and durations since a time", async () => {
        const since = clock.now();
        await store.enqueueMany([1, 2, 3].map((n) => ({ queue: "q", payload: n })));
        for (const ms of [100, 300]) {
          const l = await claimOne();
          clock.advance(ms);
          await store.complete(l, null);
        }
        const l = await claimOne();
        await store.fail(l, { message: "bad" });
        const [r] = await store.report(since);
        expect(r).toMatchObject({ queue: "q", completed: 2, dead: 1, failedAttempts: 1 });
        expect(r!.p50Ms).toBe(100);
        expect(r!.p95Ms).toBe(300);
        expect(await store.report(clock.now() + 1)).toEqual([]);
      });

      it("list filters by queue and state, newest first, with limit and paging", async () => {
        const ids: number[] = [];
        for (let i = 0; i < 6; i++) ids.push((await store.enqueue(i % 2 ? "odd" : "even", i)).job.id);
        expect((await store.list()).map((j) => j.id)).toEqual([...ids].reverse());
        expect((await store.list({ queue: "odd" })).map((j) => j.payload)).toEqual([5, 3, 1]);
        expect((await store.list({ queue: "odd", limit: 2 })).map((j) => j.payload)).toEqual([5, 3]);
        expect((await store.list({ queue: "odd", beforeId: ids[3] })).map((j) => j.payload)).toEqual([1]);
        await claimOne("even");
        expect((await store.list({ state: "active" })).map((j) => j.payload)).toEqual([0]);
      });

      it("check passes on a healthy store and migrate has nothing left to do", async () => {
        expect(await store.check()).toBeNull();
        expect(await store.migrate()).toBe(0);
        expect(typeof store.location).toBe("string");
        expect(store.location.length).toBeGreaterThan(0);
      });
    });

    describe("triggers", () => {
      it("commitTrigger moves the cursor with its jobs and rejected records; a stale version writes nothing", async () => {
        expect(await store.getCursor("ideas")).toBeNull();
        const ok = await store.commitTrigger({
          trigger: "ideas", expectVersion: 0, cursor: { offset: 120, inode: 7 },
          jobs: [{ queue: "outline", payload: { line: "a" }, key: "ideas:0", source: { trigger: "ideas", offset: 0 } }],
          rejected: [{ trigger: "ideas", reason: "not JSON", sample: "{oops", offset: 60 }],
        });
        expect(ok).toBe(true);
        expect(await store.getCursor("ideas")).toEqual({ cursor: { offset: 120, inode: 7 }, version: 1 });
        const stale = await store.commitTrigger({
          trigger: "ideas", expectVersion: 0, cursor: { offset: 999 },
          jobs: [{ queue: "outline", payload: { line: "b" } }],
          rejected: [{ trigger: "ideas", reason: "x", sample: "y" }],
        });
        expect(stale).toBe(false);
        expect(await store.getCursor("ideas")).toEqual({ cursor: { offset: 120, inode: 7 }, version: 1 });
        const jobs = await store.list({ queue: "outline" });
        expect(jobs.map((j) => j.payload)).toEqual([{ line: "a" }]);
        expect(jobs[0]!.source).toEqual({ trigger: "ideas", offset: 0 });
        const rejected = await store.listRejected("ideas");
        expect(rejected).toEqual([expect.objectContaining({ trigger: "ideas", reason: "not JSON", sample: "{oops", offset: 60 })]);
        expect(await store.listRejected("other")).toEqual([]);
        expect(await store.commitTrigger({ trigger: "ideas", expectVersion: 1, cursor: { offset: 200 }, jobs: [] })).toBe(true);
        expect((await store.getCursor("ideas"))!.version).toBe(2);
      });
    });

    describe("incidents", () => {
      it("adds, updates, resolves and lists incidents", async () => {
        const a = await store.addIncident({ service: "workers:1", cause: "stall", detail: { lastJob: 4 } });
        expect(a).toMatchObject({ service: "workers:1", cause: "stall", detectedAt: clock.now(), recoveredAt: null, detail: { lastJob: 4 } });
        expect(typeof a.host).toBe("string");
        clock.advance(100);
        const b = await store.addIncident({ service: "workers:1", cause: "crash", host: "h2" });
        await store.addIncident({ service: "api", cause: "probe" });
        await store.updateIncident(a.id, { stack: ["spin"] });
        clock.advance(900);
        expect(await store.resolveIncidents("workers:1", undefined, a.id)).toBe(1);
        expect(await store.resolveIncidents("workers:1")).toBe(1);
        expect(await store.resolveIncidents("workers:1")).toBe(0);
        const list = await store.listIncidents({ service: "workers:1" });
        expect(list.map((i) => i.id)).toEqual([b.id, a.id]);
        expect(list[1]).toMatchObject({ recoveredAt: clock.now(), detail: { lastJob: 4, stack: ["spin"] } });
        expect(list[0]).toMatchObject({ host: "h2", recoveredAt: clock.now() });
        expect((await store.listIncidents()).length).toBe(3);
        expect((await store.listIncidents({ since: a.detectedAt + 1 })).length).toBe(2);
        expect((await store.listIncidents({ limit: 1 })).length).toBe(1);
      });
    });

    describe("leader locks", () => {
      it("one owner at a time, until the ttl runs out or it unlocks", async () => {
        expect(await store.tryLock("triggers", "a", 1000)).toBe(true);
        expect(await store.tryLock("triggers", "b", 1000)).toBe(false);
        clock.advance(800);
        expect(await store.tryLock("triggers", "a", 1000)).toBe(true);
        clock.advance(800);
        expect(await store.tryLock("triggers", "b", 1000)).toBe(false);
        clock.advance(201);
        expect(await store.tryLock("triggers", "b", 1000)).toBe(true);
        await store.unlock("triggers", "a");
        expect(await store.tryLock("triggers", "a", 1000)).toBe(false);
        await store.unlock("triggers", "b");
        expect(await store.tryLock("triggers", "a", 1000)).toBe(true);
        expect(await store.tryLock("sweeper", "b", 1000)).toBe(true);
      });
    });

    describe("subscribe", () => {
      it("wakes listeners when jobs become available", async () => {
        if (!store.caps.notify) return;
        const heard: string[] = [];
        const off = store.subscribe((q) => heard.push(q));
        await store.enqueue("wake-me", 1);
        await waitFor(() => heard.includes("wake-me"), "a wake-up for wake-me");
        off();
        const before = heard.length;
        await store.enqueue("after-off", 1);
        await store.enqueue("wake-me", 2); // a sync point: another store op after the first
        await new Promise((r) => setTimeout(r, 50));
        expect(heard.slice(before)).toEqual([]);
      });
    });
  });
}
