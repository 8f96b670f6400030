/** Store contract: leases, completion, failure and stalls. */
import { describe, expect, it } from "vitest";
import type { VigilError } from "../../src/core/errors.js";
import type { Lease } from "../../src/core/types.js";
import { type ContractContext, LEASE, errorOf, waitFor } from "./contract-context.js";

export function leasesAndLifecycle(t: ContractContext): void {
  describe("leases are fenced", () => {
    it("renew extends the lease; a stale token is LEASE_LOST", async () => {
      await t.store.enqueue("q", 1);
      const l = await t.claimOne();
      t.clock.advance(1000);
      const before = await t.leaseNow();
      expect(await t.store.renew(l, 5000)).toBe(t.clock.now() + 5000);
      const after = await t.leaseNow();
      expect(await t.deadlineOf(l.jobId)).toBeGreaterThanOrEqual(before + 5000);
      expect(await t.deadlineOf(l.jobId)).toBeLessThanOrEqual(after + 5000);
      const lost = await errorOf(() => t.store.renew({ jobId: l.jobId, token: "not-the-token" }, 5000));
      expect(lost.code).toBe("LEASE_LOST");
      await t.store.enqueue("q", 2);
      const l2 = await t.claimOne();
      expect(await t.store.renewMany([l, l2, { jobId: l2.jobId, token: "stale" }], 7000)).toEqual([l2.jobId]);
    });

    it("a worker whose lease was taken over cannot complete, fail, renew or release", async () => {
      const { job } = await t.store.enqueue("q", 1);
      const old = (await t.claim({ q: 1 }, "frozen", 500))[0]!;
      await t.waitPast(await t.deadlineOf(job.id));
      expect(await t.store.reapExpired()).toBe(1);
      const fresh2 = await t.claimOne("q", "healthy");
      expect(fresh2.job.attempt).toBe(2);
      for (const act of [
        () => t.store.complete(old, { by: "frozen" }),
        () => t.store.fail(old, { message: "late" }),
        () => t.store.renew(old, LEASE),
        () => t.store.release(old),
      ]) {
        expect((await errorOf(act)).code).toBe("LEASE_LOST");
      }
      const [outcome] = await t.store.completeMany([{ lease: old, result: { by: "frozen" } }]);
      expect(outcome!.ok).toBe(false);
      await t.store.complete(fresh2, { by: "healthy" });
      const done = await t.must(job.id);
      expect(done).toMatchObject({ state: "completed", result: { by: "healthy" } });
      expect((await errorOf(() => t.store.complete(fresh2, { by: "again" }))).code).toBe("LEASE_LOST");
      expect((await t.must(job.id)).result).toEqual({ by: "healthy" });
    });

    it("after cancel, the running worker's completion is refused", async () => {
      const { job } = await t.store.enqueue("q", 1);
      const l = await t.claimOne();
      const c = await t.store.cancel(job.id);
      expect(c).toMatchObject({ state: "cancelled", workerId: null, finishedAt: t.clock.now() });
      expect(c.history.map((h) => h.outcome)).toEqual(["cancelled"]);
      expect((await errorOf(() => t.store.complete(l, 1))).code).toBe("LEASE_LOST");
      expect((await t.must(job.id)).state).toBe("cancelled");
    });
  });

  describe("complete", () => {
    it("stores the result, finish time and the worker that completed it", async () => {
      const { job } = await t.store.enqueue("q", 1);
      const l = await t.claimOne();
      t.clock.advance(40);
      expect(await t.store.complete(l, { ok: [1, 2] })).toEqual([]);
      expect(await t.must(job.id)).toMatchObject({
        state: "completed", result: { ok: [1, 2] }, finishedAt: t.clock.now(), workerId: "w1", leaseUntil: null, attempt: 1,
      });
    });

    it("creates next-stage jobs in the same transaction, linked to parent and root", async () => {
      const { job: idea } = await t.store.enqueue("outline", { idea: 1 });
      const l1 = await t.claimOne("outline");
      const [impl] = await t.store.complete(l1, { outline: 1 }, [{ queue: "implement", payload: { outline: 1 }, priority: 3 }]);
      expect(impl).toMatchObject({ queue: "implement", state: "waiting", payload: { outline: 1 }, priority: 3, parentId: idea.id, rootId: idea.id });
      const l2 = await t.claimOne("implement");
      const [qa] = await t.store.complete(l2, { code: 1 }, [{ queue: "qa", payload: { code: 1 } }]);
      expect(qa).toMatchObject({ parentId: impl!.id, rootId: idea.id });
      expect((await t.store.list({ rootId: idea.id, limit: 0 })).map((j) => j.id).sort((a, b) => a - b)).toEqual([idea.id, impl!.id, qa!.id]);
    });

    it("a refused completion creates no next-stage jobs; a too-large result writes nothing", async () => {
      await t.store.enqueue("q", 1);
      const l = await t.claimOne();
      await t.store.cancel(l.jobId);
      await errorOf(() => t.store.complete(l, 1, [{ queue: "next", payload: 1 }]));
      expect(await t.store.list({ queue: "next" })).toEqual([]);
      const small = await t.fresh({ maxPayload: 32 });
      await small.enqueue("q", 1);
      const [sl] = await small.claim({ workerId: "w", queues: { q: 1 }, leaseMs: LEASE });
      expect((await errorOf(() => small.complete(sl!, "z".repeat(64)))).code).toBe("PAYLOAD_TOO_LARGE");
      expect((await small.get(sl!.jobId))!.state).toBe("active");
    });

    it("completeMany checks each item on its own", async () => {
      const small = await t.fresh({ maxPayload: 32 });
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

    it("a next-stage job out of the store's limits fails its completion alone, naming the job and the limit", async () => {
      await t.store.enqueueMany([1, 2, 3].map((n) => ({ queue: "q", payload: n })));
      const [a, b, c] = (await t.store.claim({ workerId: "w", queues: { q: 3 }, leaseMs: LEASE })) as [Lease, Lease, Lease];
      const out = await t.store.completeMany([
        { lease: a, result: "a", next: [{ queue: "n", payload: "a" }] },
        { lease: b, result: "b", next: [{ queue: "n", payload: "b1" }, { queue: "n", payload: "b2", priority: 2 ** 31 }] },
        { lease: c, result: "c", next: [{ queue: "n", payload: "c", delayMs: 1e20 }] },
      ]);
      expect(out.map((o) => o.ok)).toEqual([true, false, false]);
      const errB = out[1]!.ok ? null : (out[1]!.error as VigilError);
      expect(errB?.code).toBe("BAD_INPUT");
      expect(errB?.message).toMatch(/^next-stage job 2 of 2 \(queue "n"\): priority 2147483648 is out of range/);
      const errC = out[2]!.ok ? null : (out[2]!.error as VigilError);
      expect(errC?.message).toMatch(/^the next-stage job \(queue "n"\): delayMs 100000000000000000000 is too long/);
      // Nothing of the refused completions was written; the good one was.
      expect((await t.store.list({ queue: "n", limit: 0 })).map((j) => j.payload)).toEqual(["a"]);
      expect((await t.store.get(b.jobId))!.state).toBe("active");
    });
  });

  describe("fail, release, cancel, retry", () => {
    it("fail with retryAt records the attempt and comes back when due", async () => {
      const { job } = await t.store.enqueue("q", 1);
      const l = await t.claimOne();
      const failed = await t.store.fail(l, { message: "boom", stack: "Error: boom\n    at x" }, { retryAt: t.clock.now() + 2000 });
      expect(failed).toMatchObject({ state: "failed", runAt: t.clock.now() + 2000, error: "boom", workerId: null, finishedAt: null });
      expect(failed.history).toEqual([
        expect.objectContaining({ attempt: 1, outcome: "error", message: "boom", stack: "Error: boom\n    at x", at: t.clock.now() }),
      ]);
      expect(await t.claim({ q: 1 })).toEqual([]);
      t.clock.advance(2000);
      const again = await t.claimOne();
      expect(again.jobId).toBe(job.id);
      expect(again.job.attempt).toBe(2);
      const dead = await t.store.fail(again, { message: "again", outcome: "timeout" });
      expect(dead).toMatchObject({ state: "dead", finishedAt: t.clock.now(), error: "again" });
      expect(dead.history.map((h) => [h.attempt, h.outcome, h.message])).toEqual([[1, "error", "boom"], [2, "timeout", "again"]]);
    });

    it("release gives the job back without counting the attempt", async () => {
      const { job } = await t.store.enqueue("q", 1);
      const l = await t.claimOne();
      await t.store.release(l);
      expect(await t.must(job.id)).toMatchObject({ state: "waiting", attempt: 0, workerId: null, leaseUntil: null, history: [], stalls: 0 });
    });

    it("releaseMany gives back every job whose lease holds, skips stale tokens, and wakes the queue", async () => {
      for (let i = 0; i < 3; i++) await t.store.enqueue("rm", i);
      const [a, b, c] = await t.claim({ rm: 3 });
      const heard: string[] = [];
      const off = t.store.subscribe((q) => heard.push(q));
      expect(await t.store.releaseMany([])).toEqual([]);
      const released = await t.store.releaseMany([a!, { jobId: b!.jobId, token: "stale" }, c!]);
      expect(released.sort((x, y) => x - y)).toEqual([a!.jobId, c!.jobId].sort((x, y) => x - y));
      for (const l of [a!, c!]) {
        expect(await t.must(l.jobId)).toMatchObject({ state: "waiting", attempt: 0, workerId: null, leaseUntil: null, history: [] });
      }
      // The stale token released nothing: b is still active under its real lease.
      expect(await t.must(b!.jobId)).toMatchObject({ state: "active", attempt: 1 });
      await t.store.complete(b!, { ok: true });
      if (t.store.caps.notify) await waitFor(() => heard.includes("rm"), "a wake-up for rm");
      off();
      // A lease taken over (released, then claimed again) is not released by its old holder.
      const again = await t.claim({ rm: 2 });
      expect(again.length).toBe(2);
      expect(await t.store.releaseMany([a!, c!])).toEqual([]);
      for (const l of again) expect((await t.must(l.jobId)).state).toBe("active");
    });

    it("cancel refuses completed jobs and unknown ids", async () => {
      const { job } = await t.store.enqueue("q", 1);
      await t.store.complete(await t.claimOne(), 1);
      expect((await errorOf(() => t.store.cancel(job.id))).code).toBe("INVALID_STATE");
      expect((await errorOf(() => t.store.cancel(job.id + 99))).code).toBe("NOT_FOUND");
      const { job: w } = await t.store.enqueue("q", 2);
      expect((await t.store.cancel(w.id)).state).toBe("cancelled");
      expect(await t.claim({ q: 5 })).toEqual([]);
    });

    it("retry puts dead, failed and cancelled jobs back with fresh attempts and kept history", async () => {
      const { job } = await t.store.enqueue("q", 1, { maxAttempts: 1 });
      await t.store.fail(await t.claimOne(), { message: "x" });
      t.clock.advance(10);
      const back = await t.store.retry(job.id);
      expect(back).toMatchObject({ state: "waiting", attempt: 0, finishedAt: null, runAt: t.clock.now() });
      expect(back.history.map((h) => h.message)).toEqual(["x"]);
      expect((await errorOf(() => t.store.retry(job.id))).code).toBe("INVALID_STATE");
      const l = await t.claimOne();
      expect(l.job.attempt).toBe(1);
      await t.store.fail(l, { message: "y" }, { retryAt: t.clock.now() + 60_000 });
      expect((await t.store.retry(job.id)).state).toBe("waiting");
      await t.store.cancel(job.id);
      expect((await t.store.retry(job.id)).state).toBe("waiting");
      expect((await errorOf(() => t.store.retry(job.id + 99))).code).toBe("NOT_FOUND");
    });
  });

  describe("stalls", () => {
    it("releaseWorker frees every lease of that worker at once, counting a stall", async () => {
      await t.store.enqueueMany([1, 2, 3, 4].map((n) => ({ queue: "q", payload: n })));
      const mine = await t.claim({ q: 3 }, "dead-worker");
      const other = await t.claimOne("q", "live-worker");
      expect(await t.store.releaseWorker("dead-worker", "worker exited (SIGKILL)")).toBe(3);
      for (const l of mine) {
        const j = await t.must(l.jobId);
        expect(j).toMatchObject({ state: "waiting", stalls: 1, attempt: 1, workerId: null, leaseUntil: null });
        expect(j.history).toEqual([expect.objectContaining({ attempt: 1, outcome: "stall", message: "worker exited (SIGKILL)" })]);
      }
      expect((await t.must(other.jobId)).state).toBe("active");
      expect(await t.store.releaseWorker("dead-worker")).toBe(0);
      const back = await t.claim({ q: 5 }, "w2");
      expect(back.map((l) => l.job.attempt).sort()).toEqual([2, 2, 2]);
    });

    it("a job is dead after maxStalls stalls or when its attempts are used up", async () => {
      const { job } = await t.store.enqueue("q", 1, { maxAttempts: 10 });
      const { job: once } = await t.store.enqueue("q", 2, { maxAttempts: 1 });
      for (let i = 1; i <= 2; i++) {
        await t.claim({ q: 5 }, "w");
        expect(await t.store.releaseWorker("w", "gone", { maxStalls: 2 })).toBe(i === 1 ? 2 : 1);
      }
      expect(await t.must(once.id)).toMatchObject({ state: "dead", stalls: 1, finishedAt: t.clock.now() });
      const j = await t.must(job.id);
      expect(j).toMatchObject({ state: "dead", stalls: 2, attempt: 2 });
      expect(j.history.map((h) => h.outcome)).toEqual(["stall", "stall"]);
    });

    it("a step of the wall clock is not time passing: a live lease does not look expired", async () => {
      await t.store.enqueue("q", 1);
      const l = (await t.claim({ q: 1 }, "w1", 1000))[0]!;
      // NTP or `date -s` moves the wall clock 15 s on; no time passes (ManualClock.set).
      t.clock.set(t.clock.now() + 15_000);
      expect(await t.store.reapExpired()).toBe(0);
      expect((await t.must(l.jobId)).state).toBe("active");
      // Time passing does run it out.
      t.clock.advance(1001);
      await t.waitPast(await t.deadlineOf(l.jobId));
      expect(await t.store.reapExpired()).toBe(1);
    });

    it("reapExpired returns only leases that ran out", async () => {
      await t.store.enqueueMany([1, 2].map((n) => ({ queue: "q", payload: n })));
      const [short] = await t.claim({ q: 1 }, "w1", 1000);
      const [long] = await t.claim({ q: 1 }, "w2", 60_000);
      // Not yet run out: 999 ms on, by a ManualClock; at once, by a server's clock.
      t.clock.advance(999);
      expect(await t.store.reapExpired()).toBe(0);
      await t.waitPast(await t.deadlineOf(short!.jobId));
      expect(await t.store.reapExpired()).toBe(1);
      expect(await t.must(short!.jobId)).toMatchObject({ state: "waiting", stalls: 1 });
      expect((await t.must(long!.jobId)).state).toBe("active");
      const again = await t.claim({ q: 1 }, "w3", 1000);
      await t.waitPast(await t.deadlineOf(again[0]!.jobId));
      expect(await t.store.reapExpired({ maxStalls: 2 })).toBe(1);
      expect((await t.must(again[0]!.jobId)).state).toBe("dead");
    });

    it("each queue's own maxStalls decides, on release and on reap: kept with the job at enqueue, else the call's, else the default", async () => {
      const s = await t.fresh({ queueMaxStalls: { slow: 5 } });
      const { job: slow } = await s.enqueue("slow", 1, { maxAttempts: 20 });
      const { job: plain } = await s.enqueue("plain", 2, { maxAttempts: 20 });
      const { job: told } = await s.enqueue("told", 3, { maxAttempts: 20 });
      const stallAll = async (i: number) => {
        const leases = await t.claim({ slow: 1, plain: 1, told: 1 }, "w", 1000, s);
        // A freeing call that gives `slow` a lower limit (another host's config, say) does not
        // cut short a job enqueued with its queue's 5.
        const limits = { maxStalls: 1, queueMaxStalls: { told: 4, slow: 2 } };
        if (i % 2 === 0) return s.releaseWorker("w", "gone", limits);
        const until = Math.max(...(await Promise.all(leases.map(async (l) => (await t.must(l.jobId, s)).leaseUntil ?? 0))));
        await t.waitPast(until);
        return s.reapExpired(limits);
      };
      // The call's own maxStalls (1) applies only to queues no limit names.
      expect(await stallAll(1)).toBe(3);
      expect(await t.must(plain.id, s)).toMatchObject({ state: "dead", stalls: 1 });
      for (let i = 2; i <= 4; i++) await stallAll(i);
      expect(await t.must(told.id, s)).toMatchObject({ state: "dead", stalls: 4 });
      expect(await t.must(slow.id, s)).toMatchObject({ state: "waiting", stalls: 4 });
      expect(await stallAll(5)).toBe(1);
      expect(await t.must(slow.id, s)).toMatchObject({ state: "dead", stalls: 5, attempt: 5 });
      // A limit given at enqueue is kept too, over the store's and the call's.
      const { job: own } = await t.store.enqueue("slow", 4, { maxAttempts: 20, maxStalls: 2 });
      for (let i = 1; i <= 2; i++) {
        await t.claim({ slow: 1 }, "w2");
        await t.store.releaseWorker("w2", "gone", { maxStalls: 9 });
      }
      expect(await t.must(own.id)).toMatchObject({ state: "dead", stalls: 2 });
    });
  });
}
