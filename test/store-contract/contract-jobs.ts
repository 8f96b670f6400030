/** Store contract: enqueue and claim. */
import { describe, expect, it } from "vitest";
import type { EnqueueOptions } from "../../src/core/types.js";
import { type ContractContext, errorOf } from "./contract-context.js";

export function enqueueAndClaim(t: ContractContext): void {
  describe("enqueue", () => {
    it("stores a waiting job with defaults", async () => {
      const { job, created } = await t.store.enqueue("q", { n: 1, s: "é" });
      expect(created).toBe(true);
      expect(job).toMatchObject({
        queue: "q", state: "waiting", key: null, payload: { n: 1, s: "é" }, result: null, error: null,
        attempt: 0, maxAttempts: 5, stalls: 0, priority: 0, runAt: t.clock.now(), createdAt: t.clock.now(),
        startedAt: null, finishedAt: null, parentId: null, rootId: null, workerId: null, leaseUntil: null,
        history: [],
      });
      expect(await t.store.get(job.id)).toEqual(job);
      expect(await t.store.get(job.id + 1000)).toBeNull();
    });

    it("keeps options: priority, attempts, source", async () => {
      const source = { trigger: "ideas", path: "data/ideas.log", offset: 42 };
      const { job } = await t.store.enqueue("q", null, { priority: 7, maxAttempts: 2, source });
      expect(job).toMatchObject({ priority: 7, maxAttempts: 2, source, payload: null });
      const { job: d } = await (await t.fresh({ defaultAttempts: 9 })).enqueue("q", 1);
      expect(d.maxAttempts).toBe(9);
    });

    it("with a key returns the live job instead of a second one", async () => {
      const a = await t.store.enqueue("q", { v: 1 }, { key: "idea-42" });
      const b = await t.store.enqueue("q", { v: 2 }, { key: "idea-42" });
      expect(b.created).toBe(false);
      expect(b.job.id).toBe(a.job.id);
      expect(b.job.payload).toEqual({ v: 1 });
      expect((await t.store.list({ limit: 0 })).length).toBe(1);
    });

    it("with a key makes a new job once the old one is dead or cancelled", async () => {
      const a = await t.store.enqueue("q", 1, { key: "k" });
      await t.store.cancel(a.job.id);
      const b = await t.store.enqueue("q", 2, { key: "k" });
      expect(b.created).toBe(true);
      expect(b.job.id).not.toBe(a.job.id);
      const lease = await t.claimOne();
      await t.store.fail(lease, { message: "no" });
      const c = await t.store.enqueue("q", 3, { key: "k" });
      expect(c.created).toBe(true);
      expect(new Set([a.job.id, b.job.id, c.job.id]).size).toBe(3);
    });

    it("with a delay or runAt is scheduled, and claimable once due", async () => {
      const { job } = await t.store.enqueue("q", 1, { delayMs: 5000 });
      const { job: at } = await t.store.enqueue("q", 2, { runAt: t.clock.now() + 8000 });
      expect(job).toMatchObject({ state: "scheduled", runAt: t.clock.now() + 5000 });
      expect(at).toMatchObject({ state: "scheduled", runAt: t.clock.now() + 8000 });
      expect(await t.claim({ q: 10 })).toEqual([]);
      t.clock.advance(5000);
      expect((await t.claim({ q: 10 })).map((l) => l.jobId)).toEqual([job.id]);
      t.clock.advance(3000);
      expect((await t.claim({ q: 10 })).map((l) => l.jobId)).toEqual([at.id]);
    });

    it("enqueueMany is all or nothing", async () => {
      const ok = await t.store.enqueueMany([
        { queue: "a", payload: 1 },
        { queue: "b", payload: 2, key: "x" },
        { queue: "b", payload: 3, key: "x" },
      ]);
      expect(ok.map((r) => r.created)).toEqual([true, true, false]);
      expect(ok[2]!.job.id).toBe(ok[1]!.job.id);
      const bad = await errorOf(() =>
        t.store.enqueueMany([{ queue: "a", payload: 4 }, { queue: "no spaces", payload: 5 }]),
      );
      expect(bad.code).toBe("BAD_INPUT");
      expect((await t.store.list({ limit: 0 })).map((j) => j.payload).sort()).toEqual([1, 2]);
    });

    it("refuses bad queue names, unserialisable and oversized payloads, writing nothing", async () => {
      expect((await errorOf(() => t.store.enqueue("bad name", 1))).code).toBe("BAD_INPUT");
      expect((await errorOf(() => t.store.enqueue("", 1))).code).toBe("BAD_INPUT");
      expect((await errorOf(() => t.store.enqueue("q", { n: 10n }))).code).toBe("BAD_INPUT");
      const big = "x".repeat((1 << 20) + 1);
      const tooBig = await errorOf(() => t.store.enqueue("q", big));
      expect(tooBig.code).toBe("PAYLOAD_TOO_LARGE");
      expect(tooBig.message).toMatch(/limit of 1048576 bytes/);
      const small = await t.fresh({ maxPayload: 64 });
      expect((await errorOf(() => small.enqueue("q", "y".repeat(100)))).code).toBe("PAYLOAD_TOO_LARGE");
      expect(await small.list({ limit: 0 })).toEqual([]);
      expect(await t.store.list({ limit: 0 })).toEqual([]);
    });

    it("refuses what its columns cannot hold with BAD_INPUT naming the field and the limit, writing nothing", async () => {
      const refused = async (opts: EnqueueOptions, says: RegExp) => {
        const err = await errorOf(() => t.store.enqueue("q", {}, opts));
        expect(err.code).toBe("BAD_INPUT");
        expect(err.message).toMatch(says);
      };
      await refused({ priority: 2 ** 31 }, /priority 2147483648 is out of range: use a whole number from -2147483648 to 2147483647/);
      await refused({ priority: -(2 ** 31) - 1 }, /priority .* out of range/);
      await refused({ priority: Number.NaN }, /priority .* not a number/);
      await refused({ maxAttempts: 2 ** 31 }, /maxAttempts 2147483648 is out of range: use a whole number from 1 to 2147483647/);
      await refused({ delayMs: 1e20 }, /delayMs 100000000000000000000 is too long: at most 315360000000 ms \(10 years\)/);
      await refused({ delayMs: Number.POSITIVE_INFINITY }, /delayMs .* not a finite number/);
      await refused({ runAt: 1e20 }, /runAt .* out of range/);
      await refused({ key: "k".repeat(513) }, /key is 513 characters long: at most 512 characters/);
      const trigger = await errorOf(() =>
        t.store.commitTrigger({ trigger: "t", expectVersion: 0, cursor: 1, jobs: [{ queue: "q", payload: 1, priority: 2 ** 31 }] }),
      );
      expect(trigger.code).toBe("BAD_INPUT");
      expect(await t.store.getCursor("t")).toBeNull();
      expect(await t.store.list({ limit: 0 })).toEqual([]);
      // The limits themselves are accepted, and kept as given.
      const edge = await t.store.enqueue("q", {}, { priority: 2 ** 31 - 1, key: "k".repeat(512), delayMs: 315_360_000_000 });
      expect(edge.job).toMatchObject({ priority: 2 ** 31 - 1, state: "scheduled", runAt: t.clock.now() + 315_360_000_000 });
      const low = await t.store.enqueue("q", {}, { priority: -(2 ** 31) });
      expect((await t.store.get(low.job.id))!.priority).toBe(-(2 ** 31));
    });
  });

  describe("claim", () => {
    it("leases with a fresh token, counts the attempt and sets the lease", async () => {
      const { job } = await t.store.enqueue("q", { a: 1 });
      t.clock.advance(250);
      const before = await t.leaseNow();
      const leases = await t.claim({ q: 5 }, "w1", 3000);
      const after = await t.leaseNow();
      expect(leases.length).toBe(1);
      const l = leases[0]!;
      expect(l).toMatchObject({ jobId: job.id, workerId: "w1", leaseUntil: t.clock.now() + 3000 });
      expect(typeof l.token).toBe("string");
      expect(l.token.length).toBeGreaterThanOrEqual(16);
      expect(l.job).toMatchObject({ id: job.id, state: "active", attempt: 1, startedAt: t.clock.now(), workerId: "w1", payload: { a: 1 } });
      // The row's deadline is by the clock that judges leases (the server's, on PostgreSQL);
      // the lease's own, by the claimer's clock, is never later than it.
      expect(l.job.leaseUntil).toBeGreaterThanOrEqual(before + 3000);
      expect(l.job.leaseUntil).toBeLessThanOrEqual(after + 3000);
      expect(await t.claim({ q: 5 }, "w2")).toEqual([]);
      await t.store.release(l);
      const again = await t.claimOne("q", "w2");
      expect(again.token).not.toBe(l.token);
      expect(again.job.attempt).toBe(1);
    });

    it("orders by priority, then run_at, then id", async () => {
      const ids: Record<string, number> = {};
      const add = async (name: string, opts: { priority?: number; runAt?: number }) => {
        ids[name] = (await t.store.enqueue("q", name, opts)).job.id;
      };
      const now = t.clock.now();
      await add("low-early", { priority: 0, runAt: now - 3000 });
      await add("high-late", { priority: 5, runAt: now - 1000 });
      await add("high-early", { priority: 5, runAt: now - 2000 });
      await add("mid-a", { priority: 1, runAt: now - 500 });
      await add("mid-b", { priority: 1, runAt: now - 500 });
      const order: unknown[] = [];
      for (let i = 0; i < 5; i++) order.push((await t.claimOne()).job.payload);
      expect(order).toEqual(["high-early", "high-late", "mid-a", "mid-b", "low-early"]);
    });

    it("takes at most the per-queue max, and only from the queues asked", async () => {
      for (const q of ["a", "b", "c"]) for (let i = 0; i < 5; i++) await t.store.enqueue(q, i);
      const leases = await t.claim({ a: 2, b: 1, d: 4 });
      const byQueue = leases.reduce<Record<string, number>>((m, l) => ((m[l.job.queue] = (m[l.job.queue] ?? 0) + 1), m), {});
      expect(byQueue).toEqual({ a: 2, b: 1 });
      expect(await t.claim({ a: 0 })).toEqual([]);
      expect((await t.store.stats()).c!.waiting).toBe(5);
    });

    it("never hands one job to two workers", async () => {
      await t.store.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ queue: "q", payload: i })));
      const rounds = await Promise.all(
        Array.from({ length: 12 }, (_, i) => t.claim({ q: 40 }, `w${i}`)),
      );
      const ids = rounds.flat().map((l) => l.jobId);
      expect(ids.length).toBe(300);
      expect(new Set(ids).size).toBe(300);
      const stats = await t.store.stats();
      expect(stats.q).toMatchObject({ waiting: 0, active: 300 });
    });
  });
}
