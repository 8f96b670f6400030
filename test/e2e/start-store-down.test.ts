/**
 * `vigil start` while its PostgreSQL server cannot be reached: it waits and retries (one
 * line per try) instead of exiting, and comes up by itself once the server answers. The
 * server stays up for everyone else: the project's store URL points at a port where
 * nothing listens yet; later a plain TCP relay to the real server opens on that port.
 * `--detach` does not leave a supervisor waiting in the background that `vigil stop`
 * could not find: past its wait, the one it started is stopped.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";
import { allRunning, freePort, makeProject, supervisorTest, vigil, waitFor, startVigil } from "./supervisor-helpers.js";

const ready = await requirePg("the start-while-the-store-is-down test");
const server = new URL(PG_URL);

/** The test server's URL with another port. */
function urlOnPort(port: number): string {
  const u = new URL(PG_URL);
  u.port = String(port);
  return u.toString();
}

/** Relays every connection on `port` to the test server. */
function relay(port: number): Promise<{ server: Server; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: server.hostname, port: Number(server.port || 5432) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  return new Promise((ok, fail) => {
    server.on("error", fail);
    server.listen(port, "127.0.0.1", () =>
      ok({
        server,
        close: () => {
          for (const s of sockets) s.destroy();
          return new Promise((r) => server.close(() => r()));
        },
      }),
    );
  });
}

describe.runIf(ready)("vigil start with its PostgreSQL server down", () => {
  const t = supervisorTest();
  const schemas: string[] = [];
  let relays: { close: () => Promise<void> }[] = [];

  afterEach(async () => {
    for (const r of relays) await r.close();
    relays = [];
    for (const s of schemas.splice(0)) await dropSchema(s);
  });

  const project = (port: number, schema: string) =>
    makeProject(
      `store: ${urlOnPort(port)}
schema: ${schema}
queues:
  q: { handler: ./echo.mjs }
services:
  workers: { queues: [q] }
http: { enabled: false }
`,
      { "echo.mjs": "export default async (job) => ({ echoed: job.payload });" },
    );

  it("waits, retrying, and comes up by itself once the server answers", async () => {
    const port = await freePort();
    const schema = freshSchemaName("vigil_startwait");
    schemas.push(schema);
    t.project = project(port, schema);
    const run = startVigil(t.project);
    t.runs.push(run);
    await waitFor("two failed tries", () => run.output().includes("waiting for the store: try 2 failed"), 20_000);
    expect(run.child.exitCode).toBeNull();
    expect(run.output()).toContain(`:${port}/`);

    relays.push(await relay(port));
    await allRunning(t.project, run, 45_000);
    const store = await openPostgresStore(PG_URL, { schema });
    t.store = store;
    const { job } = await store.enqueue("q", { n: 1 });
    const done = await waitFor("the job completed", async () => {
      const j = await store.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    expect(done.result).toEqual({ echoed: { n: 1 } });
  });

  it("--detach gives up after its wait and leaves no supervisor behind", async () => {
    const port = await freePort();
    const schema = freshSchemaName("vigil_startwait");
    schemas.push(schema);
    t.project = project(port, schema);
    const bad = vigil(t.project, ["start", "--detach", "--wait", "soon"]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('--wait: "soon" is not a duration');
    const started = Date.now();
    const res = vigil(t.project, ["start", "--detach", "--wait", "6s"], 60_000);
    expect(res.status).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_500);
    expect(res.stderr).toMatch(/the supervisor \(pid \d+\) is waiting for its store/);
    expect(res.stderr).toMatch(/did not come up within 6.0s and was stopped/);
    expect(res.stderr).toMatch(/waiting for the store: try \d+ failed/);
    const pid = Number(/pid (\d+)/.exec(res.stderr)?.[1]);
    expect(pid).toBeGreaterThan(0);
    await waitFor("the background supervisor to end", () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000);
  }, 70_000);
});
