/**
 * Store contract: the counters status and report read instead of the jobs (per-queue
 * totals, per-minute and per-hour counts, failed attempts), retention per state, and the
 * folding of minutes into hours.
 */
import { describe, expect, it } from "vitest";
import { MINUTES_KEPT_MS } from "../../src/store/rollups.js";
import type { ContractContext } from "./contract-context.js";

const HOUR = 3_600_000;

export function countersAndRetention(t: ContractContext): void {
  describe("counters and retention", () => {
    it("stats and report count every way a job finishes, as the jobs themselves show", async () => {
      const since = t.clock.now();
      await t.store.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ queue: "q", payload: i })));
      await t.store.enqueueMany([1, 2].map((n) => ({ queue: "r", payload: n })));
      // Completions: one alone, two as a group, two (plus one on r) with a claim after them.
      await t.store.complete(await t.claimOne(), 1);
      const two = await t.claim({ q: 2 });
      await t.store.completeMany(two.map((lease) => ({ lease, result: 2 })));
      const more = [...(await t.claim({ q: 2 })), await t.claimOne("r")];
      if (t.store.completeAndClaim) {
        const r = await t.store.completeAndClaim(more.map((lease) => ({ lease, result: 3 })), { workerId: "w1", queues: { q: 0 }, leaseMs: 10_000 });
        expect(r.outcomes.every((o) => o.ok)).toBe(true);
      } else {
        await t.store.completeMany(more.map((lease) => ({ lease, result: 3 })));
      }
      // Deaths: a last failed attempt, a stall past the limit; a retry that stays failed.
      await t.store.fail(await t.claimOne(), { message: "bad" });
      await t.store.fail(await t.claimOne(), { message: "again" }, { retryAt: t.clock.now() + 60_000 });
      await t.claim({ q: 1 }, "gone");
      expect(await t.store.releaseWorker("gone", "worker died", { maxStalls: 1 })).toBe(1);
      // A running job cancelled: its attempt failed too.
      const running = await t.claimOne();
      await t.store.cancel(running.jobId);

      const stats = await t.store.stats();
      expect(stats.q).toEqual({ scheduled: 0, waiting: 1, active: 0, completed: 5, failed: 1, dead: 2, cancelled: 1 });
      expect(stats.r).toMatchObject({ completed: 1, waiting: 1 });
      // The counters agree with the jobs the store holds.
      const held = await t.store.list({ queue: "q", limit: 0 });
      for (const state of ["completed", "dead", "cancelled", "failed", "waiting"] as const) {
        expect(held.filter((j) => j.state === state).length, state).toBe(stats.q![state]);
      }
      const report = await t.store.report(since);
      expect(report.find((r) => r.queue === "q")).toMatchObject({ completed: 5, dead: 2, failedAttempts: 4 });
      expect(report.find((r) => r.queue === "r")).toMatchObject({ completed: 1, dead: 0, failedAttempts: 0 });
    });

    it("retention removes each state by its own age and keeps every total", async () => {
      await t.store.enqueueMany([1, 2, 3, 4].map((n) => ({ queue: "q", payload: n })));
      await t.store.complete(await t.claimOne(), null);
      await t.store.fail(await t.claimOne(), { message: "x" });
      const [c] = await t.claim({ q: 1 });
      await t.store.cancel(c!.jobId);
      const before = (await t.store.stats()).q;
      expect(before).toMatchObject({ completed: 1, dead: 1, cancelled: 1, waiting: 1 });
      t.clock.advance(10_000);
      const now = t.clock.now();
      // Dead jobs go, cancelled ones are younger than their own limit and stay.
      expect(await t.store.prune({ deadBefore: now, cancelledBefore: now - 20_000, batch: 1 })).toEqual({ completed: 0, dead: 1 });
      expect(await t.store.get(c!.jobId)).not.toBeNull();
      // Unset, cancelled jobs go with dead ones.
      expect(await t.store.prune({ completedBefore: now, deadBefore: now })).toEqual({ completed: 1, dead: 1 });
      expect(await t.store.get(c!.jobId)).toBeNull();
      expect(await t.store.list({ queue: "q", limit: 0 })).toHaveLength(1);
      expect((await t.store.stats()).q).toEqual(before);
    });

    it("folding minutes into hours keeps a report's counts; the folded hour a window starts in is left out", async () => {
      const start = Math.ceil(t.clock.now() / HOUR) * HOUR;
      t.clock.set(start + 60_000);
      await t.store.enqueueMany([1, 2, 3, 4].map((n) => ({ queue: "q", payload: n })));
      await t.store.complete(await t.claimOne(), null);
      await t.store.complete(await t.claimOne(), null);
      t.clock.advance(60_000);
      await t.store.fail(await t.claimOne(), { message: "x" });
      await t.store.fail(await t.claimOne(), { message: "y" }, { retryAt: start + 10 * 86_400_000 });
      t.clock.advance(3 * 86_400_000);
      const old = { queue: "q", completed: 2, dead: 1, failedAttempts: 2 };
      expect(await t.store.report(start)).toMatchObject([old]);

      const fold = { foldBefore: t.clock.now() - MINUTES_KEPT_MS, batch: 1 };
      expect(await t.store.prune(fold)).toEqual({ completed: 0, dead: 0 });
      expect(await t.store.report(start)).toMatchObject([old]);
      // Again: nothing left to fold, nothing counted twice.
      await t.store.prune(fold);
      expect(await t.store.report(start)).toMatchObject([old]);
      expect(await t.store.report(start + 30 * 60_000)).toEqual([]);
      // What came after the fold is counted from its minutes.
      await t.store.enqueue("q", 5);
      await t.store.complete(await t.claimOne(), null);
      expect(await t.store.report(start)).toMatchObject([{ ...old, completed: 3 }]);
      expect((await t.store.stats()).q).toMatchObject({ completed: 3, dead: 1, failed: 1 });
    });
  });
}
