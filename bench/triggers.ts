/**
 * bench/triggers — what polling triggers cost and how fast they notice, beside chokidar.
 *
 *   npm run bench -- triggers [--samples 20] [--window 30s] [--sizes 1000,10000]
 *
 * Everything runs as real processes against a fresh project folder and SQLite store:
 * - detection latency: one `vigil triggers` process with a `tail` trigger and a `watch`
 *   trigger (settle 1 s), both `every: 2s`. At random moments (uniform over a poll
 *   interval, so every phase of the poll cycle is hit) a line is appended, or a file is
 *   written; latency = the job's createdAt (stamped by the store in the triggers process)
 *   − the write time (this process; the same machine clock). Median and p95 of `--samples`.
 * - idle CPU: for each size, a folder of that many unchanged files; one `vigil triggers`
 *   process watching it every 2 s (after it has made the first jobs of every file), and,
 *   at the same time, chokidar 5 with `usePolling` on the same folder at the same 2 s
 *   interval in its own process; then, in the next window, chokidar with its default
 *   polling settings (100 ms), which is what `usePolling: true` gives a user. CPU% = (utime + stime from /proc) / wall time over
 *   `--window`, for each process as a whole (heartbeat, retention and lock renewals
 *   included for Vigil).
 * The last line of output is one JSON object: { bench: "triggers", rows: [...] }.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { printTable } from "../src/cli/output.js";
import { requireDuration } from "../src/core/duration.js";
import { killGroup, procInfo } from "../src/os/process.js";
import { openStore } from "../src/store/open.js";
import type { Store } from "../src/store/store.js";
import { median, percentile, type BenchRow } from "./lib/report.js";
import { sleep, waitFor as waitUntil } from "./lib/wait.js";

const { values: opts } = parseArgs({
  options: {
    samples: { type: "string", default: "20" },
    window: { type: "string", default: "30s" },
    sizes: { type: "string", default: "1000,10000" },
  },
});
const SAMPLES = Number(opts.samples);
const WINDOW_MS = requireDuration(opts.window!, "--window");
const SIZES = opts.sizes!.split(",").map(Number);
const EVERY_MS = 2000;
/** chokidar's settings, printed with the results: the same interval as Vigil's, and its own defaults. */
const CHOKIDAR = { usePolling: true, interval: EVERY_MS, binaryInterval: EVERY_MS, ignoreInitial: true, persistent: true };
const CHOKIDAR_DEFAULT = { usePolling: true, ignoreInitial: true, persistent: true }; // interval 100 ms, binaryInterval 300 ms

const ROOT = resolve(import.meta.dirname, "..");
const VIGIL = join(ROOT, "bin", "vigil");

const rows: BenchRow[] = [];
const children: ChildProcess[] = [];
const dirs: string[] = [];

function cleanup(): void {
  for (const c of children) if (c.pid) killGroup(c.pid, "SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
process.on("SIGTERM", () => {
  cleanup();
  process.exit(1);
});

function project(triggers: string): string {
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-trig-"));
  dirs.push(dir);
  writeFileSync(join(dir, "vigil.yaml"), `store: sqlite:vigil.db\nqueues:\n  q: { command: [cat] }\ntriggers:\n${triggers}`);
  return dir;
}

function spawnChild(argv: string[], cwd: string, onLine?: (line: string) => void): ChildProcess {
  const c = spawn(process.execPath, argv, { cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  c.on("error", (err) => process.stderr.write(`bench: ${argv.join(" ")}: ${err.message}\n`));
  let buf = "";
  c.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const l of lines) onLine?.(l);
  });
  c.stderr!.on("data", (d: Buffer) => process.stderr.write(d));
  children.push(c);
  return c;
}

function startTriggers(dir: string): ChildProcess {
  return spawnChild([VIGIL, "-c", join(dir, "vigil.yaml"), "triggers"], dir);
}

async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 300_000, everyMs = 20): Promise<void> {
  await waitUntil(what, fn, timeoutMs, everyMs);
}

/** Time from each write to its job's creation, for one trigger. */
async function latencies(store: Store, write: (i: number) => void): Promise<number[]> {
  const count = async () => Object.values((await store.stats()).q ?? {}).reduce((a, b) => a + b, 0);
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    await sleep(Math.random() * EVERY_MS);
    const before = await count();
    const at = Date.now();
    write(i);
    await waitFor("a job", async () => (await count()) > before);
    const [newest] = await store.list({ queue: "q", limit: 1 });
    out.push(newest!.createdAt - at);
  }
  return out;
}

async function latencyBench(): Promise<void> {
  process.stdout.write(`Detection latency, every ${EVERY_MS} ms, ${SAMPLES} samples each (tail, then watch with settle 1 s)...\n`);
  for (const kind of ["tail", "watch"] as const) {
    const dir = project(
      kind === "tail"
        ? `  t: { tail: in.log, queue: q, every: ${EVERY_MS}ms }\n`
        : `  t: { watch: 'in/*.md', queue: q, every: ${EVERY_MS}ms, settle: 1s }\n`,
    );
    if (kind === "tail") writeFileSync(join(dir, "in.log"), "");
    else mkdirSync(join(dir, "in"));
    const child = startTriggers(dir);
    const store = await openStore(`sqlite:${join(dir, "vigil.db")}`);
    await sleep(1500); // let the process start and take its first poll before sampling
    const ms = await latencies(store, (i) =>
      kind === "tail"
        ? appendFileSync(join(dir, "in.log"), `line ${i}\n`)
        : writeFileSync(join(dir, "in", `f${i}.md`), `file ${i}\n`),
    );
    await store.close();
    killGroup(child.pid, "SIGTERM");
    rows.push({ system: "vigil", scenario: `${kind}-latency-p50`, value: Math.round(median(ms)), unit: "ms" });
    rows.push({ system: "vigil", scenario: `${kind}-latency-p95`, value: Math.round(percentile(ms, 95)), unit: "ms" });
    process.stdout.write(`  ${kind}: ${ms.map((x) => Math.round(x)).join(" ")} ms\n`);
  }
}

const CHOKIDAR_CODE = `
import { watch } from "chokidar";
const w = watch(process.argv[1], JSON.parse(process.argv[2]));
w.on("error", (e) => console.error("chokidar error", e.message));
w.on("ready", () => console.log("ready"));
`;

/** CPU% and RSS of each process over the window. */
async function measure(pids: Record<string, number>): Promise<Record<string, { cpu: number; rssMb: number }>> {
  const start = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, procInfo(pid)?.cpuMs ?? NaN]));
  const t0 = performance.now();
  await sleep(WINDOW_MS);
  const wall = performance.now() - t0;
  const out: Record<string, { cpu: number; rssMb: number }> = {};
  for (const [k, pid] of Object.entries(pids)) {
    const info = procInfo(pid);
    out[k] = { cpu: (((info?.cpuMs ?? NaN) - start[k]!) / wall) * 100, rssMb: (info?.rssBytes ?? NaN) / (1 << 20) };
  }
  return out;
}

async function idleBench(size: number): Promise<void> {
  process.stdout.write(`Idle cost, ${size} unchanged files, every ${EVERY_MS} ms, ${WINDOW_MS / 1000} s window...\n`);
  const dir = project(`  t: { watch: 'files/*.txt', queue: q, every: ${EVERY_MS}ms, settle: 1s }\n`);
  const folder = join(dir, "files");
  mkdirSync(folder);
  for (let i = 0; i < size; i++) writeFileSync(join(folder, `file-${String(i).padStart(6, "0")}.txt`), `content of file ${i}\n`);
  await sleep(1100); // the files must be stable before the first poll can take them all
  const vigil = startTriggers(dir);
  const store = await openStore(`sqlite:${join(dir, "vigil.db")}`);
  await waitFor(`the first ${size} jobs`, async () => ((await store.stats()).q?.waiting ?? 0) >= size, 300_000, 250);
  await store.close();
  const chok = await startChokidar(folder, CHOKIDAR);
  await sleep(2 * EVERY_MS); // both past their start-up work
  const m = await measure({ vigil: vigil.pid!, chokidar: chok.pid! });
  killGroup(chok.pid, "SIGKILL");
  // chokidar with its default polling interval, measured on its own afterwards: at 100 ms
  // it can take a whole core, which would disturb the figures of the other two.
  const chokDefault = await startChokidar(folder, CHOKIDAR_DEFAULT);
  await sleep(2 * EVERY_MS);
  const d = await measure({ chokidar: chokDefault.pid! });
  killGroup(chokDefault.pid, "SIGKILL");
  killGroup(vigil.pid, "SIGTERM");
  const round = (x: number) => Math.round(x * 100) / 100;
  const cpu = `idle-cpu-${size}-files`;
  const rss = `idle-rss-${size}-files`;
  rows.push({ system: "vigil", scenario: cpu, value: round(m.vigil!.cpu), unit: "%" });
  rows.push({ system: "chokidar-5-polling-2s", scenario: cpu, value: round(m.chokidar!.cpu), unit: "%" });
  rows.push({ system: "chokidar-5-polling-default", scenario: cpu, value: round(d.chokidar!.cpu), unit: "%" });
  rows.push({ system: "vigil", scenario: rss, value: Math.round(m.vigil!.rssMb), unit: "MB" });
  rows.push({ system: "chokidar-5-polling-2s", scenario: rss, value: Math.round(m.chokidar!.rssMb), unit: "MB" });
  rows.push({ system: "chokidar-5-polling-default", scenario: rss, value: Math.round(d.chokidar!.rssMb), unit: "MB" });
}

/** chokidar in its own process on `folder`; resolves once it reports ready. */
async function startChokidar(folder: string, settings: object): Promise<ChildProcess> {
  let ready = false;
  const c = spawnChild(["--input-type=module", "-e", CHOKIDAR_CODE, folder, JSON.stringify(settings)], ROOT, (l) => {
    if (l === "ready") ready = true;
  });
  await waitFor("chokidar ready", () => ready, 300_000, 100);
  return c;
}

function value(system: string, scenario: string): number | undefined {
  return rows.find((r) => r.system === system && r.scenario === scenario)?.value;
}

try {
  await latencyBench();
  for (const size of SIZES) await idleBench(size);
} finally {
  cleanup();
}

process.stdout.write(
  `\nchokidar 5, each in its own process, same folder:\n  chokidar-5-polling-2s: ${JSON.stringify(CHOKIDAR)} (same window as vigil)\n` +
    `  chokidar-5-polling-default: ${JSON.stringify(CHOKIDAR_DEFAULT)} (its defaults: interval 100 ms, binaryInterval 300 ms; next window)\n\n`,
);
printTable(["system", "scenario", "value", "unit"], rows.map((r) => [r.system, r.scenario, r.value, r.unit]));
const targets: [string, number | undefined, string, boolean | undefined][] = [];
for (const kind of ["tail", "watch"]) {
  const p95 = value("vigil", `${kind}-latency-p95`);
  targets.push([`${kind} latency p95 <= interval + 100 ms`, p95, `<= ${EVERY_MS + 100} ms`, p95 === undefined ? undefined : p95 <= EVERY_MS + 100]);
}
for (const size of SIZES) {
  const v = value("vigil", `idle-cpu-${size}-files`);
  if (size === 10_000) targets.push([`idle CPU, 10,000 files`, v, "<= 2 %", v === undefined ? undefined : v <= 2]);
  for (const peer of ["chokidar-5-polling-2s", "chokidar-5-polling-default"]) {
    const c = value(peer, `idle-cpu-${size}-files`);
    if (v !== undefined && c !== undefined && v > 0) {
      targets.push([`${peer} / vigil CPU, ${size} files`, Math.round((c / v) * 10) / 10, "> 1 (below chokidar)", c / v > 1]);
    }
  }
}
process.stdout.write("\nTargets:\n");
printTable(["what", "value", "target", "met"], targets.map(([w, v, t, ok]) => [w, v, t, ok === undefined ? "-" : ok ? "yes" : "no"]));
process.stdout.write(JSON.stringify({ bench: "triggers", rows }) + "\n");
