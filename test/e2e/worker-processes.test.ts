/**
 * Real `vigil worker` processes on one SQLite file (run `npm run build` first): many
 * workers complete every job exactly once; a SIGKILLed worker's jobs complete on another
 * (released by the supervisor's call, or by lease expiry); a SIGSTOPped worker's late
 * completion is refused; a crash between "handler returned" and "completion committed"
 * leaves exactly one next-stage job.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import { groupMembers, isAlive, killGroup, procInfo } from "../../src/os/process.js";
import type { Store } from "../../src/store/store.js";
import { waitFor } from "./supervisor-helpers.js";
import { started, startWorker, workerSuite, type WorkerProject } from "./worker-helpers.js";

const CONFIG = `
store: sqlite:vigil.db
queues:
  noop: { handler: ./noop.mjs, concurrency: 50 }
  held: { handler: ./held.mjs, concurrency: 4, lease: 10s }
  short: { handler: ./held.mjs, concurrency: 4, lease: 1s }
  first: { handler: ./first.mjs, next: second }
  second: { handler: ./noop.mjs }
  wedge: { handler: ./wedge.mjs, timeout: 300ms, killGrace: 300ms, attempts: 1 }
  cmd: { command: [${JSON.stringify(process.execPath)}, ./sleeper.mjs] }
`;

const FILES = {
  // Records every run of every job, per process, so a double run cannot hide.
  "noop.mjs": `import { appendFileSync } from "node:fs";
export default async function noop(job) {
  appendFileSync(new URL("./runs-" + process.pid + ".log", import.meta.url), job.id + "\\n");
  return { pid: process.pid };
}`,
  // HOLD=ms: run that long first (ignoring the abort, as a careless handler would).
  "held.mjs": `export default async function held(job) {
  const hold = Number(process.env.HOLD ?? 0);
  if (hold > 0) await new Promise((r) => setTimeout(r, hold));
  return { pid: process.pid, attempt: job.attempt };
}`,
  // A command that outlives nothing on its own: records its pid, then waits for ever.
  "sleeper.mjs": `import { writeFileSync } from "node:fs";
writeFileSync(new URL("./sleeper.pid", import.meta.url), String(process.pid));
setInterval(() => {}, 1000);`,
  "wedge.mjs": `export default function wedge() { return new Promise(() => {}); }`,
  "first.mjs": `export default async function first(job) { return { from: job.id, pid: process.pid }; }`,
};

let p: WorkerProject;
let store: Store;
workerSuite(CONFIG, FILES, (proj, s) => {
  p = proj;
  store = s;
});

async function states(queue: string): Promise<Job[]> {
  return store.list({ queue, limit: 0 });
}

/** Waits until every one of `ids` is active on `workerId`. */
async function whenActive(ids: number[], workerId: string): Promise<void> {
  await waitFor(`jobs ${ids.join(", ")} active on ${workerId}`, async () => {
    const jobs = await Promise.all(ids.map((id) => store.get(id)));
    return jobs.every((j) => j?.state === "active" && j.workerId === workerId);
  });
}

describe("vigil worker processes", () => {
  it("4 workers on one SQLite file complete 20,000 jobs, each exactly once", async () => {
    const workers = [1, 2, 3, 4].map((i) => startWorker(p, `w${i}`, "noop"));
    await Promise.all(workers.map(started));
    await store.enqueueMany(Array.from({ length: 20_000 }, (_, i) => ({ queue: "noop", payload: { i } })));
    await waitFor(
      "all 20,000 completed",
      async () => (await store.stats()).noop?.completed === 20_000,
      // Generous: a shared 2-core machine under other test runs can be many times slower.
      120_000,
      250,
    ).catch(async (err: Error) => {
      // Say where it stood, and what each worker last logged, to tell a stall from slowness.
      const last = workers.map((w) => `${w.id}: ${JSON.stringify(w.logs().slice(-3))}`).join("\n");
      throw new Error(`${err.message}; counts ${JSON.stringify((await store.stats()).noop)}\n${last}`);
    });
    const runs = new Map<number, number>();
    const pids = new Set<string>();
    for (const f of readdirSync(p.dir).filter((n) => n.startsWith("runs-"))) {
      for (const line of readFileSync(join(p.dir, f), "utf8").split("\n").filter(Boolean)) {
        runs.set(Number(line), (runs.get(Number(line)) ?? 0) + 1);
        pids.add(f);
      }
    }
    expect(runs.size).toBe(20_000);
    expect([...runs.values()].filter((n) => n !== 1)).toEqual([]);
    const jobs = await states("noop");
    expect(jobs.filter((j) => j.state !== "completed" || j.attempt !== 1)).toEqual([]);
    // The work was shared: more than one process ran handlers.
    expect(pids.size).toBeGreaterThan(1);
  }, 150_000);

  it("a SIGKILLed worker's jobs complete on another once the supervisor releases them", async () => {
    const a = startWorker(p, "kill-a", "held", { HOLD: "600000" });
    await started(a);
    const jobs = await store.enqueueMany([1, 2, 3].map((i) => ({ queue: "held", payload: { i } })));
    await whenActive(jobs.map((r) => r.job.id), "kill-a");
    killGroup(a.pid, "SIGKILL");
    await a.exited;
    const b = startWorker(p, "kill-b", "held");
    await started(b);
    // What the supervisor does when it sees a worker process die.
    expect(await store.releaseWorker("kill-a", "crash")).toBe(3);
    for (const { job } of jobs) {
      const done = await waitFor(`job ${job.id} completed`, async () => {
        const j = await store.get(job.id);
        return j?.state === "completed" ? j : null;
      });
      expect(done.result).toEqual({ pid: b.pid, attempt: 2 });
      expect(done.history.map((h) => [h.outcome, h.workerId])).toEqual([["stall", "kill-a"]]);
    }
  });

  it("without the supervisor, an expired lease brings the job back to another worker", async () => {
    const a = startWorker(p, "exp-a", "short", { HOLD: "600000" });
    await started(a);
    const { job } = await store.enqueue("short", { n: 1 });
    await whenActive([job.id], "exp-a");
    killGroup(a.pid, "SIGKILL");
    await a.exited;
    // Nobody calls releaseWorker: worker B finds the expired lease as it polls.
    const b = startWorker(p, "exp-b", "short");
    const done = await waitFor("completed by b", async () => {
      const j = await store.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    expect(done.result).toEqual({ pid: b.pid, attempt: 2 });
    expect(done.history.map((h) => h.outcome)).toEqual(["stall"]);
  });

  it("a SIGSTOPped worker resumed after its job was taken over cannot overwrite the result", async () => {
    const a = startWorker(p, "stop-a", "short", { HOLD: "2500" });
    await started(a);
    const { job } = await store.enqueue("short", { n: 2 });
    await whenActive([job.id], "stop-a");
    killGroup(a.pid, "SIGSTOP");
    const b = startWorker(p, "stop-b", "short");
    const done = await waitFor("completed by b", async () => {
      const j = await store.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    expect(done.result).toEqual({ pid: b.pid, attempt: 2 });
    killGroup(a.pid, "SIGCONT");
    // A wakes, finds its lease gone, and says so; its own result is never written.
    await waitFor("a to report the lost lease", () =>
      a.logs().some((l) => l.jobId === job.id && String(l.msg).startsWith("lease lost")),
    );
    // Give A's handler time to return (HOLD) and try to finish, then look again.
    await waitFor("a's handler to have returned", async () => Date.now() - done.finishedAt! > 3000, 10_000);
    const after = (await store.get(job.id))!;
    expect(after.state).toBe("completed");
    expect(after.result).toEqual({ pid: b.pid, attempt: 2 });
    expect(after.finishedAt).toBe(done.finishedAt);
  });

  it("a crash after the handler returned and before the completion leaves exactly one next-stage job", async () => {
    const a = startWorker(p, "crash-a", "first,second", { VIGIL_TEST_CRASH: "before-complete" });
    await started(a);
    const { job } = await store.enqueue("first", { idea: "x" });
    const exit = await a.exited;
    expect(exit.signal).toBe("SIGKILL");
    expect((await store.get(job.id))!.state).toBe("active");
    expect(await states("second")).toEqual([]);
    await store.releaseWorker("crash-a", "crash");
    const b = startWorker(p, "crash-b", "first,second");
    await started(b);
    const seconds = await waitFor("the next stage done", async () => {
      const s = await states("second");
      return s.length > 0 && s.every((j) => j.state === "completed") ? s : null;
    });
    expect(seconds).toHaveLength(1);
    expect(seconds[0]!.parentId).toBe(job.id);
    expect(seconds[0]!.payload).toEqual({ from: job.id, pid: b.pid });
    const first = (await store.get(job.id))!;
    expect(first.state).toBe("completed");
    expect(first.attempt).toBe(2);
  });

  it("SIGTERM drains: the process exits 0 and gives back a job still running, attempt not counted", async () => {
    const a = startWorker(p, "term-a", "held", { HOLD: "600000" }, { args: ["--shutdown-timeout", "300ms"] });
    await started(a);
    const { job } = await store.enqueue("held", { n: 3 });
    await whenActive([job.id], "term-a");
    a.child.kill("SIGTERM");
    expect(await a.exited).toEqual({ code: 0, signal: null });
    const j = (await store.get(job.id))!;
    expect(j.state).toBe("waiting");
    expect(j.attempt).toBe(0);
    expect(j.history).toEqual([]);
  });

  it("a wedged handler makes the process give back its other jobs and exit 70", async () => {
    const a = startWorker(p, "wedge-a", "wedge,held", { HOLD: "600000" });
    await started(a);
    const held = await store.enqueueMany([1, 2].map((i) => ({ queue: "held", payload: { i } })));
    await whenActive(held.map((r) => r.job.id), "wedge-a");
    const { job } = await store.enqueue("wedge", {});
    expect(await a.exited).toEqual({ code: 70, signal: null });
    // Its handler could still run until the process ended: the attempt is left to the
    // lease (or the supervisor's release), never failed early for a retry to overlap it.
    const w = (await store.get(job.id))!;
    expect([w.state, w.workerId, w.history]).toEqual(["active", "wedge-a", []]);
    await store.cancel(job.id);
    for (const { job: h } of held) {
      const j = (await store.get(h.id))!;
      expect([j.state, j.attempt]).toEqual(["waiting", 0]);
    }
    expect(a.logs().some((l) => l.msg === "handler is wedged" && l.jobId === job.id)).toBe(true);
  });

  it("speaks to its supervisor over IPC: ready, heartbeats naming its jobs, drain on request", async () => {
    const a = startWorker(p, "ipc-a", "held", { HOLD: "600000" }, { ipc: true, args: ["--shutdown-timeout", "300ms"] });
    const ready = await waitFor("ready", () => a.messages.find((m) => m.t === "ready"));
    expect(ready).toEqual({ t: "ready", workerId: "ipc-a", pid: a.pid, queues: ["held"] });
    const { job } = await store.enqueue("held", { n: 4 });
    const hb = await waitFor("a heartbeat naming the job", () =>
      a.messages.find((m) => m.t === "hb" && m.active.some((j) => j.jobId === job.id)),
    );
    // Earlier tests gave back held jobs too; this worker may run those beside ours.
    expect(hb.t === "hb" && hb.active).toContainEqual(expect.objectContaining({ jobId: job.id, queue: "held", attempt: 1 }));
    expect(hb.t === "hb" && hb.rssBytes).toBeGreaterThan(0);
    a.child.send({ t: "drain" });
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(a.messages.some((m) => m.t === "draining")).toBe(true);
    const j = (await store.get(job.id))!;
    expect([j.state, j.attempt]).toEqual(["waiting", 0]);
  });

  it("a command left running by a SIGKILLed worker is ended when the next worker starts", async () => {
    const a = startWorker(p, "cmd-a", "cmd");
    await started(a);
    const { job } = await store.enqueue("cmd", {});
    const pidFile = join(p.dir, "sleeper.pid");
    const cmdPid = await waitFor("the command to run", () => {
      try {
        return Number(readFileSync(pidFile, "utf8"));
      } catch {
        return null;
      }
    });
    killGroup(a.pid, "SIGKILL"); // the worker's own group: its command lives in another
    await a.exited;
    expect(isAlive(cmdPid) && procInfo(cmdPid)?.state !== "Z").toBe(true);
    await store.releaseWorker("cmd-a", "crash");
    const b = startWorker(p, "cmd-b", "wedge");
    await started(b);
    await waitFor("the orphaned command to be gone", () => groupMembers(cmdPid).length === 0);
    expect(b.logs().some((l) => l.msg === "ended a command a previous worker left running" && l.jobId === job.id)).toBe(true);
  });
});
