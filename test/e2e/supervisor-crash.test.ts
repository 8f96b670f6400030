/**
 * Real `vigil worker` processes under a real supervisor: a SIGKILLed busy worker's job
 * completes on the other worker (its leases are freed the moment the exit is seen), the
 * crash is an incident, and the worker comes back; a command the SIGKILLed worker was
 * running is ended before its job is freed; a handler whose promise never settles is
 * aborted at its timeout and its wedged worker replaced after killGrace, its job freed only
 * once that worker is gone.
 */
import { describe, expect, it } from "vitest";
import { WORK_HANDLER, commandDiesWithWorker, WORKERS_YAML, allRunning, holderOf, makeProject, openProjectStore, row, running, startVigil, waitFor, supervisorTest } from "./supervisor-helpers.js";

const t = supervisorTest();

describe("supervisor with workers: crash and hung handler", () => {
  it("frees a SIGKILLed worker's job at once: it completes on the other worker, the crash is recorded, the worker is back", async () => {
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 3s, killTimeout: 3s }"), { "work.mjs": WORK_HANDLER });
    t.runs.push(startVigil(t.project));
    const before = await allRunning(t.project, t.runs[0]);
    expect(before.map((r) => r.name).sort()).toEqual(["workers:1", "workers:2"]);
    t.store = await openProjectStore(t.project);
    const { job } = await t.store.enqueue("work", { mode: "sleep", ms: 120_000 });
    const victim = await holderOf(t.project, t.store, job.id);
    process.kill(victim.pid, "SIGKILL");

    const done = await waitFor("job completed elsewhere", async () => {
      const j = await t.store!.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    expect((done.result as { pid: number }).pid).not.toBe(victim.pid);
    expect(done.attempt).toBe(2);

    const inc = await waitFor("crash incident", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.cause === "crash"));
    expect(inc.detail.signal).toBe("SIGKILL");
    expect(inc.detail.releasedJobs).toBe(1);
    expect((inc.detail.activeJobs as { jobId: number }[]).map((a) => a.jobId)).toContain(job.id);

    const back = await waitFor("worker back", async () => {
      const r = await row(t.project!, victim.name);
      return r?.state === "running" && r.pid !== victim.pid ? r : null;
    });
    expect(back.restarts).toBe(1);
    await waitFor("crash marked recovered", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.id === inc.id && i.recoveredAt !== null));
  });

  it("ends the command a SIGKILLed worker was running before its job is freed", async () => {
    await commandDiesWithWorker(t, "{ stallAfter: 3s, killTimeout: 3s }", "SIGKILL");
  });

  it("aborts a never-settling handler at its timeout and replaces its wedged worker", async () => {
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 3s, killTimeout: 3s }"), { "work.mjs": WORK_HANDLER });
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0]);
    t.store = await openProjectStore(t.project);
    const { job } = await t.store.enqueue("hang", { mode: "hang" });
    const victim = await holderOf(t.project, t.store, job.id);

    const timeout = await waitFor("job-timeout incident", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.cause === "job-timeout"));
    expect(timeout.detail.jobId).toBe(job.id);
    expect(timeout.detail.timeoutMs).toBe(2000);
    // Its retry may start only once the wedged worker, where the handler could still run, is gone.
    await waitFor("job held by another worker", async () => {
      const j = await t.store!.get(job.id);
      return j && j.attempt === 2 && (j.state === "active" || j.state === "completed");
    });
    expect(running(victim.pid)).toBe(false);
    const wedged = await waitFor("wedged worker incident", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.cause === "stall"));
    expect(String(wedged.detail.reason)).toMatch(/wedged/);

    const back = await waitFor("worker replaced", async () => {
      const r = await row(t.project!, victim.name);
      return r?.state === "running" && r.pid !== victim.pid ? r : null;
    });
    expect(back.restarts).toBe(1);
    const done = await waitFor("job completed on a retry", async () => {
      const j = await t.store!.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    expect(done.attempt).toBe(2);
    expect((done.result as { pid: number }).pid).not.toBe(victim.pid);
  });
});
