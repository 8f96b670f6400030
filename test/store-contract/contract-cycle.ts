/**
 * Store contract: the optional hot-path verbs. `completeAndClaim` (completions and the next
 * claim in one transaction) and `nextDueAt` (when an idle worker must look again). Each is
 * skipped only for an adapter that does not have it.
 */
import { describe, expect, it } from "vitest";
import type { VigilError } from "../../src/core/errors.js";
import type { Lease } from "../../src/core/types.js";
import { type ContractContext, LEASE, errorOf } from "./contract-context.js";

export function optionalCycleVerbs(t: ContractContext): void {
  describe("completeAndClaim (optional)", () => {
    it("completes each item on its own and claims in the same call", async (c) => {
      if (t.store.completeAndClaim === undefined) return c.skip();
      await t.store.enqueueMany([1, 2, 3, 4, 5].map((n) => ({ queue: "q", payload: n })));
      const [a, b] = (await t.claim({ q: 2 })) as [Lease, Lease];
      await t.store.cancel(b.jobId);
      t.clock.advance(25);
      const out = await t.store.completeAndClaim!(
        [
          { lease: a, result: { done: 1 }, next: [{ queue: "n", payload: "from-a" }] },
          { lease: b, result: "late" },
        ],
        { workerId: "w2", queues: { q: 2, n: 5 }, leaseMs: LEASE },
      );
      expect(out.outcomes.map((o) => o.ok)).toEqual([true, false]);
      expect(out.outcomes[1]!.ok === false && (out.outcomes[1]!.error as VigilError).code).toBe("LEASE_LOST");
      const made = out.outcomes[0]!.ok ? out.outcomes[0]!.next : [];
      expect(made.map((j) => [j.queue, j.payload, j.parentId])).toEqual([["n", "from-a", a.jobId]]);
      // The claim sees the next-stage job created in the same transaction.
      expect(out.leases.map((l) => [l.job.queue, l.job.payload, l.workerId])).toEqual([
        ["q", 3, "w2"], ["q", 4, "w2"], ["n", "from-a", "w2"],
      ]);
      expect(out.leases.every((l) => l.leaseUntil === t.clock.now() + LEASE && l.job.attempt === 1)).toBe(true);
      expect(new Set(out.leases.map((l) => l.token)).size).toBe(3);
      expect(await t.must(a.jobId)).toMatchObject({ state: "completed", result: { done: 1 }, finishedAt: t.clock.now(), workerId: "w1" });
      expect((await t.store.stats())["q"]).toMatchObject({ completed: 1, active: 2, waiting: 1, cancelled: 1 });
      // The new leases are fenced like any other.
      const [l3] = out.leases as [Lease];
      expect((await errorOf(() => t.store.complete({ jobId: l3.jobId, token: `${l3.token}x` }, 1))).code).toBe("LEASE_LOST");
      await t.store.complete(l3, "ok");
    });

    it("with no items it only claims; with no claim it only completes", async (c) => {
      if (t.store.completeAndClaim === undefined) return c.skip();
      await t.store.enqueueMany([1, 2].map((n) => ({ queue: "q", payload: n })));
      const first = await t.store.completeAndClaim!([], { workerId: "w", queues: { q: 1 }, leaseMs: LEASE });
      expect(first.outcomes).toEqual([]);
      expect(first.leases.map((l) => l.job.payload)).toEqual([1]);
      const second = await t.store.completeAndClaim!([{ lease: first.leases[0]!, result: 7 }], null);
      expect(second).toEqual({ outcomes: [{ ok: true, next: [] }], leases: [] });
      expect((await t.must(first.leases[0]!.jobId)).result).toBe(7);
      expect((await t.store.stats())["q"]).toMatchObject({ completed: 1, waiting: 1, active: 0 });
    });

    it("a result that cannot be stored fails alone and the claim still runs", async (c) => {
      if (t.store.completeAndClaim === undefined) return c.skip();
      const small = await t.fresh({ maxPayload: 32 });
      await small.enqueueMany([1, 2].map((n) => ({ queue: "q", payload: n })));
      const [a] = (await small.claim({ workerId: "w", queues: { q: 1 }, leaseMs: LEASE })) as [Lease];
      const out = await small.completeAndClaim!([{ lease: a, result: "z".repeat(64) }], { workerId: "w", queues: { q: 1 }, leaseMs: LEASE });
      expect(out.outcomes[0]!.ok === false && (out.outcomes[0]!.error as VigilError).code).toBe("PAYLOAD_TOO_LARGE");
      expect(out.leases.map((l) => l.job.payload)).toEqual([2]);
      expect((await small.get(a.jobId))!.state).toBe("active");
    });
  });

  describe("nextDueAt (optional)", () => {
    it("is the earliest scheduled or failed run time of the given queues", async (c) => {
      if (t.store.nextDueAt === undefined) return c.skip();
      const now = t.clock.now();
      expect(await t.store.nextDueAt!(["q", "r"])).toBeNull();
      await t.store.enqueue("q", 1);
      expect(await t.store.nextDueAt!(["q"])).toBeNull();
      await t.store.enqueue("q", 2, { delayMs: 5000 });
      await t.store.enqueue("r", 3, { delayMs: 2000 });
      await t.store.enqueue("other", 4, { delayMs: 100 });
      expect(await t.store.nextDueAt!(["q"])).toBe(now + 5000);
      expect(await t.store.nextDueAt!(["q", "r"])).toBe(now + 2000);
      const l = await t.claimOne("q");
      await t.store.fail(l, { message: "boom" }, { retryAt: now + 1000 });
      expect(await t.store.nextDueAt!(["q", "r"])).toBe(now + 1000);
      t.clock.advance(1000);
      const again = await t.claimOne("q");
      expect(again.jobId).toBe(l.jobId);
      expect(await t.store.nextDueAt!(["q", "r"])).toBe(now + 2000);
      expect(await t.store.nextDueAt!([])).toBeNull();
    });
  });
}
