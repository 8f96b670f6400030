/**
 * A crash-looping service under a real `vigil start`: `vigil health` exits 2 naming it, an
 * old waiting job turns `waiting-age` degraded, and a local webhook receiver gets one
 * crash and one crash-loop alert however often it crashes — while a second receiver hangs
 * and the supervisor keeps answering.
 */
import type { Server, ServerResponse } from "node:http";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AlertMessage } from "../../src/health/alerts.js";
import { check, cliHealth, closeServers, listen } from "./health-helpers.js";
import { lines, makeProject, openProjectStore, snapshot, startVigil, supervisorTest, vigil, waitFor, WORK_HANDLER } from "./supervisor-helpers.js";

const servers: Server[] = [];
// Registered first, so it runs after the supervisor is stopped (after-hooks run in reverse).
afterEach(() => closeServers(servers));
const t = supervisorTest();

describe("health under a crash loop", () => {
  it("flips crash-loop and waiting-age; one crash-loop alert while a receiver hangs", async () => {
    const got: AlertMessage[] = [];
    const hung: ServerResponse[] = [];
    const recorder = await listen(servers, (body, res) => {
      got.push(JSON.parse(body) as AlertMessage);
      res.writeHead(204).end();
    });
    const hanging = await listen(servers, (_body, res) => hung.push(res));
    t.project = makeProject(
      `queues:
  orphan: { handler: ./work.mjs }
services:
  quick: { command: [node, quick.mjs] }
supervision: { stallAfter: 2s, killTimeout: 1s, maxRestarts: 3/1m, crashLoopRetry: 2s }
health: { maxWaitingAge: 2s }
http: { enabled: false }
alerts:
  - { webhook: "${hanging}", timeout: 1s }
  - { webhook: "${recorder}" }
`,
      {
        "work.mjs": WORK_HANDLER,
        // Up 600 ms before it fails: a retry is a visible stretch of each crash-loop cycle.
        "quick.mjs": `import { appendFileSync } from "node:fs"; appendFileSync("spawns.log", Date.now() + "\\n"); setTimeout(() => process.exit(3), 600);`,
      },
    );
    t.runs.push(startVigil(t.project));
    const p = t.project;

    const looping = await waitFor("crash-loop unhealthy", () => {
      const r = cliHealth(p);
      return check(r.report, "crash-loop").status === "unhealthy" ? r : null;
    }, 45_000, 500);
    expect(looping.code).toBe(2);
    expect(check(looping.report, "crash-loop").message).toContain("quick");

    // A job on a queue no service runs: it only gets older.
    const store = (t.store = await openProjectStore(p));
    await store.enqueue("orphan", { n: 1 });
    const waiting = await waitFor("waiting-age degraded", () => {
      const r = cliHealth(p).report;
      return check(r, "waiting-age").status === "degraded" ? r : null;
    }, 30_000, 500);
    expect(check(waiting, "waiting-age").message).toContain("queue orphan");

    // Crash-loop retries go on, and the service stays crash-looping through each of them
    // (a retry has not shown the cause is gone): health does not flip to healthy and back.
    const states = new Set<string>();
    const spawnsNow = lines(join(p.dir, "spawns.log")).length;
    await waitFor("two more crash-loop retries", async () => {
      const state = (await snapshot(p))?.services.find((s) => s.name === "quick")?.state;
      if (state) states.add(state);
      return lines(join(p.dir, "spawns.log")).length >= Math.max(6, spawnsNow + 2);
    }, 45_000, 100);
    expect([...states]).toEqual(["crash-looping"]);
    await waitFor("the crash-loop alert", () => got.some((m) => m.kind === "crash-loop"), 15_000);
    expect(got.filter((m) => m.kind === "crash-loop" && m.subject === "quick")).toHaveLength(1);
    expect(got.filter((m) => m.kind === "crash" && m.subject === "quick")).toHaveLength(1);
    expect(hung.length).toBeGreaterThanOrEqual(1);
    expect((await snapshot(p))?.services.find((s) => s.name === "quick")?.state).toBe("crash-looping");

    // A person's restart, sent while it waits for its next retry, starts over: that start
    // shows `starting`, not `crash-looping`.
    await waitFor("quick waiting for its next retry", async () => {
      const q = (await snapshot(p))?.services.find((s) => s.name === "quick");
      return q?.state === "crash-looping" && q.pid === null && (q.nextRestartAt ?? 0) - Date.now() > 1000;
    }, 15_000, 50);
    expect(vigil(p, ["restart", "quick"]).status).toBe(0);
    await waitFor("the restarted start shown as starting", async () => (await snapshot(p))?.services.find((s) => s.name === "quick")?.state === "starting", 10_000, 50);

  });
});
