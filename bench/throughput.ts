/**
 * bench/throughput — Vigil against its peers, in one run, on this machine's local servers.
 *
 *   npm run bench -- throughput [--jobs 20000] [--runs 3] [--only vigil,bullmq,raw]
 *                               [--cap 30s] [--deadline 60m] [--batch 1000]
 *                               [--latency-jobs 200] [--every 50ms]
 *                               [--scenarios enqueue,drain,pickup] [--concurrency 1,10,50]
 *
 * Scenarios, each on a fresh store or queue (new SQLite file, PostgreSQL schema, Redis
 * key prefix), all jobs no-ops with a `{ i, t }` payload:
 * - enqueue-single: one job at a time, each awaited, from the benchmark process;
 * - enqueue-bulk: `--batch` jobs per call (one transaction, or one batch call);
 * - drain-c1 / c10 / c50: `--jobs` jobs enqueued in bulk first, then ONE worker process
 *   at that concurrency drains them. Timed inside the worker process, from the moment
 *   the connected worker is told to start claiming until the store reports none
 *   outstanding (polled every 2 ms once the last handler has run), so every completion
 *   is recorded before the clock stops;
 * - pickup-p50 / p99: a producer process enqueues one job every `--every`, a worker
 *   process (concurrency 10) records handler start − enqueue time (both read from the
 *   machine's monotonic clock, which all processes share) over `--latency-jobs` jobs
 *   after 10 unmeasured warm-up jobs.
 * raw-sqlite is the embedded ceiling: a bare better-sqlite3 loop in this process
 * (drain-tx1: claim and complete one job per transaction; drain-tx50: fifty).
 *
 * Every step is capped (`--cap`): a system too slow to finish reports the rate of what it
 * did, marked partial. A global `--deadline` kills every child and prints what was measured.
 * The last line of output is one JSON object: { bench: "throughput", rows: [...] }; each
 * row is { system, variant, scenario, value, unit, runs, partial? }, and the ratios are
 * rows too (unit "x", scenario like "drain-c50-vs-bullmq-redis").
 *
 * Environment: VIGIL_BENCH_PG (PostgreSQL URL, default postgres://postgres@127.0.0.1:5432/test);
 * VIGIL_BENCH_CPU_PROF=DIR writes a CPU profile of every child process (the worker) there.
 */
import { parseArgs } from "node:util";
import { requireDuration } from "../src/core/duration.js";
import { Child } from "./lib/child.js";
import { RAW_SETTINGS, RawSqlite } from "./lib/raw-sqlite.js";
import { percentile, printResults, ratios, summarise } from "./lib/report.js";
import type { Sample } from "./lib/report.js";
import { preciseNow } from "./lib/target.js";
import type { BenchPayload, Target, TargetCtx, TargetSpec } from "./lib/target.js";
import { TARGETS, targetKey } from "./lib/targets.js";

const { values: opts } = parseArgs({
  options: {
    jobs: { type: "string", default: "20000" },
    runs: { type: "string", default: "3" },
    only: { type: "string", default: "" },
    cap: { type: "string", default: "30s" },
    deadline: { type: "string", default: "60m" },
    batch: { type: "string", default: "1000" },
    "latency-jobs": { type: "string", default: "200" },
    every: { type: "string", default: "50ms" },
    scenarios: { type: "string", default: "enqueue,drain,pickup" },
    concurrency: { type: "string", default: "1,10,50" },
  },
});

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number, not "${text}"`);
  return n;
}

const JOBS = positive("jobs", opts.jobs);
const RUNS = positive("runs", opts.runs);
const BATCH = positive("batch", opts.batch);
const LATENCY_JOBS = positive("latency-jobs", opts["latency-jobs"]);
const CAP_MS = requireDuration(opts.cap, "--cap");
const DEADLINE_MS = requireDuration(opts.deadline, "--deadline");
const EVERY_MS = requireDuration(opts.every, "--every");
const CONCURRENCY = opts.concurrency.split(",").map((c) => positive("concurrency", c.trim()));
const SCENARIOS = new Set(opts.scenarios.split(",").map((s) => s.trim()));
/** Pick-up is measured at low load: ten handler slots, far more than one job per 50 ms needs. */
const LATENCY_CONCURRENCY = 10;
const WARM_JOBS = 10;
/** A child has this long to start (tsx, imports, connections) on a loaded 2-core machine. */
const START_MS = 60_000;
/** After "stop", a child has this long to close its connections before it is killed. */
const STOP_GRACE_MS = 15_000;

const only = opts.only.split(",").map((s) => s.trim()).filter(Boolean);
const wanted = (system: string, variant: string) =>
  only.length === 0 || only.some((o) => system.startsWith(o) || `${system}:${variant}` === o);
const specs = TARGETS.filter((t) => wanted(t.system, t.variant));
const withRaw = wanted("raw-sqlite", "defaults");

const samples: Sample[] = [];
const problems: string[] = [];
const liveChildren = new Set<Child>();
const liveCtx = new Map<TargetCtx, Target>();

function record(spec: Pick<TargetSpec, "system" | "variant">, scenario: string, unit: Sample["unit"], value: number, partial = false): void {
  samples.push({ system: spec.system, variant: spec.variant, scenario, unit, value, partial });
  const shown = unit === "jobs/s" && value >= 100 ? Math.round(value) : value.toFixed(2);
  process.stdout.write(`  ${spec.system} (${spec.variant}) ${scenario}: ${shown} ${unit}${partial ? " (partial)" : ""}\n`);
}

function spawn(init: ConstructorParameters<typeof Child>[0]): Child {
  const c = new Child(init);
  liveChildren.add(c);
  return c;
}

async function stopChild(c: Child): Promise<void> {
  await c.stop(STOP_GRACE_MS);
  liveChildren.delete(c);
}

/** Runs `fn` on a fresh store or queue and always removes it after. */
async function fresh(target: Target, fn: (ctx: TargetCtx) => Promise<void>): Promise<void> {
  const ctx = await target.create();
  liveCtx.set(ctx, target);
  try {
    await fn(ctx);
  } finally {
    liveCtx.delete(ctx);
    await target.destroy(ctx);
  }
}

function payloads(from: number, count: number): BenchPayload[] {
  return Array.from({ length: count }, (_, k) => ({ i: from + k, t: preciseNow() }));
}

async function enqueueSingle(spec: TargetSpec, target: Target): Promise<void> {
  await fresh(target, async (ctx) => {
    const p = await target.openProducer(ctx);
    try {
      const start = performance.now();
      let i = 0;
      while (i < JOBS && performance.now() - start < CAP_MS) await p.enqueueOne({ i: i++, t: preciseNow() });
      record(spec, "enqueue-single", "jobs/s", (i / (performance.now() - start)) * 1000, i < JOBS);
    } finally {
      await p.close();
    }
  });
}

async function enqueueBulk(spec: TargetSpec, target: Target): Promise<void> {
  await fresh(target, async (ctx) => {
    const p = await target.openProducer(ctx);
    try {
      const batches = Array.from({ length: Math.ceil(JOBS / BATCH) }, (_, b) => payloads(b * BATCH, Math.min(BATCH, JOBS - b * BATCH)));
      const start = performance.now();
      for (const b of batches) await p.enqueueBulk(b);
      record(spec, "enqueue-bulk", "jobs/s", (JOBS / (performance.now() - start)) * 1000);
    } finally {
      await p.close();
    }
  });
}

async function drain(spec: TargetSpec, target: Target, concurrency: number): Promise<void> {
  await fresh(target, async (ctx) => {
    const p = await target.openProducer(ctx);
    try {
      for (let from = 0; from < JOBS; from += BATCH) await p.enqueueBulk(payloads(from, Math.min(BATCH, JOBS - from)));
    } finally {
      await p.close();
    }
    const w = spawn({ role: "worker", target: targetKey(spec), ctx, concurrency, mode: "drain", n: JOBS, capMs: CAP_MS });
    try {
      await w.next("ready", START_MS);
      const r = await w.next("drained", 2 * CAP_MS + START_MS);
      record(spec, `drain-c${concurrency}`, "jobs/s", (r.done / r.ms) * 1000, r.partial);
    } finally {
      await stopChild(w);
    }
  });
}

async function pickup(spec: TargetSpec, target: Target): Promise<void> {
  await fresh(target, async (ctx) => {
    const key = targetKey(spec);
    const capMs = CAP_MS + (WARM_JOBS + LATENCY_JOBS) * EVERY_MS;
    const w = spawn({ role: "worker", target: key, ctx, concurrency: LATENCY_CONCURRENCY, mode: "latency", n: LATENCY_JOBS, capMs });
    const p = spawn({ role: "producer", target: key, ctx, n: LATENCY_JOBS, warm: WARM_JOBS, everyMs: EVERY_MS });
    try {
      await Promise.all([w.next("ready", START_MS), p.next("ready", START_MS)]);
      p.send({ t: "go" });
      const r = await w.next("latency", capMs + START_MS);
      if (r.samples.length === 0) throw new Error("no measured job was picked up within the cap");
      const partial = r.partial || r.samples.length < LATENCY_JOBS;
      if (partial) process.stdout.write(`  ${spec.system} (${spec.variant}): ${r.samples.length} of ${LATENCY_JOBS} jobs picked up within the cap\n`);
      record(spec, "pickup-p50", "ms", percentile(r.samples, 50), partial);
      record(spec, "pickup-p99", "ms", percentile(r.samples, 99), partial);
    } finally {
      await Promise.all([stopChild(p), stopChild(w)]);
    }
  });
}

/** Runs one scenario; a failure is reported and the benchmark goes on with the next. */
async function attempt(spec: Pick<TargetSpec, "system" | "variant">, scenario: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const msg = `${spec.system} (${spec.variant}) ${scenario}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`;
    problems.push(msg);
    process.stdout.write(`  FAILED ${msg}\n`);
  }
}

function runRaw(): void {
  const spec = { system: "raw-sqlite", variant: "defaults" } as const;
  const steps: [string, (db: RawSqlite) => { rate: number; done: number }, number][] = [
    ["enqueue-single", (db) => db.enqueue(JOBS, 1, CAP_MS), JOBS],
    ["enqueue-bulk", (db) => db.enqueue(JOBS, BATCH, CAP_MS), JOBS],
    ["drain-tx1", (db) => (db.enqueue(JOBS, BATCH, CAP_MS), db.drain(1, CAP_MS)), JOBS],
    ["drain-tx50", (db) => (db.enqueue(JOBS, BATCH, CAP_MS), db.drain(50, CAP_MS)), JOBS],
  ];
  for (const [scenario, step, expect] of steps) {
    const db = new RawSqlite();
    try {
      const r = step(db);
      record(spec, scenario, "jobs/s", r.rate, r.done < expect);
    } finally {
      db.close();
    }
  }
}

async function printSettings(loaded: Map<TargetSpec, Target>): Promise<void> {
  process.stdout.write(
    `vigil bench throughput: ${JOBS} jobs, ${RUNS} run(s) (median), batch ${BATCH}, cap ${CAP_MS} ms per step, ` +
      `pick-up over ${LATENCY_JOBS} jobs one every ${EVERY_MS} ms (concurrency ${LATENCY_CONCURRENCY})\n` +
      `node ${process.version}; drains timed in the worker process, from starting the connected worker until the store reports none outstanding\n\nSettings:\n`,
  );
  const extra = new Set<string>();
  for (const [spec, target] of loaded) {
    process.stdout.write(`  ${spec.system} (${spec.variant}): ${spec.settings}\n`);
    for (const line of (await target.describe?.().catch((e: Error) => [`(could not describe: ${e.message})`])) ?? []) extra.add(line);
  }
  if (withRaw) process.stdout.write(`  raw-sqlite: ${RAW_SETTINGS}\n`);
  for (const line of extra) process.stdout.write(`  ${line}\n`);
}

function finish(code: number): void {
  const rows = summarise(samples);
  const rs = ratios(rows);
  printResults(rows, rs);
  if (problems.length > 0) process.stdout.write(`\nProblems:\n${problems.map((p) => `  ${p}`).join("\n")}\n`);
  process.stdout.write(JSON.stringify({ bench: "throughput", rows: [...rows, ...rs.map((r) => r.row)] }) + "\n");
  process.exitCode = code;
}

/**
 * Stops early (global deadline, Ctrl-C, SIGTERM): kills every child, removes what stores
 * and queues it can within 15 s, prints the figures measured so far, and exits.
 */
function abort(reason: string, code: number): void {
  problems.push(reason);
  for (const c of liveChildren) c.kill();
  const cleanup = [...liveCtx].map(([ctx, t]) => t.destroy(ctx).catch(() => {}));
  // A store that cannot be removed (server gone) must not keep the benchmark from ending.
  const hard = setTimeout(() => process.exit(code), 15_000);
  void Promise.all(cleanup).finally(() => {
    clearTimeout(hard);
    finish(code);
    process.exit(code);
  });
}

async function main(): Promise<void> {
  const deadline = setTimeout(() => abort(`global deadline (${DEADLINE_MS} ms) reached; later steps were not run`, 1), DEADLINE_MS);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => abort(`stopped by ${sig}; later steps were not run`, 130));
  }

  const loaded = new Map<TargetSpec, Target>();
  for (const spec of specs) {
    await attempt(spec, "load", async () => void loaded.set(spec, await spec.load()));
  }
  await printSettings(loaded);

  for (let run = 1; run <= RUNS; run++) {
    process.stdout.write(`\nRun ${run} of ${RUNS}\n`);
    if (withRaw) await attempt({ system: "raw-sqlite", variant: "defaults" }, "loop", async () => runRaw());
    for (const [spec, target] of loaded) {
      if (SCENARIOS.has("enqueue")) {
        await attempt(spec, "enqueue-single", () => enqueueSingle(spec, target));
        await attempt(spec, "enqueue-bulk", () => enqueueBulk(spec, target));
      }
      if (SCENARIOS.has("drain")) {
        for (const c of CONCURRENCY) await attempt(spec, `drain-c${c}`, () => drain(spec, target, c));
      }
      if (SCENARIOS.has("pickup")) await attempt(spec, "pickup", () => pickup(spec, target));
    }
  }
  clearTimeout(deadline);
  finish(problems.length > 0 ? 1 : 0);
  // Everything should be closed now and the process exit by itself; if a peer library
  // keeps a handle open, say which, rather than hang.
  setTimeout(() => {
    process.stderr.write(`bench: still open after the run: ${process.getActiveResourcesInfo().join(", ")}\n`);
    process.exit(process.exitCode ?? 0);
  }, 5_000).unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  for (const c of liveChildren) c.kill();
  process.exit(1);
});
