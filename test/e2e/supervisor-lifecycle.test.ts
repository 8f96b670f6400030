/**
 * Starting and stopping a project: a bad config starts nothing and names each key and
 * line; a second `vigil start` refuses naming the running pid; SIGKILL of the supervisor
 * itself, then `vigil start` again, leaves no orphan running and loses no job; `vigil
 * restart` is recorded as manual; `vigil stop` drains and records a stop; `vigil logs`,
 * `vigil status` and `vigil incidents` read what the supervisor left.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readChildren } from "../../src/project/children-file.js";
import { WORK_HANDLER, WORKERS_YAML, allRunning, holderOf, makeProject, openProjectStore, running, startVigil, vigil, waitFor, supervisorTest } from "./supervisor-helpers.js";

const t = supervisorTest();

describe("supervisor start and stop", () => {
  it("refuses a bad config, naming each key and line, and starts nothing", () => {
    t.project = makeProject(
      `services:
  side: { command: [node, -e, "require('fs').writeFileSync('started', '1')"] }
supervision:
  stallAfter: soon
  restartEvery: 5s
`,
    );
    const r = vigil(t.project, ["start"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/vigil\.yaml:4: supervision\.stallAfter/);
    expect(r.stderr).toMatch(/vigil\.yaml:5: .*restartEvery/);
    expect(existsSync(join(t.project.dir, ".vigil", "supervisor.pid"))).toBe(false);
    expect(existsSync(join(t.project.dir, "started"))).toBe(false);
  });

  it("refuses a second start naming the pid; restart is manual; stop drains and records it", async () => {
    t.project = makeProject(
      `queues:
  idle: { handler: ./work.mjs }
services:
  sleeper: { command: [node, -e, "setInterval(() => console.log('tick ' + process.pid), 200)"], instances: 2 }
supervision: { stallAfter: 2s, killTimeout: 2s }
http: { port: 0 }
`,
      { "work.mjs": WORK_HANDLER },
    );
    const run = startVigil(t.project);
    t.runs.push(run);
    const rows = await allRunning(t.project, run);
    const second = vigil(t.project, ["start"]);
    expect(second.status).not.toBe(0);
    expect(second.stderr).toContain(`pid ${run.child.pid}`);

    const restarted = vigil(t.project, ["restart", "sleeper:2"]);
    expect(restarted.stdout).toContain("sleeper:2");
    const again = await waitFor("sleeper:2 replaced", async () => {
      const now = await allRunning(t.project!, run);
      const r2 = now.find((r) => r.name === "sleeper:2")!;
      return r2.pid !== rows.find((r) => r.name === "sleeper:2")!.pid ? now : null;
    });
    expect(again.find((r) => r.name === "sleeper:1")!.pid).toBe(rows.find((r) => r.name === "sleeper:1")!.pid);
    expect(again.find((r) => r.name === "sleeper:2")!.restarts).toBe(1);

    const logs = vigil(t.project, ["logs", "sleeper", "-n", "200"]);
    expect(logs.stdout).toContain(`[sleeper:1] tick ${rows[0]!.pid}`);
    // The supervisor serves its live snapshot over HTTP too (port 0: a free one).
    const url = await waitFor("HTTP address in the log", () => /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(run.output())?.[1]);
    const api = (await (await fetch(`${url}/api/status`)).json()) as { services: { name: string; state: string }[] };
    expect(api.services.map((s) => `${s.name}=${s.state}`)).toEqual(["sleeper:1=running", "sleeper:2=running"]);
    const status = JSON.parse(vigil(t.project, ["status", "--json"]).stdout) as { source: string; services: { name: string }[]; queues: Record<string, unknown> };
    expect(status.source).toBe("supervisor");
    expect(status.services.map((s) => s.name)).toEqual(["sleeper:1", "sleeper:2"]);
    // A configured queue that has had no job yet is listed, with zeros.
    const zeros = { scheduled: 0, waiting: 0, active: 0, completed: 0, failed: 0, dead: 0, cancelled: 0 };
    expect(status.queues).toEqual({ idle: zeros });
    expect(vigil(t.project, ["status"]).stdout).toMatch(/\nidle\s+0\s+0/);

    const stop = vigil(t.project, ["stop"]);
    expect(stop.status).toBe(0);
    await waitFor("supervisor reaped", () => run.child.exitCode !== null || run.child.signalCode !== null);
    expect(run.child.exitCode).toBe(0);
    for (const r of again) expect(running(r.pid!)).toBe(false);
    expect(existsSync(join(t.project.dir, ".vigil", "supervisor.pid"))).toBe(false);

    const incidents = JSON.parse(vigil(t.project, ["incidents", "--json"]).stdout) as { service: string; cause: string; detail: Record<string, unknown>; detectedAt: number }[];
    const manual = incidents.find((i) => i.service === "sleeper:2" && i.cause === "stop");
    expect(manual?.detail.manual).toBe(true);
    expect(incidents.find((i) => i.service === "supervisor" && i.cause === "stop")).toBeDefined();
    expect(typeof incidents[0]!.detectedAt).toBe("number");
    // With no supervisor, status falls back to the status file it left, then the store.
    const after = JSON.parse(vigil(t.project, ["status", "--json"]).stdout) as { source: string; queues: Record<string, unknown> };
    expect(["status-file", "store"]).toContain(after.source);
    expect(after.queues).toEqual({ idle: zeros });
  });

  it("--detach runs the supervisor in the background, says where to look, and stop ends it", async () => {
    t.project = makeProject(
      `services:
  sleeper: { command: [node, -e, "setInterval(() => {}, 1000)"] }
http: { enabled: false }
`,
    );
    const r = vigil(t.project, ["start", "--detach"]);
    expect(r.status).toBe(0);
    const pid = Number(/pid (\d+)/.exec(r.stdout)?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(r.stdout).toContain(join(t.project.dir, ".vigil", "supervisor.log"));
    expect(running(pid)).toBe(true);
    const rows = await allRunning(t.project);
    expect(rows.map((x) => x.name)).toEqual(["sleeper"]);
    const stop = vigil(t.project, ["stop"]);
    expect(stop.stdout).toContain(`stopped (pid ${pid})`);
    expect(running(pid)).toBe(false);
    expect(running(rows[0]!.pid!)).toBe(false);
  });

  it("after a SIGKILL of the supervisor, the next start ends the orphans and loses no job", async () => {
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 3s, killTimeout: 3s }"), { "work.mjs": WORK_HANDLER });
    const first = startVigil(t.project);
    t.runs.push(first);
    const rows = await allRunning(t.project, first);
    t.store = await openProjectStore(t.project);
    const { job } = await t.store.enqueue("work", { mode: "sleep-once", ms: 120_000 });
    const holder = await holderOf(t.project, t.store, job.id);
    const recorded = readChildren(join(t.project.dir, ".vigil", "children.json"));
    expect(recorded.map((c) => c.pid).sort()).toEqual(rows.map((r) => r.pid).sort());

    process.kill(first.child.pid!, "SIGKILL");
    await waitFor("supervisor gone", () => !running(first.child.pid!));
    const second = startVigil(t.project);
    t.runs.push(second);
    const fresh = await allRunning(t.project, second);
    for (const r of rows) expect(running(r.pid!)).toBe(false);
    expect(fresh.every((r) => !rows.some((old) => old.pid === r.pid))).toBe(true);

    const done = await waitFor("job completed by the new workers", async () => {
      const j = await t.store!.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    expect((done.result as { pid: number }).pid).not.toBe(holder.pid);
    expect(fresh.map((r) => r.pid)).toContain((done.result as { pid: number }).pid);
    const inc = (await t.store.listIncidents({ service: "supervisor" })).find((i) => i.cause === "crash");
    expect(inc?.detail.pid).toBe(first.child.pid);
    expect((inc?.detail.orphans as unknown[]).length).toBeLessThanOrEqual(2);
  });
});
