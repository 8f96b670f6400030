/**
 * The snapshot `vigil status` shows when no supervisor answers: counts from a real SQLite
 * store, and the last status file's services shown stopped once no supervisor is alive
 * (a killed supervisor leaves a file that still says "running", with old counts).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeSnapshot } from "../../src/health/snapshot.js";
import type { StatusSnapshot } from "../../src/core/status.js";
import { writeStatusFile } from "../../src/project/status-file.js";
import { completeJobs, tempStore, type TempStore } from "./ops-fixtures.js";

describe("storeSnapshot without a live supervisor", () => {
  let t: TempStore;
  beforeEach(async () => {
    t = await tempStore();
  });
  afterEach(() => t.cleanup());

  it("takes counts from the store and shows the status file's services stopped", async () => {
    await completeJobs(t.store, "work", 3);
    const stateDir = join(t.dir, ".vigil");
    mkdirSync(stateDir);
    const stale: StatusSnapshot = {
      at: Date.now(),
      // A pid that is not a running supervisor (no pid file at all).
      supervisor: { pid: 999_999, host: "h", startedAt: Date.now() - 60_000, version: "x" },
      services: [{ name: "workers:1", service: "workers", kind: "worker", host: "h", state: "running", pid: 999_998, restarts: 0, heartbeatAgeMs: 100, startedAt: Date.now() - 60_000, rssBytes: 1 << 26, workerId: "h:workers:1:1", activeJobs: 20 }],
      queues: { work: { scheduled: 0, waiting: 0, active: 20, completed: 0, failed: 0, dead: 0, cancelled: 0 } },
      triggers: [],
      incidents: [],
      source: "supervisor",
    };
    writeStatusFile(join(stateDir, "status.json"), stale);
    const s = await storeSnapshot(t.store, { stateDir });
    expect(s.source).toBe("store");
    expect(s.queues.work).toEqual({ scheduled: 0, waiting: 0, active: 0, completed: 3, failed: 0, dead: 0, cancelled: 0 });
    expect(s.services).toEqual([expect.objectContaining({ name: "workers:1", state: "stopped", pid: null, activeJobs: 0, rssBytes: null })]);
  });

  it("lists every configured queue, with zeros while it has no job, beside the store's other queues", async () => {
    await completeJobs(t.store, "work", 2);
    const s = await storeSnapshot(t.store, { queues: ["outline", "work"] });
    const zeros = { scheduled: 0, waiting: 0, active: 0, completed: 0, failed: 0, dead: 0, cancelled: 0 };
    expect(s.queues).toEqual({ outline: zeros, work: { ...zeros, completed: 2 } });
    expect(Object.keys(s.queues)).toEqual(["outline", "work"]);
    // A queue the config no longer names keeps its row.
    expect((await storeSnapshot(t.store, { queues: ["outline"] })).queues).toEqual({ outline: zeros, work: { ...zeros, completed: 2 } });
  });
});
