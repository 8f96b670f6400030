/**
 * bench/scale — what history costs the operator's commands and the hot path. For each
 * store (SQLite file, PostgreSQL schema) it makes a fresh store and one per `--sizes` N
 * filled with N finished jobs (bench/lib/scale-fill.ts), then times side by side, each the
 * median of `--runs` runs of the real CLI (`bin/vigil`, a new process each, no supervisor;
 * runs alternate between the sizes):
 * `status --json`, `health --json`, `report --since 30d --json`, `jobs list --state
 * completed --limit 50` (the first page, and the page before the job half-way through),
 * `jobs list --state dead --limit 50` (of every queue, and of one), `incidents --json`; then the
 * store's size on disk, a drain of `--drain` jobs by one worker process (concurrency 50),
 * pick-up p50 at one job every 50 ms, and a `--lines`-line `vigil enqueue bench -` (rate
 * and peak RSS, VmHWM sampled from /proc every 20 ms).
 *
 *   npm run bench -- scale [--store sqlite|postgres|both] [--sizes 1000000,10000000]
 *                          [--runs 5] [--drain 20000] [--lines 1000000] [--vigil PATH]
 *                          [--skip drain,pickup,enqueue]
 *
 * The last line is one JSON object: { bench: "scale", rows: [{ system, scenario, value, unit }] };
 * scenarios are `COMMAND@SIZE` (SIZE `fresh` or the job count).
 */
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { once } from "node:events";
import { parseArgs } from "node:util";
import { printTable } from "../src/cli/output.js";
import { openStore } from "../src/store/open.js";
import { Child, drainInChild } from "./lib/child.js";
import { median, percentile } from "./lib/report.js";
import { createStore, destroyStore, fill, storeBytes, type ScaleStore } from "./lib/scale-fill.js";
import type { TargetCtx } from "./lib/target.js";
import { preciseNow } from "./lib/target.js";

const { values: opts } = parseArgs({
  options: {
    store: { type: "string", default: "both" },
    sizes: { type: "string", default: "1000000" },
    runs: { type: "string", default: "5" },
    drain: { type: "string", default: "20000" },
    lines: { type: "string", default: "1000000" },
    vigil: { type: "string", default: resolve(import.meta.dirname, "../bin/vigil") },
    skip: { type: "string", default: "" },
  },
});
const ENGINES = (opts.store === "both" ? ["sqlite", "postgres"] : [opts.store]) as ("sqlite" | "postgres")[];
const SIZES = [0, ...opts.sizes.split(",").map((s) => Number(s.trim()))];
const RUNS = Number(opts.runs);
const DRAIN = Number(opts.drain);
const LINES = Number(opts.lines);
const SKIP = new Set(opts.skip.split(",").map((s) => s.trim()));
/** A child has this long to start, and a drain or pick-up run this long, on a loaded 2-core machine. */
const CHILD_MS = 120_000;

/** Each command's arguments for a store of `n` filled jobs (ids 1..n). */
const COMMANDS: [string, (n: number) => string[]][] = [
  ["status", () => ["status", "--json"]],
  ["health", () => ["health", "--json"]],
  ["report-30d", () => ["report", "--since", "30d", "--json"]],
  ["list-completed", () => ["jobs", "list", "--state", "completed", "--limit", "50"]],
  // A deep keyset page: the page after the job half-way through the history.
  ["list-deep", (n) => ["jobs", "list", "--state", "completed", "--limit", "50", "--before", String(Math.max(1, Math.floor(n / 2)))]],
  ["list-dead", () => ["jobs", "list", "--state", "dead", "--limit", "50"]],
  ["list-queue-dead", () => ["jobs", "list", "--queue", "qa", "--state", "dead", "--limit", "50"]],
  ["incidents", () => ["incidents", "--json"]],
];

interface Row {
  system: string;
  scenario: string;
  value: number;
  unit: "ms" | "jobs/s" | "MB" | "x";
}
const rows: Row[] = [];
const label = (n: number) => (n === 0 ? "fresh" : String(n));
const round = (x: number) => Math.round(x * 100) / 100;

function record(system: string, scenario: string, value: number, unit: Row["unit"]): void {
  rows.push({ system, scenario, value: unit === "jobs/s" ? Math.round(value) : round(value), unit });
  process.stdout.write(`  ${system} ${scenario}: ${unit === "jobs/s" ? Math.round(value) : round(value)} ${unit}\n`);
}

/** Wall time of one CLI run, from spawn to exit, in a folder without a config. */
function timeCommand(cwd: string, url: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [opts.vigil, "--store", url, ...args], { cwd, encoding: "utf8", timeout: 300_000 });
  const ms = performance.now() - t;
  // health exits 1 or 2 with nothing running; anything else is a failure to report.
  if (r.status === null || (r.status !== 0 && args[0] !== "health")) throw new Error(`vigil ${args.join(" ")} failed: ${r.stderr}`);
  return ms;
}

/** `vigil enqueue bench -` of `LINES` lines: jobs/s and peak RSS (MB). */
async function enqueueLines(cwd: string, url: string): Promise<{ rate: number; peakMb: number }> {
  const file = join(cwd, "lines.jsonl");
  const out = createWriteStream(file);
  for (let i = 0; i < LINES; i++) if (!out.write(`{"i":${i},"text":"${"x".repeat(40)}"}\n`)) await once(out, "drain");
  out.end();
  await once(out, "finish");
  const t = performance.now();
  const child = spawn(process.execPath, [opts.vigil, "--store", url, "enqueue", "bench", "-"], { cwd, stdio: ["pipe", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  let peakKb = 0;
  const sample = () => {
    const m = /VmHWM:\s+(\d+)/.exec(readStatus(child.pid!));
    if (m) peakKb = Math.max(peakKb, Number(m[1]));
  };
  const timer = setInterval(sample, 20);
  const { createReadStream } = await import("node:fs");
  createReadStream(file).pipe(child.stdin!);
  const [code] = (await once(child, "exit")) as [number | null];
  clearInterval(timer);
  const ms = performance.now() - t;
  rmSync(file, { force: true });
  if (code !== 0) throw new Error(`vigil enqueue failed (${code}): ${err.slice(-500)}`);
  return { rate: (LINES / ms) * 1000, peakMb: peakKb / 1024 };
}

function readStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return "";
  }
}

/** The throughput bench's worker child, on this store (its queue `bench`). */
function ctxOf(s: ScaleStore): TargetCtx {
  return s.engine === "sqlite" ? { engine: "sqlite", file: s.file! } : { engine: "postgres", schema: s.schema! };
}
const targetOf = (s: ScaleStore) => (s.engine === "sqlite" ? "vigil-sqlite:defaults" : "vigil-postgres:defaults");

async function drainRate(s: ScaleStore): Promise<number> {
  const store = await openStore(s.engine === "sqlite" ? `sqlite:${s.file}` : s.url);
  try {
    for (let from = 0; from < DRAIN; from += 1000) {
      await store.enqueueMany(Array.from({ length: Math.min(1000, DRAIN - from) }, (_, k) => ({ queue: "bench", payload: { i: from + k, t: preciseNow() } })));
    }
  } finally {
    await store.close();
  }
  return drainInChild(targetOf(s), ctxOf(s), DRAIN, 50, CHILD_MS);
}

async function pickupP50(s: ScaleStore): Promise<number> {
  const n = 200;
  const w = new Child({ role: "worker", target: targetOf(s), ctx: ctxOf(s), concurrency: 10, mode: "latency", n, capMs: CHILD_MS });
  const p = new Child({ role: "producer", target: targetOf(s), ctx: ctxOf(s), n, warm: 10, everyMs: 50 });
  try {
    await Promise.all([w.next("ready", CHILD_MS), p.next("ready", CHILD_MS)]);
    p.send({ t: "go" });
    const r = await w.next("latency", 2 * CHILD_MS);
    return percentile(r.samples, 50);
  } finally {
    await Promise.all([p.stop(15_000), w.stop(15_000)]);
  }
}

/**
 * Every size's store of one engine exists at once, and each command's runs alternate
 * between them (fresh, N, fresh, N, ...), so a change in the machine's load during the run
 * weighs on every size alike instead of on whichever was measured then.
 */
async function measure(engine: "sqlite" | "postgres", dir: string): Promise<void> {
  const system = `vigil-${engine}`;
  const stores: [number, ScaleStore][] = [];
  try {
    for (const n of SIZES) {
      const s = await createStore(engine, dir, label(n));
      stores.push([n, s]);
      const t = performance.now();
      await fill(s, n);
      process.stdout.write(`${system}: ${label(n)} store filled in ${round((performance.now() - t) / 1000)} s\n`);
      record(system, `store-size@${label(n)}`, (await storeBytes(s)) / (1 << 20), "MB");
    }
    for (const [name, argsOf] of COMMANDS) {
      const xs = new Map<number, number[]>(stores.map(([n]) => [n, []]));
      for (const [n, s] of stores) timeCommand(dir, s.url, argsOf(n)); // warm the page cache and the module cache
      for (let run = 0; run < RUNS; run++) for (const [n, s] of stores) xs.get(n)!.push(timeCommand(dir, s.url, argsOf(n)));
      for (const [n] of stores) record(system, `${name}@${label(n)}`, median(xs.get(n)!), "ms");
    }
    for (const [n, s] of stores) {
      if (!SKIP.has("drain")) record(system, `drain-c50@${label(n)}`, await drainRate(s), "jobs/s");
      if (!SKIP.has("pickup")) record(system, `pickup-p50@${label(n)}`, await pickupP50(s), "ms");
      if (!SKIP.has("enqueue")) {
        const e = await enqueueLines(dir, s.url);
        record(system, `enqueue-lines@${label(n)}`, e.rate, "jobs/s");
        record(system, `enqueue-peak-rss@${label(n)}`, e.peakMb, "MB");
      }
    }
  } finally {
    for (const [, s] of stores) await destroyStore(s);
  }
}

/** Each size's figure over the fresh store's, per system and command. */
function ratios(): Row[] {
  const out: Row[] = [];
  for (const r of rows) {
    const [name, size] = r.scenario.split("@");
    if (size === "fresh" || r.unit !== "ms") continue;
    const base = rows.find((b) => b.system === r.system && b.scenario === `${name}@fresh`);
    if (base && base.value > 0) out.push({ system: r.system, scenario: `${name}@${size}-vs-fresh`, value: round(r.value / base.value), unit: "x" });
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), "vigil-bench-scale-"));
try {
  process.stdout.write(`vigil bench scale: stores ${ENGINES.join(", ")}; sizes ${SIZES.map(label).join(", ")}; CLI ${opts.vigil}; median of ${RUNS} runs after one warm-up; node ${process.version}\n`);
  for (const engine of ENGINES) await measure(engine, dir);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const all = [...rows, ...ratios()];
process.stdout.write("\n");
const sizes = SIZES.map(label);
const table: (string | number)[][] = [];
for (const engine of ENGINES) {
  const system = `vigil-${engine}`;
  const names = [...new Set(rows.filter((r) => r.system === system).map((r) => r.scenario.split("@")[0]!))];
  for (const name of names) {
    const cell = (size: string) => rows.find((r) => r.system === system && r.scenario === `${name}@${size}`);
    const unit = cell("fresh")?.unit ?? "";
    const vs = sizes.slice(1).map((z) => all.find((r) => r.system === system && r.scenario === `${name}@${z}-vs-fresh`)?.value);
    table.push([system, name, unit, ...sizes.map((z) => cell(z)?.value ?? ""), ...vs.map((v) => (v === undefined ? "" : `${v}x`))]);
  }
}
printTable(["system", "measure", "unit", ...sizes, ...sizes.slice(1).map((z) => `${z} vs fresh`)], table);
process.stdout.write(JSON.stringify({ bench: "scale", rows: all }) + "\n");
