/**
 * `vigil status` after `vigil stop`: a real supervisor with 20 jobs in flight is stopped
 * (its workers drain, finishing some jobs and giving the rest back); status then shows
 * every service stopped with no active jobs, and the queue counts the store holds, not
 * the counts of a moment before the stop.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readStatusFile } from "../../src/project/status-file.js";
import type { StatusSnapshot } from "../../src/core/status.js";
import { allRunning, makeProject, openProjectStore, snapshot, startVigil, supervisorTest, vigil, waitFor } from "./supervisor-helpers.js";

const t = supervisorTest();

describe("vigil status after vigil stop", () => {
  it("shows stopped services and the store's true counts, not a stale status file", async () => {
    t.project = makeProject(
      `queues:
  work: { handler: ./work.mjs, concurrency: 20 }
services:
  workers: { queues: [work], instances: 1 }
supervision: { killTimeout: 8s }
http: { enabled: false }
`,
      {
        // Odd jobs finish soon after the stop begins; even ones outlive the drain (killTimeout less 1 s) and go back.
        "work.mjs": `export default async function work(job, ctx) {
  const ms = job.payload.i % 2 ? 1500 : 600000;
  await new Promise((r) => { const t = setTimeout(r, ms); ctx.signal.addEventListener("abort", () => { clearTimeout(t); r(); }); });
  if (ctx.signal.aborted) throw new Error("aborted");
  return { i: job.payload.i };
}`,
      },
    );
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0], 45_000);
    t.store = await openProjectStore(t.project);
    await t.store.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ queue: "work", payload: { i } })));
    // In flight, and seen so by the supervisor (its status file says 20 active).
    await waitFor("20 jobs active in the supervisor's view", async () => {
      const s = await snapshot(t.project!);
      return s?.queues.work?.active === 20 && s.services[0]?.activeJobs === 20;
    }, 60_000);

    const stop = vigil(t.project, ["stop"]);
    expect(stop.status).toBe(0);

    const out = vigil(t.project, ["status", "--json"]);
    expect(out.status).toBe(0);
    const s = JSON.parse(out.stdout) as StatusSnapshot;
    const truth = (await t.store.stats()).work!;
    expect(truth.active).toBe(0);
    expect(truth.completed).toBeGreaterThan(0);
    expect(s.queues.work).toEqual(truth);
    expect(s.services.length).toBeGreaterThan(0);
    for (const r of s.services) expect({ name: r.name, state: r.state, pid: r.pid, activeJobs: r.activeJobs ?? 0 }).toEqual({ name: r.name, state: "stopped", pid: null, activeJobs: 0 });
    // The supervisor's own last word agrees: its final status file, written after the drain.
    const file = readStatusFile(join(t.project.dir, ".vigil"))!.snapshot;
    expect(file.queues.work).toEqual(truth);
    for (const r of file.services) expect({ state: r.state, activeJobs: r.activeJobs }).toEqual({ state: "stopped", activeJobs: 0 });
  }, 180_000);
});
