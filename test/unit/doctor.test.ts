/**
 * `vigil doctor`'s diagnosis against real files and processes: a stale pid file, an
 * orphaned process group left by a dead supervisor, a lease held by a dead worker, dead
 * jobs, and a stall incident with its captured stack.
 */
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { diagnose } from "../../src/health/doctor.js";
import { killGroup, spawnGroup } from "../../src/os/process.js";
import { writeChildren } from "../../src/project/children-file.js";
import { vigilPaths } from "../../src/project/paths.js";
import { killJobs, tempStore, type TempStore } from "./ops-fixtures.js";

describe("doctor", () => {
  let t: TempStore;
  let clock: ManualClock;
  let child: ChildProcess | null = null;
  beforeEach(async () => {
    clock = new ManualClock(Date.now());
    t = await tempStore(clock);
  });
  afterEach(async () => {
    if (child?.pid) killGroup(child.pid, "SIGKILL");
    child = null;
    await t.cleanup();
  });

  it("finds what a dead supervisor left and says what to do about each", async () => {
    const paths = vigilPaths(t.dir);
    mkdirSync(paths.root, { recursive: true });
    writeFileSync(paths.pidFile, "999999\n");
    child = spawnGroup([process.execPath, "-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    writeChildren(paths.childrenFile, [
      { name: "workers:1", pid: child.pid!, argv: [process.execPath], workerId: "h:workers:1:1", startedAt: clock.now() },
    ], 999999);

    await t.store.enqueue("q", { n: 1 });
    const [lease] = await t.store.claim({ workerId: "h:workers:1:1", queues: { q: 1 }, leaseMs: 10_000 });
    clock.advance(60_000); // the lease ran out a while ago
    await killJobs(t.store, "q", 2);
    const inc = await t.store.addIncident({
      service: "workers:1",
      cause: "stall",
      detectedAt: clock.now(),
      detail: { reason: "no heartbeat for 5001 ms", blockedIn: "spin (file:///app/stages/outline.ts:12:3)", stack: ["spin (file:///app/stages/outline.ts:12:3)", "run (file:///app/worker.js:1:1)"] },
    });

    const findings = await diagnose({ store: t.store, dir: t.dir, now: clock.now(), host: "h" });
    const by = (area: string) => findings.filter((f) => f.area === area);
    expect(by("integrity")[0]!.severity).toBe("ok");
    expect(by("supervisor")[0]).toMatchObject({ severity: "warning" });
    expect(by("supervisor")[0]!.summary).toContain("999999");
    expect(by("orphans")[0]!.severity).toBe("problem");
    expect(by("orphans")[0]!.summary).toContain(`pgid ${child.pid}`);
    expect(by("orphans")[0]!.advice).toContain(`kill -TERM -${child.pid}`);
    expect(by("leases")[0]!.severity).toBe("warning");
    expect(by("leases")[0]!.detail).toMatchObject({ jobs: [{ id: lease!.jobId, why: expect.stringContaining("lease expired") }] });
    expect(by("dead-jobs")[0]!.summary).toMatch(/^2 dead job/);
    const stall = by("incidents").find((f) => (f.detail as { id: number }).id === inc.id)!;
    expect(stall.severity).toBe("warning");
    expect(stall.summary).toContain("blocked in spin");
    expect((stall.detail as { stack: string[] }).stack[0]).toContain("outline.ts:12");
    for (const f of findings) {
      expect(f.summary).toMatch(/\.$/);
      expect(f.advice).toMatch(/\.$/);
    }
  });

  it("reports a store it cannot open instead of failing", async () => {
    const findings = await diagnose({ store: null, storeError: "file is not a database", dir: t.dir });
    expect(findings[0]).toMatchObject({ area: "integrity", severity: "problem" });
    expect(findings[0]!.summary).toContain("file is not a database");
  });
});
