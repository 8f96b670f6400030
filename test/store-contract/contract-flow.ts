/**
 * Store contract: flow control. A paused queue is never claimed and its state is stored;
 * `limit` bounds the active jobs of a queue over every claimer; `rate` bounds the starts in
 * every sliding window; `group` does both per value of a payload field. (PostgreSQL
 * measures rate windows on the database's clock, so where a window must pass the tests
 * wait for real time as well as moving the test clock.)
 */
import { describe, expect, it } from "vitest";
import { START_SLACK_MS } from "../../src/store/flow.js";
import type { ClaimRequest, QueueFlow } from "../../src/store/store.js";
import { type ContractContext, LEASE } from "./contract-context.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function flowControl(t: ContractContext): void {
  /** A claim with flow control; returns the leases and the holds reported. */
  async function flowClaim(queues: Record<string, number>, flow: Record<string, QueueFlow>, workerId = "w1") {
    const holds: { queue: string; until: number | null; reason: string }[] = [];
    const req: ClaimRequest = {
      workerId,
      queues,
      leaseMs: LEASE,
      flow,
      onHold: (queue, until, reason) => holds.push({ queue, until, reason }),
    };
    const leases = await t.store.claim(req);
    return { leases, holds };
  }

  describe("pause and resume", () => {
    it("a paused queue is not claimed, other queues are; resuming makes its jobs claimable again", async () => {
      await t.store.enqueueMany([1, 2].map((n) => ({ queue: "p", payload: n })));
      await t.store.enqueue("other", 3);
      const paused = await t.store.setPaused("p", true);
      expect(paused).toMatchObject({ name: "p", paused: true });
      expect(paused.pausedAt).toBeGreaterThan(0);
      const got = await t.claim({ p: 5, other: 5 });
      expect(got.map((l) => l.job.queue)).toEqual(["other"]);
      // The same with flow control on the paused queue (the other claim path).
      expect((await flowClaim({ p: 5 }, { p: { limit: 5 } })).leases).toEqual([]);
      expect((await t.store.queueStates()).map((q) => [q.name, q.paused])).toEqual([["p", true]]);
      const seen: string[] = [];
      const off = t.store.subscribe((q) => seen.push(q));
      try {
        await sleep(300); // listeners of some stores connect in the background
        expect(await t.store.setPaused("p", false)).toMatchObject({ paused: false, pausedAt: null });
        // Resuming wakes the workers waiting on the queue.
        const deadline = Date.now() + 10_000;
        while (!seen.includes("p") && Date.now() < deadline) await sleep(20);
        expect(seen).toContain("p");
      } finally {
        off();
      }
      expect((await t.claim({ p: 5 })).map((l) => l.job.payload)).toEqual([1, 2]);
    });

    it("a queue name that is not valid is refused", async () => {
      await expect(t.store.setPaused("bad name", true)).rejects.toMatchObject({ code: "BAD_INPUT" });
    });
  });

  describe("limit", () => {
    it("never leases more than `limit` jobs of a queue at once, over every claimer", async () => {
      await t.store.enqueueMany([1, 2, 3, 4, 5, 6].map((n) => ({ queue: "l", payload: n })));
      const flow = { l: { limit: 3 } };
      const a = await flowClaim({ l: 2 }, flow, "w1");
      const b = await flowClaim({ l: 5 }, flow, "w2");
      expect([a.leases.length, b.leases.length]).toEqual([2, 1]);
      expect(b.holds).toEqual([{ queue: "l", until: null, reason: "queue l: limit 3 reached (2 active)" }]);
      expect((await flowClaim({ l: 5 }, flow, "w3")).leases).toEqual([]);
      // A completion frees a slot.
      await t.store.complete(a.leases[0]!, "done");
      const c = await flowClaim({ l: 5 }, flow, "w3");
      expect(c.leases.map((l) => l.job.payload)).toEqual([4]);
      // Through completeAndClaim too: the completion frees the slot the claim then takes.
      if (t.store.completeAndClaim) {
        const out = await t.store.completeAndClaim([{ lease: c.leases[0]!, result: 1 }], {
          workerId: "w3",
          queues: { l: 5 },
          leaseMs: LEASE,
          flow,
        });
        expect(out.leases.map((l) => l.job.payload)).toEqual([5]);
      }
    });
  });

  describe("rate", () => {
    it("starts at most N jobs in any window of the interval, says until when it holds, and slides", async () => {
      await t.store.enqueueMany(Array.from({ length: 10 }, (_, n) => ({ queue: "r", payload: n })));
      const flow = { r: { rate: { count: 3, intervalMs: 400 } } };
      const first = await flowClaim({ r: 2 }, flow);
      expect(first.leases.length).toBe(2);
      expect(first.holds).toEqual([]);
      const second = await flowClaim({ r: 5 }, flow, "w2");
      expect(second.leases.length).toBe(1);
      expect(second.holds).toHaveLength(1);
      expect(second.holds[0]!.reason).toMatch(/^queue r: rate 3\/400ms reached, next start in \d+ms$/);
      expect(second.holds[0]!.until).toBeGreaterThan(0);
      expect((await flowClaim({ r: 5 }, flow, "w3")).leases).toEqual([]);
      // The window slides: after the interval (and the start slack) the budget is back, no more than N.
      t.clock.advance(400 + START_SLACK_MS + 1);
      await sleep(400 + START_SLACK_MS + 50);
      const later = await flowClaim({ r: 10 }, flow, "w4");
      expect(later.leases.length).toBe(3);
      const states = await t.store.queueStates();
      expect(states.find((q) => q.name === "r")?.heldReason).toMatch(/rate 3\/400ms reached/);
    });

    it("claimers racing each other start no more than N together", async () => {
      await t.store.enqueueMany(Array.from({ length: 100 }, (_, n) => ({ queue: "rr", payload: n })));
      const flow = { rr: { rate: { count: 12, intervalMs: 60_000 } } };
      expect((await flowClaim({ rr: 1 }, flow)).leases).toHaveLength(1);
      const racing = await Promise.all(Array.from({ length: 10 }, (_, i) => flowClaim({ rr: 5 }, flow, `w${i}`)));
      expect(racing.reduce((sum, r) => sum + r.leases.length, 0)).toBe(11);
      const ids = racing.flatMap((r) => r.leases.map((l) => l.jobId));
      expect(new Set(ids).size).toBe(ids.length);
      expect(racing.filter((r) => r.holds.length > 0).length).toBeGreaterThan(0);
    });

    it("claimers racing each other through completeAndClaim start no more than N together, and complete", async (c) => {
      if (t.store.completeAndClaim === undefined) return c.skip();
      await t.store.enqueueMany(Array.from({ length: 100 }, (_, n) => ({ queue: "rc", payload: n })));
      await t.store.enqueueMany(Array.from({ length: 10 }, (_, n) => ({ queue: "d", payload: n })));
      const done = await t.claim({ d: 10 });
      const flow = { rc: { rate: { count: 12, intervalMs: 60_000 } } };
      expect((await flowClaim({ rc: 1 }, flow)).leases).toHaveLength(1);
      const racing = await Promise.all(
        done.map((lease, i) =>
          t.store.completeAndClaim!([{ lease, result: i }], { workerId: `w${i}`, queues: { rc: 5 }, leaseMs: LEASE, flow }),
        ),
      );
      expect(racing.flatMap((r) => r.outcomes)).toEqual(done.map(() => ({ ok: true, next: [] })));
      expect(racing.reduce((sum, r) => sum + r.leases.length, 0)).toBe(11);
      const ids = racing.flatMap((r) => r.leases.map((l) => l.jobId));
      expect(new Set(ids).size).toBe(ids.length);
      expect((await t.store.stats())["d"]?.completed).toBe(10);
    });

    it("a claim of a rate-limited queue beside queues without flow control serves each as its own (paused left out)", async () => {
      await t.store.enqueueMany(Array.from({ length: 6 }, (_, n) => ({ queue: "rm", payload: n })));
      await t.store.enqueueMany([1, 2, 3].map((n) => ({ queue: "free", payload: n })));
      await t.store.enqueueMany([1, 2].map((n) => ({ queue: "stopped", payload: n })));
      await t.store.setPaused("stopped", true);
      const flow = { rm: { rate: { count: 2, intervalMs: 60_000 } } };
      const first = await flowClaim({ rm: 1 }, flow);
      expect(first.leases).toHaveLength(1);
      const queues = { rm: 5, free: 5, stopped: 5 };
      const req = { workerId: "w2", queues, leaseMs: LEASE, flow };
      const got = t.store.completeAndClaim
        ? (await t.store.completeAndClaim([{ lease: first.leases[0]!, result: 1 }], req)).leases
        : await t.store.claim(req);
      expect(got.map((l) => l.job.queue).sort()).toEqual(["free", "free", "free", "rm"]);
      expect((await flowClaim({ rm: 5, free: 5 }, flow, "w3")).leases).toEqual([]);
    });
  });

  describe("rateLimited (a handler's ctx.rateLimited)", () => {
    it("gives the job back uncounted and holds its whole queue until the hold ends", async () => {
      await t.store.enqueueMany([1, 2, 3].map((n) => ({ queue: "h", payload: n })));
      await t.store.enqueue("free", 0);
      const [a] = await t.claim({ h: 1 });
      const until = await t.store.rateLimited(a!, 300, { reason: "HTTP 429" });
      expect(until).toBeGreaterThan(0);
      expect(await t.must(a!.jobId)).toMatchObject({ state: "waiting", attempt: 0, workerId: null });
      // Neither claim path takes the queue's other jobs; other queues flow.
      expect((await t.claim({ h: 5, free: 5 })).map((l) => l.job.queue)).toEqual(["free"]);
      const held = await flowClaim({ h: 5 }, { h: { limit: 10 } });
      expect(held.leases).toEqual([]);
      expect(held.holds[0]!.reason).toBe("queue h: rate limited by its handler for 300ms (HTTP 429)");
      expect((await t.store.queueStates()).find((q) => q.name === "h")?.heldReason).toContain("rate limited by its handler");
      // A stale token changes nothing.
      await expect(t.store.rateLimited({ jobId: a!.jobId, token: "stale" }, 300)).rejects.toMatchObject({ code: "LEASE_LOST" });
      t.clock.advance(301);
      await sleep(350);
      expect((await t.claim({ h: 5 })).map((l) => l.job.payload).sort()).toEqual([1, 2, 3]);
    });

    it("with a group holds only that group of the queue", async () => {
      const jobs = ["a", "a", "b"].map((customer, i) => ({ queue: "hg", payload: { customer, i } }));
      await t.store.enqueueMany(jobs);
      const flow = { hg: { group: { by: "customer", limit: 10 } } };
      const first = await flowClaim({ hg: 1 }, flow);
      await t.store.rateLimited(first.leases[0]!, 60_000, { group: "a" });
      const next = await flowClaim({ hg: 10 }, flow);
      expect(next.leases.map((l) => (l.job.payload as { customer: string }).customer)).toEqual(["b"]);
      expect(next.holds[0]!.reason).toBe("queue hg group a: rate limited by its handler for 1m 0s");
    });
  });

  describe("onDuplicate: replace", () => {
    it("puts the new payload on a job holding the key that has not started, never on a running one", async () => {
      const first = await t.store.enqueue("d", { v: 1 }, { key: "k" });
      const kept = await t.store.enqueue("d", { v: 2 }, { key: "k" });
      expect([kept.created, kept.replaced, kept.job.payload]).toEqual([false, undefined, { v: 1 }]);
      const replaced = await t.store.enqueue("d", { v: 3 }, { key: "k", onDuplicate: "replace" });
      expect(replaced).toMatchObject({ created: false, replaced: true, job: { id: first.job.id, payload: { v: 3 } } });
      expect((await t.must(first.job.id)).payload).toEqual({ v: 3 });
      // In a batch too, and for a scheduled job.
      await t.store.enqueue("d", { v: 1 }, { key: "later", delayMs: 60_000 });
      const many = await t.store.enqueueMany([
        { queue: "d", payload: { v: 4 }, key: "k", onDuplicate: "replace" },
        { queue: "d", payload: { v: 5 }, key: "later", onDuplicate: "replace" },
      ]);
      expect(many.map((r) => [r.created, r.replaced, r.job.payload])).toEqual([
        [false, true, { v: 4 }],
        [false, true, { v: 5 }],
      ]);
      // Once it runs, the payload it started with stays.
      const [lease] = await t.claim({ d: 1 });
      expect(lease!.job.payload).toEqual({ v: 4 });
      const late = await t.store.enqueue("d", { v: 6 }, { key: "k", onDuplicate: "replace" });
      expect([late.created, late.replaced, late.job.payload]).toEqual([false, undefined, { v: 4 }]);
      expect((await t.must(first.job.id)).payload).toEqual({ v: 4 });
    });

    it("a queue's onDuplicate (queueOnDuplicate) applies to every enqueue into it: one, many, a stage's hand-off", async () => {
      const store = await t.fresh({ queueOnDuplicate: { d: "replace", k: "keep" } });
      const first = await store.enqueue("d", { v: 1 }, { key: "k1" });
      expect(await store.enqueue("d", { v: 2 }, { key: "k1" })).toMatchObject({ created: false, replaced: true, job: { id: first.job.id } });
      const many = await store.enqueueMany([
        { queue: "d", payload: { v: 3 }, key: "k1" },
        { queue: "k", payload: { v: 1 }, key: "k2" },
        { queue: "k", payload: { v: 2 }, key: "k2" },
      ]);
      expect(many.map((r) => [r.created, r.replaced, r.job.payload])).toEqual([
        [false, true, { v: 3 }],
        [true, undefined, { v: 1 }],
        [false, undefined, { v: 1 }],
      ]);
      // An item's own onDuplicate wins over its queue's.
      expect((await store.enqueue("d", { v: 4 }, { key: "k1", onDuplicate: "keep" })).job.payload).toEqual({ v: 3 });
      // A stage handing on a keyed job to d replaces the waiting one's payload.
      await store.enqueue("s", { v: 0 });
      const [lease] = await store.claim({ workerId: "w1", queues: { s: 1 }, leaseMs: LEASE });
      await store.complete(lease!, null, [{ queue: "d", payload: { v: 5 }, key: "k1" }]);
      expect((await t.must(first.job.id, store)).payload).toEqual({ v: 5 });
    });
  });

  describe("group", () => {
    it("holds each group's limit while other groups' jobs flow", async () => {
      const jobs = ["a", "a", "a", "a", "b", "b", "c"].map((customer, i) => ({ queue: "g", payload: { customer, i } }));
      await t.store.enqueueMany(jobs);
      await t.store.enqueue("g", { i: 99 }); // no customer: its own group
      const flow = { g: { group: { by: "customer", limit: 2 } } };
      const first = await flowClaim({ g: 10 }, flow);
      const by = (ls: typeof first.leases) => ls.map((l) => (l.job.payload as { customer?: string }).customer ?? "-");
      expect(by(first.leases)).toEqual(["a", "a", "b", "b", "c", "-"]);
      expect(first.holds[0]!.reason).toBe("queue g group customer=a: limit 2 reached (2 active)");
      const second = await flowClaim({ g: 10 }, flow);
      expect(second.leases).toEqual([]);
      await t.store.complete(first.leases[0]!, null);
      expect(by((await flowClaim({ g: 10 }, flow)).leases)).toEqual(["a"]);
    });

    it("a full group's jobs, however many wait ahead, do not keep another group's job from starting", async () => {
      // The group value is kept with each job (queueGroupBy); a claim leaves full groups out
      // of its scan, which reads at most 200 candidates for one job asked for.
      const store = await t.fresh({ queueGroupBy: { big: "customer" } });
      await store.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ queue: "big", payload: { customer: "a", i } })));
      await store.enqueue("big", { customer: "b" });
      const flow = { big: { group: { by: "customer", limit: 1 } } };
      const claim = (n: number) => store.claim({ workerId: "w1", queues: { big: n }, leaseMs: LEASE, flow, onHold: () => {} });
      expect((await claim(1)).map((l) => (l.job.payload as { customer: string }).customer)).toEqual(["a"]);
      expect((await claim(10)).map((l) => (l.job.payload as { customer: string }).customer)).toEqual(["b"]);
      expect(await claim(10)).toEqual([]);
    });

    it("holds each group's rate, and the queue's own rate over all groups", async () => {
      const jobs = ["a", "a", "a", "b", "b", "b"].map((customer, i) => ({ queue: "gr", payload: { customer, i } }));
      await t.store.enqueueMany(jobs);
      const flow = { gr: { rate: { count: 3, intervalMs: 60_000 }, group: { by: "customer", rate: { count: 2, intervalMs: 60_000 } } } };
      const first = await flowClaim({ gr: 10 }, flow);
      expect(first.leases.map((l) => (l.job.payload as { customer: string }).customer)).toEqual(["a", "a", "b"]);
      expect((await flowClaim({ gr: 10 }, flow)).leases).toEqual([]);
    });
  });
}
