/** Store contract: runs (a root job and every job handed on from it) and jobsAhead. */
import { describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import { type ContractContext, errorOf } from "./contract-context.js";

export function runsAndQueuePosition(t: ContractContext): void {
  /** A three-stage run a → b → c driven as a worker would; `until` stops it early. */
  async function run(key: string | undefined, input: unknown, opts: { until?: "a" | "b"; failB?: boolean; dieAt?: "b" } = {}): Promise<Job[]> {
    // A run left waiting at `a` gets a low priority, so later runs' claims take their own root.
    const { job: root } = await t.store.enqueue("a", input, { ...(key ? { key } : {}), ...(opts.until === "a" ? { priority: -1 } : {}) });
    if (opts.until === "a") return [root];
    t.clock.advance(100);
    const la = await t.claimOne("a");
    t.clock.advance(1000);
    const [b] = await t.store.complete(la, { stage: "a", input }, [{ queue: "b", payload: { fromA: input }, maxAttempts: 2 }]);
    const lb = await t.claimOne("b");
    if (opts.dieAt === "b") {
      await t.store.fail(lb, { message: "first b failure" }, { retryAt: t.clock.now() });
      const again = await t.claimOne("b");
      await t.store.fail(again, { message: "b gave up" });
      return [root, (await t.must(b!.id))];
    }
    if (opts.failB) {
      await t.store.fail(lb, { message: "b hiccup" }, { retryAt: t.clock.now() });
      const again = await t.claimOne("b");
      const [c] = await t.store.complete(again, "b done", [{ queue: "c", payload: { fromB: 1 } }]);
      return [root, b!, c!];
    }
    if (opts.until === "b") return [root, b!];
    const [c] = await t.store.complete(lb, "b done", [{ queue: "c", payload: { fromB: 1 } }]);
    await t.store.complete(await t.claimOne("c"), "c done");
    return [root, b!, c!];
  }

  describe("runs", () => {
    it("listRuns: one row per root job, newest first, with its state and stages in order", async () => {
      const done = await run("k-done", { n: 1 });
      const dead = await run("k-dead", { n: 2 }, { dieAt: "b" });
      const live = await run("k-live", { n: 3 }, { until: "b" });
      const page = await t.store.listRuns();
      expect(page.runs.map((r) => r.id)).toEqual([live[0]!.id, dead[0]!.id, done[0]!.id]);
      expect(page.nextBefore).toBeNull();
      const [l, d, c] = page.runs;
      expect(l).toMatchObject({ key: "k-live", queue: "a", state: "running", finishedAt: null, jobCount: 2, rerunOf: null });
      expect(d).toMatchObject({ state: "dead", jobCount: 2 });
      expect(c).toMatchObject({ state: "completed", jobCount: 3 });
      expect(c!.stages).toEqual([
        { id: done[0]!.id, queue: "a", state: "completed", attempt: 1 },
        { id: done[1]!.id, queue: "b", state: "completed", attempt: 1 },
        { id: done[2]!.id, queue: "c", state: "completed", attempt: 1 },
      ]);
      expect(c!.finishedAt).toBe((await t.must(done[2]!.id)).finishedAt);
    });

    it("listRuns pages by root id (nextBefore) and filters by run state and queue", async () => {
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) ids.push((await run(`p-${i}`, { i }, i % 2 ? { until: "a" } : {}))[0]!.id);
      const first = await t.store.listRuns({ limit: 2 });
      expect(first.runs.map((r) => r.id)).toEqual([ids[4], ids[3]]);
      expect(first.nextBefore).toBe(ids[3]);
      const second = await t.store.listRuns({ limit: 2, beforeId: first.nextBefore! });
      expect(second.runs.map((r) => r.id)).toEqual([ids[2], ids[1]]);
      const last = await t.store.listRuns({ limit: 2, beforeId: second.nextBefore! });
      expect(last.runs.map((r) => r.id)).toEqual([ids[0]]);
      expect(last.nextBefore).toBeNull();
      expect((await t.store.listRuns({ state: "running" })).runs.map((r) => r.id)).toEqual([ids[3], ids[1]]);
      expect((await t.store.listRuns({ state: "completed", limit: 1 })).runs.map((r) => r.id)).toEqual([ids[4]]);
      expect((await t.store.listRuns({ queue: "c" })).runs.map((r) => r.id)).toEqual([ids[4], ids[2], ids[0]]);
    });

    it("listRuns search: a key prefix through the index, else text in the payload", async () => {
      const a = (await run("order-17", { city: "Lisbon" }, { until: "a" }))[0]!;
      const b = (await run("order-18", { city: "Porto" }, { until: "a" }))[0]!;
      await run("invoice-1", { city: "Faro" }, { until: "a" });
      const byKey = await t.store.listRuns({ search: "order-" });
      expect(byKey.searchedBy).toBe("key");
      expect(byKey.runs.map((r) => r.id)).toEqual([b.id, a.id]);
      const oneKey = await t.store.listRuns({ search: "order-", limit: 1 });
      expect(oneKey.runs.map((r) => r.id)).toEqual([b.id]);
      expect(oneKey.nextBefore).toBe(b.id);
      const byText = await t.store.listRuns({ search: "lisbon" });
      expect(byText.searchedBy).toBe("text");
      expect(byText.runs.map((r) => r.id)).toEqual([a.id]);
      expect((await t.store.listRuns({ search: "nowhere" })).runs).toEqual([]);
    });

    it("getRun: the run of any of its jobs, jobs in order with waits, run times, history and previews", async () => {
      const big = "x".repeat(5000);
      const [root, b, c] = await run("g-1", { big }, { failB: true });
      const detail = await t.store.getRun(b!.id);
      expect(detail).not.toBeNull();
      expect(detail!.id).toBe(root!.id);
      expect(detail!.state).toBe("running");
      expect(detail!.jobs.map((j) => [j.id, j.queue])).toEqual([[root!.id, "a"], [b!.id, "b"], [c!.id, "c"]]);
      const [ja, jb] = detail!.jobs;
      expect(ja).toMatchObject({ state: "completed", queueDelayMs: 100, runMs: 1000, host: "w1", workerId: "w1", payloadTruncated: true, resultTruncated: true });
      expect(typeof ja!.payload).toBe("string");
      expect((ja!.payload as string).length).toBe(2048);
      expect(jb).toMatchObject({ state: "completed", attempt: 2, parentId: root!.id });
      expect(jb!.history.map((h) => h.message)).toEqual(["b hiccup"]);
      expect(await t.store.getRun(999_999)).toBeNull();
    });

    it("rerun starts a new run at a stage with that stage's input, or an edited payload, linked to the original", async () => {
      const [root, b] = await run("r-1", { n: 1 }, { dieAt: "b" });
      const again = await t.store.rerun(root!.id, "b");
      expect(again).toMatchObject({ queue: "b", state: "waiting", payload: { fromA: { n: 1 } }, rootId: null, key: null });
      expect(again.source).toEqual({ trigger: "rerun", rerunOf: root!.id, fromJob: b!.id });
      const edited = await t.store.rerun(b!.id, "b", { fromA: { n: 2 } });
      expect(edited.payload).toEqual({ fromA: { n: 2 } });
      const page = await t.store.listRuns();
      expect(page.runs.map((r) => [r.id, r.rerunOf])).toEqual([[edited.id, root!.id], [again.id, root!.id], [root!.id, null]]);
      expect((await t.store.getRun(again.id))!.rerunOf).toBe(root!.id);
      expect((await errorOf(() => t.store.rerun(root!.id, "zz"))).code).toBe("BAD_INPUT");
      expect((await errorOf(() => t.store.rerun(999_999, "b"))).code).toBe("NOT_FOUND");
    });

    it("jobsAhead counts the waiting jobs a claim takes first, and is null for a job not waiting", async () => {
      const { job: x } = await t.store.enqueue("q", 1);
      const { job: y } = await t.store.enqueue("q", 2);
      const { job: urgent } = await t.store.enqueue("q", 3, { priority: 5 });
      await t.store.enqueue("other", 4);
      const { job: later } = await t.store.enqueue("q", 5, { delayMs: 60_000 });
      expect(await t.store.jobsAhead(urgent.id)).toBe(0);
      expect(await t.store.jobsAhead(x.id)).toBe(1);
      expect(await t.store.jobsAhead(y.id)).toBe(2);
      expect(await t.store.jobsAhead(y.id, 1)).toBe(1);
      expect(await t.store.jobsAhead(later.id)).toBeNull();
    });
  });
}
