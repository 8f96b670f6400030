/**
 * The HTTP server as `vigil start` runs it: the live status, a restart through the API
 * that needs the generated token and is then counted as a manual intervention by
 * `vigil report`, and /metrics following the restart.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Report } from "../../src/health/report.js";
import type { StatusSnapshot } from "../../src/core/status.js";
import { snapshot, startWithHttp, supervisorTest, vigil, waitFor } from "./supervisor-helpers.js";

const t = supervisorTest();

describe("HTTP server under vigil start", () => {
  it("serves live status, restarts with the token only, and counts it as manual", async () => {
    const { base, rows } = await startWithHttp(t);
    const p = t.project;
    const status = await waitFor("the API", async () => {
      const res = await fetch(`${base}/api/status`).catch(() => null);
      return res?.ok ? ((await res.json()) as StatusSnapshot) : null;
    });
    expect(status.source).toBe("supervisor");
    expect(status.services.map((s) => s.name).sort()).toEqual(["workers:1", "workers:2"]);

    const restart = (auth?: string) =>
      fetch(`${base}/api/services/workers:2/restart`, { method: "POST", headers: auth ? { authorization: auth } : {} });
    expect((await restart()).status).toBe(401);
    expect((await restart("Bearer not-the-token")).status).toBe(401);
    const token = readFileSync(join(p.dir, ".vigil", "token"), "utf8").trim();
    expect((await restart(`Bearer ${token}`)).status).toBe(202);

    const old = rows.find((r) => r.name === "workers:2")!.pid;
    await waitFor("a new workers:2", async () => {
      const r = (await snapshot(p))?.services.find((s) => s.name === "workers:2");
      return r?.state === "running" && r.pid !== old;
    });
    const report = await waitFor("the manual restart in the report", () => {
      const r = JSON.parse(vigil(p, ["report", "--json"]).stdout) as Report;
      return r.manualInterventions === 1 ? r : null;
    });
    const w2 = report.services.find((s) => s.service === "workers:2")!;
    expect(w2).toMatchObject({ manualInterventions: 1, restarts: 1, failures: 0 });
    expect(report.services.find((s) => s.service === "workers:1")?.manualInterventions ?? 0).toBe(0);

    const metrics = await waitFor("restart counted in /metrics", async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return /^vigil_service_restarts_total\{service="workers:2"\} 1$/m.test(text) ? text : null;
    });
    expect(metrics).toMatch(/^vigil_service_up\{service="workers:1"\} 1$/m);
    expect(metrics).toMatch(/^vigil_incidents_total\{service="workers:2",cause="stop"\} 1$/m);
  });
});
