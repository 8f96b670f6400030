/**
 * `vigil runs list|show|rerun --json` and `vigil jobs show`'s why, as a person runs them,
 * against `vigil start` with a real worker: a three-stage pipeline run end to end and
 * rerun from its middle stage; a queue whose worker cannot start; a worker frozen with
 * SIGSTOP in the middle of a job.
 */
import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allRunning, cleanUp, makeProject, row, startVigil, vigil, waitFor, type Project, type Running } from "./supervisor-helpers.js";

const CONFIG = `queues:
  outline: { handler: ./stage.mjs, next: draft }
  draft: { handler: ./stage.mjs, next: review }
  review: { handler: ./stage.mjs }
  slow: { handler: ./slow.mjs }
  broken: { handler: ./broken.mjs }
services:
  workers: { queues: [outline, draft, review, slow] }
  cursed: { queues: [broken] }
supervision: { stallAfter: 60s, maxRestarts: 3/1m, crashLoopRetry: 60s }
http: { enabled: false }
`;

const FILES = {
  "stage.mjs": `export default async function stage(job) {
  return { ...job.payload, trail: [...(job.payload.trail ?? []), job.queue] };
}`,
  // Runs until aborted (the job is cancelled at the end of the test).
  "slow.mjs": `export default function slow(job, ctx) {
  return new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(null)));
}`,
  "broken.mjs": `throw new Error("this handler cannot load");\nexport default async function never() {}`,
};

let p: Project;
let run: Running;

function json(args: string[]): any {
  const r = vigil(p, [...args, "--json"], 120_000);
  if (r.status !== 0) throw new Error(`vigil ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  p = makeProject(CONFIG, FILES);
  run = startVigil(p);
  await waitFor("the workers service to run", async () => (await row(p, "workers"))?.state === "running", 60_000);
}, 90_000);

afterAll(async () => {
  await cleanUp(p, [run]);
}, 60_000);

describe("vigil runs", () => {
  it("lists, shows and reruns a three-stage run done by a real worker", async () => {
    const enq = vigil(p, ["enqueue", "outline", '{"idea":"green tea"}', "--key", "idea-tea"]);
    expect(enq.status).toBe(0);
    const done = await waitFor("the run to complete", () => json(["runs", "list"]).find((r: any) => r.key === "idea-tea" && r.state === "completed"), 90_000);
    expect(done.stages.map((s: any) => [s.queue, s.state])).toEqual([["outline", "completed"], ["draft", "completed"], ["review", "completed"]]);
    expect(done.finishedAt).toBeGreaterThanOrEqual(done.createdAt);

    const shown = json(["runs", "show", String(done.stages[1].id)]);
    expect(shown.id).toBe(done.id);
    expect(shown.jobs.map((j: any) => j.queue)).toEqual(["outline", "draft", "review"]);
    const [o, d, r] = shown.jobs;
    expect(d.parentId).toBe(o.id);
    expect(d.payload).toEqual({ idea: "green tea", trail: ["outline"] });
    expect(r.result).toEqual({ idea: "green tea", trail: ["outline", "draft", "review"] });
    for (const j of shown.jobs) {
      // The worker that completed each job, and its host.
      expect(j.workerId).toMatch(/:workers:1:/);
      expect(j.host).toBe(hostname());
      expect(j.queueDelayMs).toBeGreaterThanOrEqual(0);
      expect(j.runMs).toBeGreaterThanOrEqual(0);
    }
    expect(json(["runs", "list", "--search", "idea-"]).map((x: any) => x.id)).toContain(done.id);
    expect(json(["runs", "list", "--search", "GREEN TEA"]).map((x: any) => x.id)).toContain(done.id);

    const again = json(["runs", "rerun", String(done.id), "--from", "draft"]);
    expect(again.rerunOf).toBe(done.id);
    const rerun = await waitFor("the rerun to complete", () => json(["runs", "list"]).find((x: any) => x.id === again.id && x.state === "completed"), 90_000);
    expect(rerun.rerunOf).toBe(done.id);
    expect(rerun.stages.map((s: any) => s.queue)).toEqual(["draft", "review"]);
    const rerunShown = json(["runs", "show", String(again.id)]);
    expect(rerunShown.jobs[0].payload).toEqual({ idea: "green tea", trail: ["outline"] });
    expect(rerunShown.jobs[1].result).toEqual({ idea: "green tea", trail: ["outline", "draft", "review"] });

    const edited = json(["runs", "rerun", String(done.id), "--from", "review", "--payload", '{"idea":"edited"}']);
    await waitFor("the edited rerun to complete", () => json(["runs", "show", String(edited.id)]).state === "completed", 90_000);
    expect(json(["runs", "show", String(edited.id)]).jobs[0].result).toEqual({ idea: "edited", trail: ["review"] });

    const bad = vigil(p, ["runs", "rerun", String(done.id), "--from", "nowhere"]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('has no job on queue "nowhere"');
  }, 240_000);

  it("jobs show says a job waits because its queue has no running worker", async () => {
    const { stdout } = vigil(p, ["enqueue", "broken", "{}", "--json"]);
    const id = JSON.parse(stdout).id ?? JSON.parse(stdout).job?.id;
    expect(typeof id).toBe("number");
    const shown = json(["jobs", "show", String(id)]);
    expect(shown.state).toBe("waiting");
    expect(shown.why).toMatch(/^waiting: queue broken has no running worker \(cursed (starting|restarting|crash-looping|stopped)\)$/);
  }, 120_000);

  it("jobs show names the frozen worker and its heartbeat's growing age", async () => {
    const { stdout } = vigil(p, ["enqueue", "slow", "{}", "--json"]);
    const id: number = JSON.parse(stdout).id ?? JSON.parse(stdout).job?.id;
    await waitFor("the slow job to be active", () => json(["jobs", "show", String(id)]).state === "active", 60_000);
    const w = (await row(p, "workers"))!;
    expect(json(["jobs", "show", String(id)]).why).toMatch(new RegExp(`^active on workers pid ${w.pid}, handler running .+, last heartbeat .+ ago$`));
    process.kill(w.pid!, "SIGSTOP");
    try {
      const why = await waitFor("a heartbeat over 3 s old", () => {
        const s: string = json(["jobs", "show", String(id)]).why;
        const m = /last heartbeat ([\d.]+)s ago/.exec(s);
        return m && Number(m[1]) >= 3 ? s : null;
      }, 60_000);
      expect(why).toMatch(new RegExp(`^active on workers pid ${w.pid}, handler running `));
    } finally {
      process.kill(w.pid!, "SIGCONT");
    }
    vigil(p, ["jobs", "cancel", String(id)]);
  }, 120_000);
});
