/**
 * The host in a multi-host deployment: `VIGIL_HOST` overrides the config's `host`, and
 * `vigil report` keeps one row per host and service.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ENV_HOST, loadConfig } from "../../src/config/load.js";
import { computeReport } from "../../src/health/report.js";

const dirs: string[] = [];
const saved = process.env[ENV_HOST];

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  if (saved === undefined) delete process.env[ENV_HOST];
  else process.env[ENV_HOST] = saved;
});

function configFile(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), "vigil-host-"));
  dirs.push(dir);
  writeFileSync(join(dir, "vigil.yaml"), yaml);
  return join(dir, "vigil.yaml");
}

describe("host name", () => {
  it("comes from the config, and VIGIL_HOST overrides it", async () => {
    const file = configFile("host: alpha\nqueues: { q: { command: [echo] } }\n");
    delete process.env[ENV_HOST];
    expect((await loadConfig(file)).config.host).toBe("alpha");
    process.env[ENV_HOST] = "beta";
    expect((await loadConfig(file)).config.host).toBe("beta");
    process.env[ENV_HOST] = "  ";
    expect((await loadConfig(file)).config.host).toBe("alpha");
  });

  it("separates the same service of two hosts in the report", () => {
    const inc = (id: number, host: string, at: number) => ({ id, service: "workers:1", host, cause: "crash" as const, detectedAt: at, recoveredAt: at + 1000, detail: {} });
    const r = computeReport([inc(1, "a", 10_000), inc(2, "a", 20_000), inc(3, "b", 30_000)], [], { since: 0, until: 100_000, services: ["workers:1", "triggers"], host: "b" });
    expect(r.services.map((s) => [s.host, s.service, s.incidents])).toEqual([
      ["a", "workers:1", 2],
      ["b", "triggers", 0],
      ["b", "workers:1", 1],
    ]);
    expect(r.services.find((s) => s.host === "a")!.downtimeMs).toBe(2000);
  });
});
