/**
 * The supervisor's operations bundle: the HTTP server started from the config with a
 * generated token, and health changes turned into alert events.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/schema.js";
import type { AlertEvent, StatusSnapshot } from "../../src/core/status.js";
import type { CheckStatus } from "../../src/health/checks.js";
import { startHealthWatch } from "../../src/health/watch.js";
import { startOperations, type Operations } from "../../src/http/operations.js";
import { writeStatusFile } from "../../src/project/status-file.js";
import { killJobs, tempStore, type TempStore } from "./ops-fixtures.js";

describe("startOperations", () => {
  let t: TempStore;
  let ops: Operations | null = null;
  afterEach(async () => {
    await ops?.close();
    await t.cleanup();
  });

  it("serves the API with a generated token and health from the live snapshot", async () => {
    t = await tempStore();
    const config = configSchema.parse({ store: `sqlite:${t.file}`, http: { port: 0 } });
    const events: AlertEvent[] = [];
    let snap: StatusSnapshot = {
      at: Date.now(),
      supervisor: null,
      services: [],
      queues: {},
      triggers: [],
      incidents: [],
      source: "supervisor",
    };
    ops = await startOperations({
      config,
      dir: t.dir,
      store: t.store,
      snapshot: async () => ({ ...snap, at: Date.now() }),
      alerts: { emit: (e) => events.push(e) },
      healthEvery: 3_600_000,
    });
    const tokenFile = join(t.dir, ".vigil", "token");
    expect(existsSync(tokenFile)).toBe(true);
    const token = readFileSync(tokenFile, "utf8").trim();
    const url = ops.http!.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    const res = await fetch(`${url}/api/services/x/restart`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(501); // no restartService given

    // No status file yet: degraded (the supervisor is live but has not written it).
    const first = await ops.health();
    expect(first.status).toBe("degraded");
    expect(first.checks.find((c) => c.name === "status-file")!.status).toBe("degraded");
    const healthz = await fetch(`${url}/healthz`);
    expect(healthz.status).toBe(200);

    mkdirSync(join(t.dir, ".vigil"), { recursive: true });
    writeStatusFile(join(t.dir, ".vigil", "status.json"), snap);
    snap = { ...snap, services: [{ name: "w:1", service: "w", kind: "worker", host: "h", state: "crash-looping", pid: null, restarts: 11, heartbeatAgeMs: null, startedAt: null, rssBytes: null }] };
    const second = await ops.health();
    expect(second.status).toBe("unhealthy");
    expect((await fetch(`${url}/healthz`)).status).toBe(503);
  });
});

describe("health watch", () => {
  it("emits one event per worsening and a recovery when ok again", async () => {
    const seq: CheckStatus[] = ["ok", "degraded", "degraded", "unhealthy", "degraded", "ok", "ok"];
    let i = 0;
    const events: AlertEvent[] = [];
    const watch = startHealthWatch({
      run: async () => ({ status: seq[i++]!, at: Date.now(), checks: [{ name: "disk", status: seq[i - 1]!, message: "m." }] }),
      sink: { emit: (e) => events.push(e) },
      host: "h",
      every: 3_600_000,
    });
    try {
      for (let n = 0; n < seq.length; n++) await watch.runOnce();
    } finally {
      watch.stop();
    }
    expect(events.map((e) => `${e.kind}:${String(e.detail?.["status"] ?? e.detail?.["was"])}`)).toEqual([
      "health:degraded",
      "health:unhealthy",
      "health:degraded",
      "recovered:degraded",
    ]);
    expect(events.every((e) => e.subject === "health")).toBe(true);
  });

  it("turns growing dead totals into job-dead events, not the ones already there", async () => {
    const t = await tempStore();
    try {
      await killJobs(t.store, "outline", 2);
      const events: AlertEvent[] = [];
      const watch = startHealthWatch({
        run: async () => ({ status: "ok", at: Date.now(), checks: [] }),
        sink: { emit: (e) => events.push(e) },
        host: "h",
        every: 3_600_000,
        store: t.store,
      });
      await watch.runOnce();
      expect(events).toEqual([]);
      await killJobs(t.store, "outline", 3);
      await watch.runOnce();
      watch.stop();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ kind: "job-dead", subject: "outline", detail: { count: 3, total: 5 } });
    } finally {
      await t.cleanup();
    }
  });
});
