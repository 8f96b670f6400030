/** Shared by the health end-to-end tests: the CLI's verdict and local webhook receivers. */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { HealthReport } from "../../src/health/checks.js";
import { vigil, type Project } from "./supervisor-helpers.js";

/** `vigil health --json` run as a person would, with its exit code. */
export function cliHealth(p: Project): { code: number | null; report: HealthReport } {
  const r = vigil(p, ["health", "--json"]);
  return { code: r.status, report: JSON.parse(r.stdout) as HealthReport };
}

export const check = (r: HealthReport, name: string) => r.checks.find((c) => c.name === name)!;

/** A receiver on 127.0.0.1; its server goes into `servers` for clean-up. */
export async function listen(servers: Server[], onRequest: (body: string, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => onRequest(body, res));
  });
  server.on("error", () => {});
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

export async function closeServers(servers: Server[]): Promise<void> {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
