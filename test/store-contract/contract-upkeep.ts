/** Store contract: reads, upkeep, triggers, incidents, locks and wake-ups. */
import { describe, expect, it } from "vitest";
import { type ContractContext, waitFor } from "./contract-context.js";

export function upkeepAndSideTables(t: ContractContext): void {
  describe("reads and upkeep", () => {
    it("list with preview cuts long payloads and results to the start of their JSON text, and flags them", async () => {
      const big = { text: "x".repeat(5000) };
      const { job: long } = await t.store.enqueue("q", big);
      const { job: short } = await t.store.enqueue("q", { n: 1 });
      const [a, b] = await t.claim({ q: 2 });
      await t.store.complete(a!, { out: "y".repeat(3000) });
      await t.store.complete(b!, 7);
      const page = await t.store.list({ queue: "q", preview: 100 });
      const byId = new Map(page.map((j) => [j.id, j]));
      expect(byId.get(long.id)).toMatchObject({
        payload: JSON.stringify(big).slice(0, 100),
        payloadTruncated: true,
        result: JSON.stringify({ out: "y".repeat(3000) }).slice(0, 100),
        resultTruncated: true,
      });
      const s = byId.get(short.id)!;
      expect(s).toMatchObject({ payload: { n: 1 }, result: 7 });
      expect("payloadTruncated" in s || "resultTruncated" in s).toBe(false);
      // Without preview, and from get, the whole.
      expect((await t.store.list({ queue: "q" })).find((j) => j.id === long.id)!.payload).toEqual(big);
      expect((await t.store.get(long.id))!.payload).toEqual(big);
      expect((await t.store.list({ queue: "q", preview: 0 })).every((j) => j.payloadTruncated)).toBe(true);
    });

    it("countRounds counts a pipeline run's jobs on a queue, the root included, no further than asked", async () => {
      const { job: root } = await t.store.enqueue("impl", 0);
      let parent = (await t.claim({ impl: 1 }))[0]!;
      for (let i = 1; i <= 5; i++) {
        const [made] = await t.store.complete(parent, i, [{ queue: i % 2 ? "qa" : "impl", payload: i }]);
        parent = (await t.claim({ [made!.queue]: 1 }))[0]!;
      }
      // impl: the root, 2, 4; qa: 1, 3, 5.
      expect(await t.store.countRounds(root.id, "impl", 10)).toBe(3);
      expect(await t.store.countRounds(root.id, "qa", 10)).toBe(3);
      expect(await t.store.countRounds(root.id, "qa", 2)).toBe(2);
      expect(await t.store.countRounds(root.id, "other", 10)).toBe(0);
      expect(await t.store.countRounds(root.id + 999, "impl", 10)).toBe(0);
    });

    it("stats count every state, and completed/dead survive pruning", async () => {
      await t.store.enqueueMany([1, 2, 3, 4, 5, 6].map((n) => ({ queue: "q", payload: n })));
      await t.store.enqueue("q", 7, { delayMs: 60_000 });
      await t.store.enqueue("other", 8);
      const [a, b, c, d] = await t.claim({ q: 4 });
      await t.store.complete(a!, 1);
      await t.store.complete(b!, 2);
      await t.store.fail(c!, { message: "x" });
      await t.store.fail(d!, { message: "y" }, { retryAt: t.clock.now() + 1000 });
      const [e] = await t.claim({ q: 1 });
      const { job: f } = await t.store.enqueue("q", 9);
      await t.store.cancel(f.id);
      const expected = { scheduled: 1, waiting: 1, active: 1, completed: 2, failed: 1, dead: 1, cancelled: 1 };
      expect((await t.store.stats()).q).toEqual(expected);
      expect((await t.store.stats()).other).toMatchObject({ waiting: 1 });
      t.clock.advance(10_000);
      expect(await t.store.prune({ completedBefore: t.clock.now(), deadBefore: t.clock.now(), batch: 1 })).toEqual({ completed: 2, dead: 2 });
      expect(await t.store.get(a!.jobId)).toBeNull();
      expect(await t.store.get(e!.jobId)).not.toBeNull();
      expect((await t.store.stats()).q).toEqual(expected);
      expect(await t.store.prune({ completedBefore: t.clock.now() })).toEqual({ completed: 0, dead: 0 });
    });

    it("prune keeps what finished after the cut-off", async () => {
      await t.store.enqueueMany([1, 2].map((n) => ({ queue: "q", payload: n })));
      await t.store.complete(await t.claimOne(), 1);
      t.clock.advance(5000);
      const cut = t.clock.now();
      await t.store.complete(await t.claimOne(), 2);
      expect(await t.store.prune({ completedBefore: cut })).toEqual({ completed: 1, dead: 0 });
      expect((await t.store.list({ state: "completed" })).map((j) => j.payload)).toEqual([2]);
    });

    it("oldestWaiting gives the age of the oldest due job per queue", async () => {
      await t.store.enqueue("a", 1);
      t.clock.advance(1500);
      await t.store.enqueue("a", 2);
      await t.store.enqueue("b", 3, { delayMs: 60_000 });
      t.clock.advance(500);
      expect(await t.store.oldestWaiting()).toEqual({ a: 2000 });
    });

    it("oldestWaiting reads every priority of every queue and the due scheduled jobs", async () => {
      await t.store.enqueue("a", 1, { priority: 0 });
      t.clock.advance(1000);
      await t.store.enqueue("a", 2, { priority: 5 });
      await t.store.enqueue("b", 3, { priority: 9 });
      await t.store.enqueue("c", 4, { delayMs: 60_000 });
      await t.store.enqueue("d", 5, { delayMs: 500 });
      t.clock.advance(1000);
      // a: the older job has the lower priority; c: only a job not yet due; d: a due scheduled one.
      expect(await t.store.oldestWaiting()).toEqual({ a: 2000, b: 1000, d: 500 });
      // A waiting job whose run_at is ahead of the clock (set back) counts as just due.
      t.clock.set(t.clock.now() - 5000);
      expect(await t.store.oldestWaiting()).toEqual({ a: 0, b: 0 });
    });

    it("report gives throughput and durations since a time", async () => {
      const since = t.clock.now();
      await t.store.enqueueMany([1, 2, 3].map((n) => ({ queue: "q", payload: n })));
      for (const ms of [100, 300]) {
        const l = await t.claimOne();
        t.clock.advance(ms);
        await t.store.complete(l, null);
      }
      const l = await t.claimOne();
      await t.store.fail(l, { message: "bad" });
      const [r] = await t.store.report(since);
      expect(r).toMatchObject({ queue: "q", completed: 2, dead: 1, failedAttempts: 1 });
      expect(r!.p50Ms).toBe(100);
      expect(r!.p95Ms).toBe(300);
      expect(await t.store.report(t.clock.now() + 1)).toEqual([]);
    });

    it("list filters by queue and state, newest first, with limit and paging", async () => {
      const ids: number[] = [];
      for (let i = 0; i < 6; i++) ids.push((await t.store.enqueue(i % 2 ? "odd" : "even", i)).job.id);
      expect((await t.store.list()).map((j) => j.id)).toEqual([...ids].reverse());
      expect((await t.store.list({ queue: "odd" })).map((j) => j.payload)).toEqual([5, 3, 1]);
      expect((await t.store.list({ queue: "odd", limit: 2 })).map((j) => j.payload)).toEqual([5, 3]);
      expect((await t.store.list({ queue: "odd", beforeId: ids[3] })).map((j) => j.payload)).toEqual([1]);
      await t.claimOne("even");
      expect((await t.store.list({ state: "active" })).map((j) => j.payload)).toEqual([0]);
    });

    it("check passes on a healthy store and migrate has nothing left to do", async () => {
      expect(await t.store.check()).toBeNull();
      expect(await t.store.migrate()).toBe(0);
      expect(typeof t.store.location).toBe("string");
      expect(t.store.location.length).toBeGreaterThan(0);
    });
  });

  describe("triggers", () => {
    it("commitTrigger moves the cursor with its jobs and rejected records; a stale version writes nothing", async () => {
      expect(await t.store.getCursor("ideas")).toBeNull();
      const ok = await t.store.commitTrigger({
        trigger: "ideas", expectVersion: 0, cursor: { offset: 120, inode: 7 },
        jobs: [{ queue: "outline", payload: { line: "a" }, key: "ideas:0", source: { trigger: "ideas", offset: 0 } }],
        rejected: [{ trigger: "ideas", reason: "not JSON", sample: "{oops", offset: 60 }],
      });
      expect(ok).toBe(true);
      expect(await t.store.getCursor("ideas")).toEqual({ cursor: { offset: 120, inode: 7 }, version: 1 });
      const stale = await t.store.commitTrigger({
        trigger: "ideas", expectVersion: 0, cursor: { offset: 999 },
        jobs: [{ queue: "outline", payload: { line: "b" } }],
        rejected: [{ trigger: "ideas", reason: "x", sample: "y" }],
      });
      expect(stale).toBe(false);
      expect(await t.store.getCursor("ideas")).toEqual({ cursor: { offset: 120, inode: 7 }, version: 1 });
      const jobs = await t.store.list({ queue: "outline" });
      expect(jobs.map((j) => j.payload)).toEqual([{ line: "a" }]);
      expect(jobs[0]!.source).toEqual({ trigger: "ideas", offset: 0 });
      const rejected = await t.store.listRejected("ideas");
      expect(rejected).toEqual([expect.objectContaining({ trigger: "ideas", reason: "not JSON", sample: "{oops", offset: 60 })]);
      expect(await t.store.listRejected("other")).toEqual([]);
      expect(await t.store.commitTrigger({ trigger: "ideas", expectVersion: 1, cursor: { offset: 200 }, jobs: [] })).toBe(true);
      expect((await t.store.getCursor("ideas"))!.version).toBe(2);
    });
  });

  describe("incidents", () => {
    it("adds, updates, resolves and lists incidents", async () => {
      const a = await t.store.addIncident({ service: "workers:1", cause: "stall", detail: { lastJob: 4 } });
      expect(a).toMatchObject({ service: "workers:1", cause: "stall", detectedAt: t.clock.now(), recoveredAt: null, detail: { lastJob: 4 } });
      expect(typeof a.host).toBe("string");
      t.clock.advance(100);
      const b = await t.store.addIncident({ service: "workers:1", cause: "crash", host: "h2" });
      await t.store.addIncident({ service: "api", cause: "probe" });
      await t.store.updateIncident(a.id, { stack: ["spin"] });
      t.clock.advance(900);
      // Service names repeat across hosts: a host resolves only its own.
      expect(a.host).not.toBe("h2");
      expect(await t.store.resolveIncidents("workers:1", { host: "h2", id: a.id })).toBe(0);
      expect(await t.store.resolveIncidents("workers:1", { id: a.id })).toBe(1);
      expect(await t.store.resolveIncidents("workers:1", { host: "h1" })).toBe(0);
      expect(await t.store.resolveIncidents("workers:1", { host: "h2" })).toBe(1);
      expect(await t.store.resolveIncidents("workers:1")).toBe(0);
      const list = await t.store.listIncidents({ service: "workers:1" });
      expect(list.map((i) => i.id)).toEqual([b.id, a.id]);
      expect(list[1]).toMatchObject({ recoveredAt: t.clock.now(), detail: { lastJob: 4, stack: ["spin"] } });
      expect(list[0]).toMatchObject({ host: "h2", recoveredAt: t.clock.now() });
      expect((await t.store.listIncidents()).length).toBe(3);
      expect((await t.store.listIncidents({ since: a.detectedAt + 1 })).length).toBe(2);
      expect((await t.store.listIncidents({ limit: 1 })).length).toBe(1);
    });

    it("lists a service's incidents with its processes' (workers: workers:1, workers:2), newest first, before the limit", async () => {
      const ids: Record<string, number> = {};
      for (const service of ["workers:1", "workers", "workers:12", "workers-b", "workers-b:1", "work", "api:1"]) {
        ids[service] = (await t.store.addIncident({ service, cause: "crash" })).id;
        t.clock.advance(10);
      }
      // Two newer ones of other services: a limit counts only the service's own.
      await t.store.addIncident({ service: "api", cause: "probe" });
      await t.store.addIncident({ service: "api", cause: "probe" });
      const of = async (service: string, limit?: number) => (await t.store.listIncidents({ service, limit })).map((i) => i.id);
      expect(await of("workers")).toEqual([ids["workers:12"], ids["workers"], ids["workers:1"]]);
      expect(await of("workers", 2)).toEqual([ids["workers:12"], ids["workers"]]);
      expect(await of("workers:1")).toEqual([ids["workers:1"]]);
      expect(await of("workers-b")).toEqual([ids["workers-b:1"], ids["workers-b"]]);
      expect(await of("work")).toEqual([ids["work"]]);
      // A name is matched as it is, never as a pattern.
      expect(await of("work%")).toEqual([]);
      expect(await of("work_rs")).toEqual([]);
    });
  });

  describe("leader locks", () => {
    it("one owner at a time, until the ttl runs out or it unlocks", async () => {
      // Times by the clock that judges locks (the server's, on PostgreSQL; see leaseNow).
      expect(await t.store.tryLock("triggers", "a", 1000)).toBe(true);
      expect(await t.store.tryLock("triggers", "b", 1000)).toBe(false);
      t.clock.advance(800);
      expect(await t.store.tryLock("triggers", "a", 1000)).toBe(true);
      const renewed = await t.leaseNow();
      t.clock.advance(800);
      expect(await t.store.tryLock("triggers", "b", 1000)).toBe(false);
      await t.waitPast(renewed + 1000);
      expect(await t.store.tryLock("triggers", "b", 1000)).toBe(true);
      await t.store.unlock("triggers", "a");
      expect(await t.store.tryLock("triggers", "a", 1000)).toBe(false);
      await t.store.unlock("triggers", "b");
      expect(await t.store.tryLock("triggers", "a", 1000)).toBe(true);
      expect(await t.store.tryLock("sweeper", "b", 1000)).toBe(true);
    });
  });

  describe("subscribe", () => {
    it("wakes listeners when jobs become available", async () => {
      if (!t.store.caps.notify) return;
      const heard: string[] = [];
      const off = t.store.subscribe((q) => heard.push(q));
      await t.store.enqueue("wake-me", 1);
      await waitFor(() => heard.includes("wake-me"), "a wake-up for wake-me");
      off();
      const before = heard.length;
      await t.store.enqueue("after-off", 1);
      await t.store.enqueue("wake-me", 2); // a sync point: another t.store op after the first
      await new Promise((r) => setTimeout(r, 50));
      expect(heard.slice(before)).toEqual([]);
    });
  });
}
