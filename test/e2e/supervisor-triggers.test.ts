/**
 * A config with triggers gets a `triggers` process, watched like a worker, whose trigger
 * status shows in the live snapshot; `--role workers` (an extra host) runs no triggers.
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WORK_HANDLER, allRunning, makeProject, openProjectStore, snapshot, startVigil, waitFor, supervisorTest } from "./supervisor-helpers.js";

const t = supervisorTest();

const YAML = `queues:
  work: { handler: ./work.mjs }
triggers:
  ideas: { tail: ideas.log, queue: work, every: 200ms }
services:
  workers: { queues: [work] }
supervision: { stallAfter: 3s, killTimeout: 2s }
http: { enabled: false }
`;

describe("supervisor and triggers", () => {
  it("runs a triggers process that heartbeats, reports its triggers, and feeds the workers", async () => {
    t.project = makeProject(YAML, { "work.mjs": WORK_HANDLER, "ideas.log": "" });
    t.runs.push(startVigil(t.project));
    const rows = await allRunning(t.project, t.runs[0]);
    expect(rows.map((r) => `${r.name}:${r.kind}`).sort()).toEqual(["triggers:worker", "workers:worker"]);
    appendFileSync(join(t.project.dir, "ideas.log"), "first idea\n");
    t.store = await openProjectStore(t.project);
    const done = await waitFor("the line became a completed job", async () => (await t.store!.list({ queue: "work" })).find((j) => j.state === "completed"));
    expect(done.payload).toEqual({ line: "first idea" });
    const s = await waitFor("trigger status", async () => {
      const snap = await snapshot(t.project!);
      return snap?.triggers.find((t) => t.name === "ideas" && t.seen >= 1) ? snap : null;
    });
    expect(s.triggers.map((t) => t.queue)).toEqual(["work"]);
  });

  it("--role workers starts no triggers process", async () => {
    t.project = makeProject(YAML, { "work.mjs": WORK_HANDLER, "ideas.log": "" });
    t.runs.push(startVigil(t.project, ["--role", "workers"]));
    const rows = await allRunning(t.project, t.runs[0]);
    expect(rows.map((r) => r.name)).toEqual(["workers"]);
  });
});
