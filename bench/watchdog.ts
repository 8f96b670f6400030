/**
 * bench/watchdog — what the watchdog thread (an inspector session with the debugger
 * enabled on the main thread) costs a worker.
 *
 *   npm run bench -- watchdog [--jobs 20000] [--runs 5] [--idle 10s]
 *
 * Each run is a fresh process and a fresh SQLite file, debugger off and on alternating so
 * machine noise hits both alike:
 * - drain-c50: `--jobs` no-op jobs enqueued in bulk, then one in-process Worker at
 *   concurrency 50 drains them; timed from start() to the last completion committed;
 * - drain-cpu: the process's CPU time (all threads, the watchdog's included) per job in
 *   that drain. On a shared machine wall-clock rates swing with other load; CPU time per
 *   job is the steadier measure of what the debugger costs;
 * - idle-cpu: the same worker with nothing to do for `--idle`; CPU time used / wall time.
 * The last line of output is one JSON object: { bench: "watchdog", rows: [...] }.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { requireDuration } from "../src/core/duration.js";
import { printTable } from "../src/cli/output.js";
import { openSqliteStore } from "../src/store/sqlite/store.js";
import { Watchdog } from "../src/child/watchdog.js";
import { Worker } from "../src/worker/worker.js";
import { median } from "./lib/report.js";

const { values: opts } = parseArgs({
  options: {
    jobs: { type: "string", default: "20000" },
    runs: { type: "string", default: "5" },
    idle: { type: "string", default: "10s" },
    child: { type: "string" },
  },
});

interface ChildResult {
  jobsPerSec: number;
  cpuUsPerJob: number;
  idleCpuPct: number;
}

async function child(variant: string, jobs: number, idleMs: number): Promise<ChildResult> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-wd-"));
  const store = await openSqliteStore(join(dir, "vigil.db"));
  const watchdog = variant === "on" ? new Watchdog({ file: join(dir, "stack.json") }) : undefined;
  await watchdog?.start();
  await store.enqueueMany(Array.from({ length: jobs }, (_, i) => ({ queue: "noop", payload: { i } })));
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));
  const worker = new Worker(store, {
    queues: { noop: { concurrency: 50, handler: async () => null } },
    logger: pino({ level: "silent" }),
  });
  worker.on("completed", () => {
    if (++done === jobs) allDone();
  });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  worker.start();
  await finished;
  const jobsPerSec = jobs / ((performance.now() - t0) / 1000);
  const c = process.cpuUsage(c0);
  const cpuUsPerJob = (c.user + c.system) / jobs;
  // Idle: let the drain's tail settle, then measure CPU over a quiet stretch.
  await new Promise((r) => setTimeout(r, 1000));
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, idleMs));
  const cpu = process.cpuUsage(cpu0);
  const idleCpuPct = ((cpu.user + cpu.system) / 1000 / (performance.now() - w0)) * 100;
  await worker.stop();
  await watchdog?.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return { jobsPerSec, cpuUsPerJob, idleCpuPct };
}

function runChild(variant: string, jobs: number, idle: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const self = fileURLToPath(import.meta.url);
    const c = spawn(
      process.execPath,
      ["--import", "tsx", self, "--child", variant, "--jobs", String(jobs), "--idle", idle],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    c.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    c.on("error", reject);
    c.on("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      if (code === 0 && line.startsWith("{")) resolve(JSON.parse(line) as ChildResult);
      else reject(new Error(`child (${variant}) exited with ${code}: ${out}`));
    });
  });
}

async function main(): Promise<void> {
  const jobs = Number(opts.jobs);
  const idleMs = requireDuration(opts.idle!, "--idle");
  if (opts.child) {
    process.stdout.write(JSON.stringify(await child(opts.child, jobs, idleMs)) + "\n");
    process.exit(0);
  }
  const runs = Number(opts.runs);
  const results: Record<string, ChildResult[]> = { off: [], on: [] };
  process.stdout.write(`watchdog: ${jobs} no-op jobs, concurrency 50, SQLite (synchronous NORMAL), ${runs} runs, idle ${opts.idle}\n`);
  for (let r = 0; r < runs; r++) {
    for (const v of r % 2 ? ["on", "off"] : ["off", "on"]) results[v]!.push(await runChild(v, jobs, opts.idle!));
  }
  const drain = (v: string) => median(results[v]!.map((x) => x.jobsPerSec));
  const idle = (v: string) => median(results[v]!.map((x) => x.idleCpuPct));
  const cpu = (v: string) => median(results[v]!.map((x) => x.cpuUsPerJob));
  const cost = (1 - drain("on") / drain("off")) * 100;
  const cpuCost = (cpu("on") / cpu("off") - 1) * 100;
  const r2 = (n: number) => Math.round(n * 100) / 100;
  printTable(
    ["debugger", "drain-c50 jobs/s (median)", "runs", "CPU µs/job", "runs", "idle CPU %"],
    ["off", "on"].map((v) => [
      v,
      Math.round(drain(v)),
      results[v]!.map((x) => Math.round(x.jobsPerSec)).join(" "),
      r2(cpu(v)),
      results[v]!.map((x) => r2(x.cpuUsPerJob)).join(" "),
      r2(idle(v)),
    ]),
  );
  process.stdout.write(
    `cost of an enabled debugger: ${r2(cpuCost)} % more CPU per job; ${r2(cost)} % lower drain rate (wall clock, noisier)\n`,
  );
  const rows = [
    { system: "vigil-sqlite", scenario: "drain-c50-debugger-off", value: Math.round(drain("off")), unit: "jobs/s" },
    { system: "vigil-sqlite", scenario: "drain-c50-debugger-on", value: Math.round(drain("on")), unit: "jobs/s" },
    { system: "vigil-sqlite", scenario: "debugger-drain-cost", value: r2(cost), unit: "%" },
    { system: "vigil-sqlite", scenario: "drain-cpu-us-per-job-debugger-off", value: r2(cpu("off")), unit: "us" },
    { system: "vigil-sqlite", scenario: "drain-cpu-us-per-job-debugger-on", value: r2(cpu("on")), unit: "us" },
    { system: "vigil-sqlite", scenario: "debugger-cpu-cost", value: r2(cpuCost), unit: "%" },
    { system: "vigil-sqlite", scenario: "idle-cpu-debugger-off", value: r2(idle("off")), unit: "%" },
    { system: "vigil-sqlite", scenario: "idle-cpu-debugger-on", value: r2(idle("on")), unit: "%" },
  ];
  process.stdout.write(JSON.stringify({ bench: "watchdog", rows }) + "\n");
}

await main();
