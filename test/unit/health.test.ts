/**
 * Health checks against a real SQLite store and real state files. The flips that need a
 * running supervisor (a frozen worker, a crash loop, a supervisor that stops writing its
 * status file) are in test/e2e/health-supervisor.test.ts.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { exitCodeFor, runHealthChecks, worst, type HealthInput } from "../../src/health/checks.js";
import { computeReport } from "../../src/health/report.js";
import type { ServiceStatus, StatusSnapshot } from "../../src/core/status.js";
import { writeStatusFile } from "../../src/project/status-file.js";
import { killJobs, tempStore, type TempStore } from "./ops-fixtures.js";

const LIMITS = { maxWaitingAge: 5 * 60_000, maxDeadPerHour: 2, minFreeDisk: 1 << 20 };

function service(name: string, over: Partial<ServiceStatus> = {}): ServiceStatus {
  return {
    name,
    service: name.split(":")[0]!,
    kind: "worker",
    host: "h",
    state: "running",
    pid: 1,
    restarts: 0,
    heartbeatAgeMs: 200,
    startedAt: 0,
    rssBytes: null,
    ...over,
  };
}

function snap(now: number, services: ServiceStatus[]): StatusSnapshot {
  return { at: now, supervisor: null, services, queues: {}, triggers: [], incidents: [], source: "supervisor" };
}

describe("health checks", () => {
  let t: TempStore;
  let clock: ManualClock;
  let stateDir: string;
  beforeEach(async () => {
    clock = new ManualClock(Date.now());
    t = await tempStore(clock);
    stateDir = join(t.dir, ".vigil");
    mkdirSync(stateDir, { recursive: true });
  });
  afterEach(() => t.cleanup());

  const run = (over: Partial<HealthInput> = {}) =>
    runHealthChecks({ store: t.store, stateDir, limits: LIMITS, storeFile: t.file, now: clock.now(), ...over });
  const check = (r: Awaited<ReturnType<typeof run>>, name: string) => r.checks.find((c) => c.name === name)!;

  it("is unhealthy with no supervisor and no status file, and names both", async () => {
    const r = await run();
    expect(r.status).toBe("unhealthy");
    expect(exitCodeFor(r.status)).toBe(2);
    expect(check(r, "supervisor").status).toBe("unhealthy");
    expect(check(r, "status-file").status).toBe("unhealthy");
    expect(check(r, "store").status).toBe("ok");
    expect(r.checks.map((c) => c.name)).toEqual([
      "supervisor",
      "services",
      "crash-loop",
      "store",
      "waiting-age",
      "dead-jobs",
      "disk",
      "store-size",
      "store-wal",
      "status-file",
    ]);
    for (const c of r.checks) expect(c.message).toMatch(/\.$/);
  });

  it("is healthy inside a live supervisor with fresh heartbeats and a fresh status file", async () => {
    const live = snap(clock.now(), [service("workers:1"), service("workers:2")]);
    writeStatusFile(join(stateDir, "status.json"), live);
    const r = await run({ snapshot: live });
    expect(r.checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(r.status).toBe("ok");
    expect(exitCodeFor(r.status)).toBe(0);
  });

  it("flips services to degraded on a stale heartbeat and crash-loop to unhealthy", async () => {
    writeStatusFile(join(stateDir, "status.json"), snap(clock.now(), []));
    const stale = snap(clock.now(), [service("workers:1"), service("workers:2", { heartbeatAgeMs: 9000 })]);
    let r = await run({ snapshot: stale, stallAfter: 5000 });
    expect(check(r, "services").status).toBe("degraded");
    expect(check(r, "services").message).toContain("workers:2");
    expect(r.status).toBe("degraded");
    expect(exitCodeFor(r.status)).toBe(1);

    const looping = snap(clock.now(), [service("workers:1"), service("api", { state: "crash-looping" })]);
    r = await run({ snapshot: looping });
    expect(check(r, "crash-loop").status).toBe("unhealthy");
    expect(check(r, "crash-loop").message).toContain("vigil logs api");
    expect(r.status).toBe("unhealthy");
  });

  it("counts a process on its way back as degraded, and nothing running or coming back as unhealthy", async () => {
    let r = await run({ snapshot: snap(clock.now(), [service("workers:1", { state: "starting", heartbeatAgeMs: null })]) });
    expect(check(r, "services").status).toBe("degraded");
    expect(check(r, "services").message).toContain("workers:1 is starting");
    r = await run({ snapshot: snap(clock.now(), [service("workers:1", { state: "stopped" })]) });
    expect(check(r, "services").status).toBe("unhealthy");
    // A snapshot two seconds old adds its age to the heartbeat's.
    r = await run({ snapshot: snap(clock.now() - 2000, [service("workers:1", { heartbeatAgeMs: 1500 })]), stallAfter: 3000 });
    expect(check(r, "services").status).toBe("degraded");
    expect(check(r, "services").message).toContain("3.5s");
  });

  it("flips waiting-age when the oldest waiting job passes maxWaitingAge", async () => {
    await t.store.enqueue("slow", { n: 1 });
    clock.advance(60_000);
    expect(check(await run({ now: clock.now() }), "waiting-age").status).toBe("ok");
    clock.advance(5 * 60_000);
    const r = await run({ now: clock.now() });
    expect(check(r, "waiting-age").status).toBe("degraded");
    expect(check(r, "waiting-age").message).toContain("queue slow");
  });

  it("does not call a paused queue's waiting jobs stuck, and says it is paused", async () => {
    await t.store.enqueue("held", { n: 1 });
    await t.store.setPaused("held", true);
    clock.advance(10 * 60_000);
    let r = await run({ now: clock.now() });
    expect(check(r, "waiting-age").status).toBe("ok");
    expect(check(r, "waiting-age").message).toContain("Paused, so not counted: held.");
    // Resumed, the same job is stuck again.
    await t.store.setPaused("held", false);
    r = await run({ now: clock.now() });
    expect(check(r, "waiting-age").status).toBe("degraded");
  });

  it("flips dead-jobs when more than maxDeadPerHour died in the last hour", async () => {
    await killJobs(t.store, "q", 2);
    expect(check(await run(), "dead-jobs").status).toBe("ok");
    await killJobs(t.store, "q", 1);
    const r = await run();
    expect(check(r, "dead-jobs").status).toBe("degraded");
    expect(check(r, "dead-jobs").message).toMatch(/^3 jobs died/);
  });

  it("flips disk below minFreeDisk and skips it for a store that is not a file", async () => {
    const r = await run({ limits: { ...LIMITS, minFreeDisk: Number.MAX_SAFE_INTEGER } });
    expect(check(r, "disk").status).toBe("unhealthy");
    expect(check(await run({ storeFile: null }), "disk").status).toBe("ok");
  });

  it("flips status-file to unhealthy when the file stops being rewritten", async () => {
    writeStatusFile(join(stateDir, "status.json"), snap(clock.now(), []));
    expect(check(await run(), "status-file").status).toBe("ok");
    clock.advance(30_000);
    const r = await run({ now: clock.now(), statusEvery: 2000 });
    expect(check(r, "status-file").status).toBe("unhealthy");
    expect(check(r, "status-file").message).toContain("30s old");
  });

  it("reports a store that cannot be opened, and a stale pid file", async () => {
    writeFileSync(join(stateDir, "supervisor.pid"), "999999\n");
    const r = await run({ store: null, storeError: "file is not a database" });
    expect(check(r, "store").message).toContain("file is not a database");
    expect(check(r, "store").status).toBe("unhealthy");
    expect(check(r, "supervisor").message).toContain("999999");
  });

  it("orders statuses", () => {
    expect(worst([])).toBe("ok");
    expect(worst(["ok", "degraded", "ok"])).toBe("degraded");
    expect(worst(["degraded", "unhealthy", "ok"])).toBe("unhealthy");
  });
});

describe("vigil health command", () => {
  const VIGIL = resolve(import.meta.dirname, "../../bin/vigil");
  it("exits 2 with JSON for a project with nothing running, and 2 for a config it cannot load", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-health-cli-"));
    try {
      writeFileSync(join(dir, "vigil.yaml"), "queues: {}\n");
      const ok = spawnSync(process.execPath, [VIGIL, "health", "--json"], { cwd: dir, encoding: "utf8", timeout: 60_000 });
      expect(ok.status).toBe(2);
      const report = JSON.parse(ok.stdout) as { status: string; checks: { name: string; status: string }[] };
      expect(report.status).toBe("unhealthy");
      // Nothing ever ran here: no store file either, and health says how to make one.
      const store = report.checks.find((c) => c.name === "store") as { status: string; message: string };
      expect(store.status).toBe("unhealthy");
      expect(store.message).toContain("vigil migrate");
      writeFileSync(join(dir, "vigil.yaml"), "bogus: 1\n");
      const bad = spawnSync(process.execPath, [VIGIL, "health"], { cwd: dir, encoding: "utf8", timeout: 60_000 });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toContain("bogus");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("report figures", () => {
  it("computes uptime, MTBF, MTTR, restarts and manual interventions from incidents", () => {
    const h = 3_600_000;
    const since = 0;
    const until = 10 * h;
    const inc = (id: number, cause: "crash" | "stall" | "stop", at: number, took: number | null, detail = {}) => ({
      id,
      service: "workers:1",
      host: "h",
      cause,
      detectedAt: at,
      recoveredAt: took === null ? null : at + took,
      detail,
    });
    const r = computeReport(
      [
        inc(1, "crash", 1 * h, 60_000),
        inc(2, "stall", 2 * h, 120_000),
        inc(3, "stall", 2 * h + 60_000, 30_000), // overlaps incident 2: counted once
        inc(4, "stop", 5 * h, 10_000, { manual: true, action: "restart" }),
      ],
      [{ queue: "q", completed: 20, dead: 1, failedAttempts: 3, p50Ms: 10, p95Ms: 50 }],
      { since, until, services: ["api"] },
    );
    const w = r.services.find((s) => s.service === "workers:1")!;
    expect(w.downtimeMs).toBe(60_000 + 120_000 + 10_000);
    expect(w.failures).toBe(3);
    expect(w.restarts).toBe(4);
    expect(w.manualInterventions).toBe(1);
    expect(w.mttrMs).toBe(Math.round((60_000 + 120_000 + 30_000 + 10_000) / 4));
    expect(w.mtbfMs).toBe(Math.round((10 * h - 190_000) / 3));
    expect(w.restartsPerDay).toBe(9.6);
    expect(w.uptimePct).toBeCloseTo(100 * (1 - 190_000 / (10 * h)), 3);
    const api = r.services.find((s) => s.service === "api")!;
    expect(api.uptimePct).toBe(100);
    expect(api.mtbfMs).toBeNull();
    expect(r.queues[0]!.throughputPerHour).toBe(2);
    expect(r.manualInterventions).toBe(1);
    expect(r.deadJobs).toBe(1);
  });
});
