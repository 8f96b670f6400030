/**
 * Health checks flipping for their real causes under a real `vigil start`: a frozen
 * (SIGSTOPped) worker turns `services` degraded until the supervisor replaces it, and a
 * frozen supervisor turns `status-file` unhealthy once it stops rewriting the file.
 * (test/e2e/health-crash-loop.test.ts covers the crash loop, waiting age and alerts.)
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runHealthChecks } from "../../src/health/checks.js";
import { check, cliHealth } from "./health-helpers.js";
import { allRunning, makeProject, openProjectStore, snapshot, startVigil, supervisorTest, waitFor, WORK_HANDLER } from "./supervisor-helpers.js";

const t = supervisorTest();
/** Processes this test SIGSTOPped: continued before the supervisor is stopped. */
const stopped: number[] = [];
// Registered after supervisorTest(), so it runs before its clean-up (after-hooks run in reverse).
afterEach(() => {
  for (const pid of stopped.splice(0)) {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // already gone
    }
  }
});

describe("health under a running supervisor", () => {
  it("flips services for a frozen worker and status-file for a frozen supervisor", async () => {
    t.project = makeProject(
      `queues:
  work: { handler: ./work.mjs }
services:
  workers: { queues: [work], instances: 1 }
supervision: { stallAfter: 2s, killTimeout: 1s }
http: { enabled: false }
`,
      { "work.mjs": WORK_HANDLER },
    );
    t.runs.push(startVigil(t.project));
    const [row] = await allRunning(t.project, t.runs[0]);
    const store = (t.store = await openProjectStore(t.project));
    const p = t.project;
    const inProcess = () =>
      runHealthChecks({
        store,
        stateDir: join(p.dir, ".vigil"),
        limits: { maxWaitingAge: 300_000, maxDeadPerHour: 10, minFreeDisk: 1 << 20 },
        stallAfter: 2000,
        storeFile: join(p.dir, ".vigil", "vigil.db"),
      });
    await waitFor("healthy", async () => (await inProcess()).status === "ok", 30_000);
    const healthy = await waitFor("vigil health exit 0", () => {
      const r = cliHealth(p);
      return r.code === 0 ? r : null;
    });
    expect(healthy.report.status).toBe("ok");

    process.kill(row!.pid!, "SIGSTOP");
    stopped.push(row!.pid!);
    // Polled in-process (a few ms per round): the window between "stale" and "replaced"
    // is a few seconds, too short to catch reliably with a CLI run per round.
    const degraded = await waitFor("services degraded", async () => {
      const r = await inProcess();
      return check(r, "services").status === "degraded" ? r : null;
    }, 30_000, 50);
    expect(check(degraded, "services").message).toContain(row!.name);
    expect(degraded.status).toBe("degraded");

    const back = await waitFor("healthy again with a new worker", async () => {
      const r = await inProcess();
      const s = await snapshot(p);
      return r.status === "ok" && s?.services[0]?.pid !== row!.pid ? r : null;
    }, 45_000);
    expect(check(back, "services").status).toBe("ok");

    // A frozen supervisor stops rewriting the status file.
    process.kill(t.runs[0]!.child.pid!, "SIGSTOP");
    stopped.push(t.runs[0]!.child.pid!);
    const stale = await waitFor("status-file unhealthy", () => {
      const r = cliHealth(p).report;
      return check(r, "status-file").status === "unhealthy" ? r : null;
    }, 45_000, 1000);
    expect(check(stale, "status-file").message).toContain("status.json");
    process.kill(t.runs[0]!.child.pid!, "SIGCONT");
    await waitFor("status-file fresh again", () => check(cliHealth(p).report, "status-file").status === "ok", 30_000, 500);
  });
});
