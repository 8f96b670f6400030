/**
 * A queue's own `maxStalls` with real SIGKILLed workers on one SQLite file: a job of a
 * queue with `maxStalls: 5`, run by workers that also serve a queue with `maxStalls: 2`,
 * lives through four stalls and is dead at the fifth — when the supervisor frees a killed
 * worker's jobs, and when the next worker reaps the expired lease.
 */
import { describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { allRunning, holderOf, makeProject, openProjectStore, startVigil, supervisorTest, waitFor } from "./supervisor-helpers.js";
import { killAll, removeProject, started, startWorker, workerProject } from "./worker-helpers.js";

const QUEUES = (lease: string) => `queues:
  slow: { handler: ./hang.mjs, maxStalls: 5, attempts: 20, lease: ${lease} }
  fast: { handler: ./hang.mjs, maxStalls: 2 }
`;
const HANG = { "hang.mjs": "export default function hang() { return new Promise(() => {}); }" };

/** Waits until job `id` has `n` stalls, and returns it. */
function stalled(store: Store, id: number, n: number, timeoutMs = 60_000): Promise<Job> {
  return waitFor(`job ${id} to have stalled ${n} times`, async () => {
    const j = await store.get(id);
    return j && j.stalls >= n ? j : null;
  }, timeoutMs);
}

describe("a queue's own maxStalls", () => {
  const t = supervisorTest();

  it("holds when the supervisor frees a SIGKILLed worker's job: alive after 4 stalls, dead at the 5th", async () => {
    t.project = makeProject(
      `${QUEUES("10s")}services:
  workers: { queues: [slow, fast], instances: 1 }
supervision: { stallAfter: 3s, killTimeout: 3s }
http: { enabled: false }
`,
      HANG,
    );
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0], 45_000);
    t.store = await openProjectStore(t.project);
    const { job } = await t.store.enqueue("slow", { n: 1 }, { maxAttempts: 20 });
    for (let i = 1; i <= 4; i++) {
      const victim = await holderOf(t.project, t.store, job.id);
      process.kill(victim.pid, "SIGKILL");
      const j = await stalled(t.store, job.id, i);
      expect({ stalls: j.stalls, dead: j.state === "dead" }).toEqual({ stalls: i, dead: false });
    }
    const victim = await holderOf(t.project, t.store, job.id);
    process.kill(victim.pid, "SIGKILL");
    const dead = await stalled(t.store, job.id, 5);
    expect(dead).toMatchObject({ state: "dead", stalls: 5, attempt: 5 });
  }, 240_000);

  it("holds when the next worker reaps the SIGKILLed worker's expired lease: alive after 4 stalls, dead at the 5th", async () => {
    const p = workerProject(`store: sqlite:vigil.db\n${QUEUES("1s")}`, HANG);
    const store = await openStore(`sqlite:${p.db}`);
    try {
      const { job } = await store.enqueue("slow", { n: 1 }, { maxAttempts: 20 });
      for (let i = 1; i <= 5; i++) {
        // The worker that starts now reaps the last one's expired lease, then claims the job.
        const w = startWorker(p, `reaper-${i}`, "slow,fast");
        await started(w);
        await waitFor(`job ${job.id} active on ${w.id}`, async () => {
          const j = await store.get(job.id);
          if (j?.state === "dead") throw new Error(`job ${job.id} is dead after ${j.stalls} stalls`);
          return j?.state === "active" && j.workerId === w.id;
        }, 60_000);
        expect((await store.get(job.id))!.stalls).toBe(i - 1);
        process.kill(w.pid, "SIGKILL");
        await w.exited;
      }
      const last = startWorker(p, "reaper-6", "slow,fast");
      await started(last);
      const dead = await stalled(store, job.id, 5);
      expect(dead).toMatchObject({ state: "dead", stalls: 5, attempt: 5 });
    } finally {
      await killAll();
      await store.close();
      removeProject(p);
    }
  }, 240_000);
});
