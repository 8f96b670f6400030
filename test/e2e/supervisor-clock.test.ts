/**
 * Time that jumps for reasons no worker is to blame for: the supervisor itself frozen
 * (SIGSTOP, as Ctrl-Z on `vigil start` does) for longer than `stallAfter`, and the wall
 * clock stepped forward 15 s (an NTP correction) in every Vigil process. Neither may be
 * judged a stall: no worker is killed, no incident is opened, and the job running across
 * the jump starts exactly once (runs.log is the ledger of handler starts). A worker that
 * really froze during the supervisor's pause is still found once the supervisor wakes.
 */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { ServiceStatus } from "../../src/core/status.js";
import { WORK_HANDLER, WORKERS_YAML, allRunning, holderOf, lines, makeProject, openProjectStore, snapshot, startVigil, supervisorTest, waitFor, type Project } from "./supervisor-helpers.js";

const t = supervisorTest();
const STEP_MODULE = resolve(import.meta.dirname, "fixtures", "clock-step.mjs");
/** How long the running job sleeps: long enough to span the jump and a judgement after it. */
const JOB_MS = 9000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits for the job to complete, then checks nobody was judged stalled and it ran once. */
async function expectUndisturbed(p: Project, jobId: number, pidsBefore: Map<string, number | null>): Promise<void> {
  await waitFor("job completed", async () => (await t.store!.get(jobId))?.state === "completed", 60_000);
  const starts = lines(join(p.dir, "runs.log")).filter((l) => l.split(" ")[1] === String(jobId) && l.endsWith(" start"));
  const incidents = (await t.store!.listIncidents({ limit: 100 })).filter((i) => i.service !== "supervisor");
  const rows = (await snapshot(p))!.services;
  expect(incidents.map((i) => `${i.service}: ${i.cause} ${JSON.stringify(i.detail.reason ?? "")}`)).toEqual([]);
  expect(starts).toHaveLength(1);
  expect((await t.store!.get(jobId))?.attempt).toBe(1);
  for (const r of rows) {
    expect(r.restarts, r.name).toBe(0);
    expect(r.pid, r.name).toBe(pidsBefore.get(r.name));
  }
}

describe("supervisor: its own pauses and wall-clock steps are not stalls", () => {
  it("a supervisor SIGSTOPped for 5 s (stallAfter 2 s) and woken judges no worker stalled", async () => {
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 2s, killTimeout: 8s }"), { "work.mjs": WORK_HANDLER });
    const run = startVigil(t.project);
    t.runs.push(run);
    const rows = await allRunning(t.project, run);
    const pids = new Map(rows.map((r) => [r.name, r.pid]));
    t.store = await openProjectStore(t.project);
    const { job } = await t.store.enqueue("work", { mode: "sleep", ms: JOB_MS });
    await holderOf(t.project, t.store, job.id);

    process.kill(run.child.pid!, "SIGSTOP");
    await sleep(5000);
    process.kill(run.child.pid!, "SIGCONT");

    await expectUndisturbed(t.project, job.id, pids);
    expect(run.output()).toMatch(/the supervisor did not run for \d+ ms/);
  });

  it("a worker frozen while the supervisor was stopped is still found stalled once it wakes", async () => {
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 2s, killTimeout: 2s }"), { "work.mjs": WORK_HANDLER });
    const run = startVigil(t.project);
    t.runs.push(run);
    const rows = await allRunning(t.project, run);
    const [victim, other] = rows as [ServiceStatus, ServiceStatus];
    t.store = await openProjectStore(t.project);

    process.kill(run.child.pid!, "SIGSTOP");
    process.kill(victim.pid!, "SIGSTOP");
    await sleep(5000);
    process.kill(run.child.pid!, "SIGCONT");

    const inc = await waitFor("stall incident", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.cause === "stall"));
    expect(inc.detail.pid).toBe(victim.pid);
    await waitFor("the frozen worker replaced", async () => {
      const r = (await snapshot(t.project!))?.services.find((x) => x.name === victim.name);
      return r?.state === "running" && r.pid !== victim.pid;
    });
    const stalls = (await t.store.listIncidents({ limit: 100 })).filter((i) => i.cause === "stall");
    expect(stalls.map((i) => i.service)).toEqual([victim.name]);
    expect((await snapshot(t.project))!.services.find((x) => x.name === other.name)).toMatchObject({ pid: other.pid, restarts: 0 });
  });

  it("a +15 s wall-clock step in every process (stallAfter 2 s) judges no worker stalled and frees no lease", async () => {
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 2s, killTimeout: 8s }"), { "work.mjs": WORK_HANDLER });
    const clockFile = join(t.project.dir, "clock-offset");
    writeFileSync(clockFile, "0");
    const run = startVigil(t.project, [], { NODE_OPTIONS: `--import=${STEP_MODULE}`, VIGIL_TEST_CLOCK_FILE: clockFile });
    t.runs.push(run);
    const rows = await allRunning(t.project, run);
    const pids = new Map(rows.map((r) => [r.name, r.pid]));
    t.store = await openProjectStore(t.project);
    const { job } = await t.store.enqueue("work", { mode: "sleep", ms: JOB_MS });
    await holderOf(t.project, t.store, job.id);

    writeFileSync(clockFile, "15000");

    await expectUndisturbed(t.project, job.id, pids);
  });
});
