/**
 * bench/recovery — how fast Vigil notices a broken worker and gets its job done
 * elsewhere, beside BullMQ 6 on the local Redis for the crash case, and what supervision
 * costs when nothing happens.
 *
 *   npm run bench -- recovery [--runs 5] [--only vigil,bullmq,idle] [--idle-window 60s]
 *
 * Vigil: a real `vigil start` with two worker processes on a fresh SQLite store and the
 * default supervision settings (stallAfter 5 s, killTimeout 5 s). For each fault, `--runs`
 * times, a job is enqueued, the worker that holds it (and has reported it in a heartbeat)
 * is broken (crash and SIGSTOP at a random point of the 1 s heartbeat cycle), and we record
 * - detect: the incident's detectedAt − the moment of the fault;
 * - job-elsewhere: the job's finishedAt (stamped by the other worker) − the fault.
 * Faults: crash (SIGKILL), sigstop (SIGSTOP), blocked (the handler runs `for(;;){}`; the
 * fault time is written by the handler just before it blocks), hung-promise (the handler
 * never settles; queue timeout 2 s, killGrace 5 s default; fault time = the job's start;
 * detect = the job-timeout incident; also worker-replaced = the new process's start).
 * BullMQ: the crash case with its defaults (lockDuration 30 s, stalledInterval 30 s) and
 * tuned to 5 s / 5 s; reps run side by side (each its own queue) since they only wait.
 * Idle: the supervisor plus two idle workers, CPU time from /proc as % of one core, in
 * two windows: the first 20 s after every process reports running (start-up: module
 * compilation, V8's post-start-up memory-reducing collections, the first quick polls), and
 * then, after a settle of 10 s, over `--idle-window` (steady idle, the figure the target
 * is about); /proc counts CPU in 10 ms ticks, so the long window keeps the reading's
 * resolution near 0.02 %. Also the supervisor's RSS.
 * Last line: { "bench": "recovery", "rows": [{ system, scenario, value, unit }] }.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { printTable } from "../src/cli/output.js";
import { requireDuration } from "../src/core/duration.js";
import type { StatusSnapshot } from "../src/core/status.js";
import { killGroup, procInfo } from "../src/os/process.js";
import { openStore } from "../src/store/open.js";
import type { Store } from "../src/store/store.js";
import { askSupervisor } from "../src/supervisor/supervisor.js";
import { bullCrashOnce, cleanupBullScripts } from "./lib/recovery-bullmq.js";
import { median, type BenchRow } from "./lib/report.js";
import { sleep, waitFor as waitUntil } from "./lib/wait.js";

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    only: { type: "string", default: "vigil,bullmq,idle" },
    "idle-window": { type: "string", default: "60s" },
  },
});
const RUNS = Number(opts.runs);
const ONLY = new Set(opts.only!.split(",").map((s) => s.trim()));
const IDLE_MS = requireDuration(opts["idle-window"]!, "--idle-window");
const ROOT = resolve(import.meta.dirname, "..");
const VIGIL = join(ROOT, "bin", "vigil");
/** BullMQ with defaults re-runs a lost job after 30–60 s; give up on a rep after this. */
const BULL_CAP_MS = 150_000;

const rows: BenchRow[] = [];
const detail: string[][] = [];
const waitFor = <T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 60_000, everyMs = 20) =>
  waitUntil(what, fn, timeoutMs, everyMs);

const HANDLER = `import { appendFileSync, writeFileSync } from "node:fs";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default async function handle(job) {
  if (job.attempt === 1) {
    const mode = job.payload.mode;
    if (mode === "hold") await sleep(600_000);
    if (mode === "block") {
      await sleep(1500);
      writeFileSync(new URL("./blocked-" + job.id, import.meta.url), String(Date.now()));
      for (;;) {}
    }
    if (mode === "hang") await new Promise(() => {});
  }
  return { pid: process.pid };
}
`;

const CONFIG = `queues:
  work: { handler: ./work.mjs }
  hang: { handler: ./work.mjs, timeout: 2s }
services:
  workers: { queues: [work, hang], instances: 2 }
http: { enabled: false }
# Every rep is a deliberate fault: keep them from adding up to a crash-loop verdict, and
# from growing the restart backoff (which resets only after minUptime).
supervision: { maxRestarts: 1000/5m, minUptime: 1s }
`;

interface VigilRun {
  dir: string;
  child: ChildProcess;
  store: Store;
}

async function snapshot(dir: string): Promise<StatusSnapshot | null> {
  const r = await askSupervisor(dir, { op: "status" }, 5000);
  return r?.ok ? (r.snapshot as StatusSnapshot) : null;
}

async function allRunning(dir: string): Promise<StatusSnapshot> {
  return waitFor("both workers running", async () => {
    const s = await snapshot(dir);
    return s && s.services.length === 2 && s.services.every((r) => r.state === "running") ? s : null;
  }, 90_000, 100);
}

/** Supervisors started here, stopped on SIGTERM/SIGINT so an interrupted run leaves nothing behind. */
const live = new Set<ChildProcess>();
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    for (const c of live) killGroup(c.pid, "SIGTERM");
    setTimeout(() => process.exit(1), 8000).unref();
  });
}

async function startVigil(): Promise<VigilRun> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-recovery-"));
  writeFileSync(join(dir, "vigil.yaml"), CONFIG);
  writeFileSync(join(dir, "work.mjs"), HANDLER);
  const child = spawn(process.execPath, [VIGIL, "-c", join(dir, "vigil.yaml"), "start"], { detached: true, stdio: ["ignore", "ignore", "inherit"] });
  child.on("error", () => {});
  live.add(child);
  child.on("exit", () => live.delete(child));
  await allRunning(dir);
  return { dir, child, store: await openStore(`sqlite:${join(dir, ".vigil", "vigil.db")}`) };
}

async function stopVigil(run: VigilRun): Promise<void> {
  await run.store.close();
  killGroup(run.child.pid, "SIGTERM");
  await waitFor("supervisor gone", () => run.child.exitCode !== null || run.child.signalCode !== null, 30_000, 100).catch(() => killGroup(run.child.pid, "SIGKILL"));
  rmSync(run.dir, { recursive: true, force: true });
}

/** The worker that holds job `id` and has reported it in a heartbeat. */
async function holder(run: VigilRun, id: number): Promise<{ pid: number; name: string }> {
  return waitFor(`job ${id} held`, async () => {
    const job = await run.store.get(id);
    if (job?.state !== "active") return null;
    const r = (await snapshot(run.dir))?.services.find((s) => s.workerId === job.workerId);
    return r?.pid && (r.activeJobs ?? 0) > 0 ? { pid: r.pid, name: r.name } : null;
  }, 60_000, 50);
}

type Fault = "crash" | "sigstop" | "blocked" | "hung-promise";

async function vigilOnce(run: VigilRun, fault: Fault): Promise<Record<string, number>> {
  const queue = fault === "hung-promise" ? "hang" : "work";
  const mode = { crash: "hold", sigstop: "hold", blocked: "block", "hung-promise": "hang" }[fault];
  const { job } = await run.store.enqueue(queue, { mode });
  const h = await holder(run, job.id);
  let t0: number;
  if (fault === "crash" || fault === "sigstop") {
    // A fault comes at any point of the heartbeat cycle, not just after a beat.
    await sleep(Math.random() * 1000);
    t0 = Date.now();
    process.kill(h.pid, fault === "crash" ? "SIGKILL" : "SIGSTOP");
  } else if (fault === "blocked") {
    t0 = await waitFor("handler blocked", () => { try { return Number(readFileSync(join(run.dir, `blocked-${job.id}`), "utf8")); } catch { return null; } });
  } else {
    t0 = (await run.store.get(job.id))!.startedAt!;
  }
  const cause = { crash: "crash", sigstop: "stall", blocked: "stall", "hung-promise": "job-timeout" }[fault];
  const inc = await waitFor("incident", async () => (await run.store.listIncidents({ service: h.name, since: t0 - 1000 })).find((i) => i.cause === cause && i.detectedAt >= t0 - 1000));
  const done = await waitFor("job completed", async () => {
    const j = await run.store.get(job.id);
    return j?.state === "completed" ? j : null;
  }, 60_000);
  const replaced = await waitFor("worker replaced", async () => {
    const r = (await snapshot(run.dir))?.services.find((s) => s.name === h.name);
    return r && r.state === "running" && r.pid !== h.pid && r.startedAt ? r : null;
  }, 60_000, 50);
  await allRunning(run.dir);
  return { detect: inc.detectedAt - t0, "job-elsewhere": done.finishedAt! - t0, "worker-replaced": replaced.startedAt! - t0 };
}

async function benchVigil(): Promise<void> {
  const run = await startVigil();
  try {
    for (const fault of ["crash", "sigstop", "blocked", "hung-promise"] as Fault[]) {
      const got: Record<string, number[]> = {};
      for (let i = 0; i < RUNS; i++) {
        const r = await vigilOnce(run, fault);
        for (const [k, v] of Object.entries(r)) (got[k] ??= []).push(v);
        process.stderr.write(`vigil ${fault} #${i + 1}: ${Object.entries(r).map(([k, v]) => `${k} ${v} ms`).join(", ")}\n`);
      }
      for (const [k, vs] of Object.entries(got)) {
        rows.push({ system: "vigil-sqlite", scenario: `${fault}-${k}`, value: median(vs), unit: "ms" });
        detail.push(["vigil-sqlite", `${fault}-${k}`, String(median(vs)), vs.join(" ")]);
      }
    }
  } finally {
    await stopVigil(run);
  }
}

async function benchBull(): Promise<void> {
  for (const [variant, settings] of [
    ["defaults", {}],
    ["tuned-5s-5s", { lockDuration: 5000, stalledInterval: 5000 }],
  ] as const) {
    const got = await Promise.all(Array.from({ length: RUNS }, () => bullCrashOnce(settings, BULL_CAP_MS)));
    const ok = got.filter((v): v is number => v !== null);
    const scenario = variant === "defaults" ? "crash-job-elsewhere" : `crash-job-elsewhere-${variant}`;
    if (ok.length) rows.push({ system: "bullmq-redis", scenario, value: median(ok), unit: "ms" });
    detail.push(["bullmq-redis", scenario, ok.length ? String(median(ok)) : "-", got.map((v) => v ?? `>${BULL_CAP_MS}`).join(" ")]);
    process.stderr.write(`bullmq ${variant}: ${got.join(", ")}\n`);
  }
  cleanupBullScripts();
}

async function benchIdle(): Promise<void> {
  const run = await startVigil();
  try {
    const s = await allRunning(run.dir);
    const pids = [run.child.pid!, ...s.services.map((r) => r.pid!)];
    /** CPU of each process over `ms`, as % of one core. */
    const cpuOver = async (ms: number): Promise<number[]> => {
      const cpu0 = pids.map((p) => procInfo(p)?.cpuMs ?? 0);
      const t0 = Date.now();
      await sleep(ms);
      const wall = Date.now() - t0;
      return pids.map((p, i) => (((procInfo(p)?.cpuMs ?? 0) - cpu0[i]!) / wall) * 100);
    };
    const round = (v: number) => Math.round(v * 100) / 100;
    const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
    const startup = await cpuOver(20_000);
    await sleep(10_000);
    const steady = await cpuOver(IDLE_MS);
    const rss = Math.round(((procInfo(run.child.pid!)?.rssBytes ?? 0) / 1048576) * 10) / 10;
    rows.push({ system: "vigil-sqlite", scenario: "idle-cpu-total", value: round(sum(steady)), unit: "%" });
    rows.push({ system: "vigil-sqlite", scenario: "idle-cpu-supervisor", value: round(steady[0]!), unit: "%" });
    rows.push({ system: "vigil-sqlite", scenario: "idle-cpu-per-worker", value: round((steady[1]! + steady[2]!) / 2), unit: "%" });
    rows.push({ system: "vigil-sqlite", scenario: "startup-cpu-total-first-20s", value: round(sum(startup)), unit: "%" });
    rows.push({ system: "vigil-sqlite", scenario: "supervisor-rss", value: rss, unit: "MB" });
  } finally {
    await stopVigil(run);
  }
}

process.stdout.write(`recovery: ${RUNS} runs per fault; Vigil with default supervision (stallAfter 5s, killTimeout 5s, heartbeat 1s; maxRestarts 1000/5m and minUptime 1s so the deliberate faults neither add up to crash-looping nor grow the restart backoff), SQLite store; BullMQ 6 on 127.0.0.1:6379, defaults (lock 30s, stalled check 30s) and 5s/5s\n`);
if (ONLY.has("vigil")) await benchVigil();
if (ONLY.has("idle")) await benchIdle();
if (ONLY.has("bullmq")) await benchBull();
printTable(["SYSTEM", "SCENARIO", "MEDIAN", "RUNS"], [...detail, ...rows.filter((r) => r.unit !== "ms").map((r) => [r.system, r.scenario, `${r.value} ${r.unit}`, ""])]);
process.stdout.write(JSON.stringify({ bench: "recovery", rows }) + "\n");
