/**
 * Hung workers under a real supervisor: a SIGSTOPped worker and one whose handler blocks
 * the event loop are declared stalled after `stallAfter`, their jobs complete on the
 * other worker, and they are replaced. The stall incident says why: the job held, the
 * /proc state ("T" stopped, "R" spinning) and, for the blocked loop, the JavaScript stack
 * naming the handler's file. A SIGSTOPped worker woken afterwards finishes its handler,
 * but its late completion is refused: the job keeps the other worker's result.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WORK_HANDLER, WORKERS_YAML, allRunning, holderOf, lines, makeProject, openProjectStore, row, startVigil, waitFor, supervisorTest } from "./supervisor-helpers.js";

const t = supervisorTest();

describe("supervisor with workers: stalls", () => {
  it("detects a SIGSTOPped worker, runs its job elsewhere, refuses its late completion, replaces it", async () => {
    // killTimeout leaves a window to wake the stopped worker before its SIGKILL.
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 2s, killTimeout: 8s }"), { "work.mjs": WORK_HANDLER });
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0]);
    t.store = await openProjectStore(t.project);
    const { job } = await t.store.enqueue("work", { mode: "sleep", ms: 1500 });
    const victim = await holderOf(t.project, t.store, job.id);
    process.kill(victim.pid, "SIGSTOP");

    const inc = await waitFor("stall incident", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.cause === "stall"));
    expect(inc.detail.procState).toMatch(/^T /);
    expect(inc.detail.pid).toBe(victim.pid);
    expect((inc.detail.activeJobs as { jobId: number }[]).map((a) => a.jobId)).toEqual([job.id]);
    expect(inc.detail.heartbeatAgeMs as number).toBeGreaterThanOrEqual(2000);

    const done = await waitFor("job completed elsewhere", async () => {
      const j = await t.store!.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    const winner = (done.result as { pid: number }).pid;
    expect(winner).not.toBe(victim.pid);

    // Wake the frozen worker: its handler runs to the end, but the lease is no longer its.
    process.kill(victim.pid, "SIGCONT");
    const runsLog = join(t.project.dir, "runs.log");
    await waitFor("the woken handler finished", () => lines(runsLog).includes(`${victim.pid} ${job.id} 1 end`));
    const back = await waitFor("worker replaced", async () => {
      const r = await row(t.project!, victim.name);
      return r?.state === "running" && r.pid !== victim.pid ? r : null;
    });
    expect(back.restarts).toBe(1);
    const after = await t.store.get(job.id);
    expect(after?.state).toBe("completed");
    expect((after?.result as { pid: number }).pid).toBe(winner);
    expect(after?.attempt).toBe(2);
  });

  it("detects a handler that blocks the event loop and records the blocked stack naming the handler's file", async () => {
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 2s, killTimeout: 1s }"), { "work.mjs": WORK_HANDLER });
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0]);
    t.store = await openProjectStore(t.project);
    const { job } = await t.store.enqueue("work", { mode: "block", after: 1500 });
    const victim = await holderOf(t.project, t.store, job.id);

    const inc = await waitFor("stall incident", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.cause === "stall"));
    expect(inc.detail.procState).toMatch(/^R /);
    expect(inc.detail.cpuPercent as number).toBeGreaterThan(30);
    expect(String(inc.detail.blockedIn)).toContain("work.mjs");
    expect((inc.detail.stack as string[]).join("\n")).toMatch(/handle \(file:.*work\.mjs:\d+/);

    const done = await waitFor("job completed elsewhere", async () => {
      const j = await t.store!.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    expect((done.result as { pid: number }).pid).not.toBe(victim.pid);
    const back = await waitFor("worker replaced", async () => {
      const r = await row(t.project!, victim.name);
      return r?.state === "running" && r.pid !== victim.pid ? r : null;
    });
    expect(back.restarts).toBe(1);
    await waitFor("stall marked recovered", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.id === inc.id && i.recoveredAt !== null));
  });
});
