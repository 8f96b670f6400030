/**
 * No attempt of a job runs beside the attempt it replaces, with real `vigil worker`
 * processes (run `npm run build` first). Each handler records its side effects, with the
 * attempt, in ledger.log:
 * - a handler past its timeout that settles within killGrace: its retry starts only after
 *   it settled;
 * - a handler that ignores its abort past killGrace: its worker exits wedged, and the retry
 *   starts only once that process is gone;
 * - a worker frozen (SIGSTOP) past `stallAfter` and woken: it notices by its own clock and
 *   exits without finishing or completing the job it held.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import { lines, waitFor } from "./supervisor-helpers.js";
import { started, startWorker, workerSuite, type WorkerProject } from "./worker-helpers.js";

const CONFIG = `
store: sqlite:vigil.db
queues:
  late: { handler: ./ledger.mjs, timeout: 500ms, killGrace: 5s, lease: 1s, backoff: { base: 100ms, max: 100ms } }
  stuck: { handler: ./ledger.mjs, timeout: 500ms, killGrace: 1s, lease: 2s, backoff: { base: 100ms, max: 100ms } }
  slow: { handler: ./ledger.mjs, lease: 60s }
`;

/**
 * First attempts, per queue: `late` ignores its abort and ends 2.5 s later, past its 1 s
 * lease (which must be renewed meanwhile, or another worker takes the job); `stuck` ignores
 * it for ever, noting a tick every 100 ms; `slow` ends 2.5 s after it starts. Later
 * attempts end at once.
 */
const LEDGER = `import { appendFileSync } from "node:fs";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default async function ledger(job) {
  const note = (what) => appendFileSync(new URL("./ledger.log", import.meta.url), job.id + " " + job.attempt + " " + what + " " + process.pid + "\\n");
  note("start");
  if (job.attempt === 1 && job.queue === "late") await sleep(3000);
  if (job.attempt === 1 && job.queue === "stuck") {
    setInterval(() => note("tick"), 100);
    await new Promise(() => {});
  }
  if (job.attempt === 1 && job.queue === "slow") await sleep(2500);
  note("end");
  return { pid: process.pid, attempt: job.attempt };
}
`;

let p: WorkerProject;
let store: Store;
workerSuite(CONFIG, { "ledger.mjs": LEDGER }, (proj, s) => {
  p = proj;
  store = s;
});

/** The ledger lines of job `id`, as [attempt, what, pid]. */
function ledgerOf(id: number): [number, string, number][] {
  return lines(join(p.dir, "ledger.log"))
    .map((l) => l.split(" "))
    .filter((f) => f[0] === String(id))
    .map((f) => [Number(f[1]), f[2]!, Number(f[3])]);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe("a retry never overlaps the attempt it replaces", () => {
  it("a timed-out handler that settles within killGrace keeps its lease and is failed only then: its retry starts after it ended", async () => {
    const a = startWorker(p, "late-a", "late");
    await started(a);
    const { job } = await store.enqueue("late", {});
    await waitFor("attempt 1 running on a", () => ledgerOf(job.id).some(([n, what]) => n === 1 && what === "start"));
    const b = startWorker(p, "late-b", "late");
    await started(b);
    const done = await waitFor("the retry completed", async () => {
      const j = await store.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    await waitFor("attempt 1 ended", () => ledgerOf(job.id).some(([n, what]) => n === 1 && what === "end"));
    const ledger = ledgerOf(job.id).map(([n, what]) => `${n} ${what}`);
    expect(ledger).toEqual(["1 start", "1 end", "2 start", "2 end"]);
    expect(done.attempt).toBe(2);
    expect(done.history.map((h) => h.outcome)).toEqual(["timeout"]);
  });

  it("a handler that ignores its abort past killGrace: the worker exits wedged and the retry starts only after", async () => {
    const a = startWorker(p, "stuck-a", "stuck");
    await started(a);
    const { job } = await store.enqueue("stuck", {});
    await waitFor("attempt 1 running on a", () => ledgerOf(job.id).some(([n, what]) => n === 1 && what === "tick"));
    const b = startWorker(p, "stuck-b", "stuck");
    await started(b);
    expect(await a.exited).toEqual({ code: 70, signal: null });
    const done = await waitFor("the retry completed", async () => {
      const j = await store.get(job.id);
      return j?.state === "completed" ? j : null;
    });
    const ledger = ledgerOf(job.id);
    const retryAt = ledger.findIndex(([n, what]) => n === 2 && what === "start");
    expect(retryAt).toBeGreaterThan(0);
    expect(ledger.slice(retryAt).filter(([n]) => n === 1)).toEqual([]);
    expect(done.result).toEqual({ pid: b.pid, attempt: 2 });
  });

  it("a worker frozen past stallAfter and woken exits without finishing or completing its job", async () => {
    const a = startWorker(p, "slow-a", "slow", { VIGIL_STALL_AFTER_MS: "1000" });
    await started(a);
    const { job } = await store.enqueue("slow", {});
    await waitFor("attempt 1 running on a", () => ledgerOf(job.id).some(([n, what]) => n === 1 && what === "start"));
    a.child.kill("SIGSTOP");
    // Frozen past stallAfter and past the handler's own 2.5 s: woken, its timer is due.
    await sleep(3000);
    a.child.kill("SIGCONT");
    await waitFor("a to exit or to finish the job", () => a.child.exitCode !== null || ledgerOf(job.id).length > 1);
    expect(ledgerOf(job.id).map(([n, what]) => `${n} ${what}`)).toEqual(["1 start"]);
    const exit = await a.exited;
    expect(exit).toEqual({ code: 75, signal: null });
    const j = (await store.get(job.id))!;
    // Nothing recorded by the frozen worker: the job waits for its lease to be freed.
    expect([j.state, j.workerId, j.history]).toEqual(["active", "slow-a", []]);
    expect(a.logs().some((l) => l.msg === "this process was frozen; its jobs are aborted, not completed")).toBe(true);
    await store.cancel(job.id);
  });
});
