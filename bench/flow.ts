/**
 * bench/flow — what flow control costs and whether a rate holds, on this machine.
 *
 *   npm run bench -- flow [--stores sqlite,postgres] [--jobs 20000] [--concurrency 50]
 *                         [--seconds 5] [--rates 10,100,1000] [--repeat 1]
 *
 * - drain: `--jobs` no-op jobs, enqueued in bulk first, drained by one in-process worker at
 *   `--concurrency`, once without flow control and once with `rate` set far above the drain
 *   rate (1,000,000/1s): what the flow-controlled claim costs (the queue leases nothing
 *   ahead, and on PostgreSQL claims it in a transaction that locks the queue's row).
 *   Timed from the worker's start until the store counts every job completed. With
 *   `--repeat N` the pair runs N times, alternating which goes first; the rows are the
 *   medians (the overhead: the median of each pair's). `--rates ""` skips the rate part.
 * - rate: a backlog far larger than the rate, two in-process workers at concurrency 200 for
 *   `--seconds`, `rate: N/1s`; handler start times give the observed steady rate (the starts
 *   beyond the first N, over the time from the first start to the last) and the most starts
 *   in any sliding second.
 *
 * The last line of output is one JSON object: { bench: "flow", rows: [...] }; each row is
 * { system, scenario, value, unit }.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { printTable } from "../src/cli/output.js";
import { openStore } from "../src/store/open.js";
import type { QueueFlow, Store } from "../src/store/store.js";
import { Worker } from "../src/worker/worker.js";
import { dropSchema, freshSchema, PG_URL } from "./lib/pg.js";

const { values: opts } = parseArgs({
  options: {
    stores: { type: "string", default: "sqlite,postgres" },
    jobs: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "50" },
    seconds: { type: "string", default: "5" },
    rates: { type: "string", default: "10,100,1000" },
    repeat: { type: "string", default: "1" },
  },
});

const JOBS = Number(opts.jobs);
const CONCURRENCY = Number(opts.concurrency);
const SECONDS = Number(opts.seconds);
const RATES = opts.rates.split(",").filter(Boolean).map(Number);
const REPEAT = Math.max(1, Number(opts.repeat));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const silent = pino({ level: "silent" });

interface Row {
  system: string;
  scenario: string;
  value: number;
  unit: "jobs/s" | "%" | "starts";
}

/** A fresh store of the kind, and how to remove it. */
async function fresh(kind: string): Promise<{ store: Store; drop: () => Promise<void> }> {
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "vigil-bench-flow-"));
    const store = await openStore(`sqlite:${join(dir, "vigil.db")}`);
    return { store, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const schema = freshSchema("flow");
  const store = await openStore(`${PG_URL}?schema=${schema}`);
  return { store, drop: () => dropSchema(schema) };
}

async function enqueue(store: Store, queue: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 5000) {
    await store.enqueueMany(Array.from({ length: Math.min(5000, n - i) }, (_, k) => ({ queue, payload: { i: i + k } })));
  }
}

/** Polls `cond` every 20 ms; a poll the store could not answer in time (a busy shared server) is just the next one. */
async function until(cond: () => Promise<boolean>): Promise<void> {
  const ok = () => cond().catch((err: { code?: string }) => (err.code === "STORE_UNREACHABLE" ? false : Promise.reject(err)));
  while (!(await ok())) await new Promise((r) => setTimeout(r, 20));
}

/** Jobs a second one worker drains `JOBS` no-op jobs at, with or without flow control. */
async function drain(kind: string, flow: QueueFlow | undefined): Promise<number> {
  const { store, drop } = await fresh(kind);
  try {
    await enqueue(store, "q", JOBS);
    const worker = new Worker(store, { queues: { q: { handler: async () => null, concurrency: CONCURRENCY, flow } }, logger: silent });
    const t0 = performance.now();
    worker.start();
    await until(async () => ((await store.stats())["q"]?.completed ?? 0) >= JOBS);
    const ms = performance.now() - t0;
    await worker.stop();
    return (JOBS / ms) * 1000;
  } finally {
    await store.close();
    await drop();
  }
}

/** The most times in any half-open window [t, t + ms). */
function maxInWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** Observed starts per second (after the first second) and the most in any sliding second, at `rate`/1s. */
async function rated(kind: string, rate: number): Promise<{ observed: number; maxWindow: number }> {
  const { store, drop } = await fresh(kind);
  try {
    await enqueue(store, "r", Math.ceil(rate * (SECONDS + 2) * 1.5) + 100);
    const starts: number[] = [];
    const flow: QueueFlow = { rate: { count: rate, intervalMs: 1000 } };
    const handler = async () => {
      starts.push(Date.now());
      return null;
    };
    const workers = [1, 2].map(() => new Worker(store, { queues: { r: { handler, concurrency: 200, flow } }, logger: silent }));
    for (const w of workers) w.start();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    await Promise.all(workers.map((w) => w.stop()));
    // Steady-state rate: the starts after the first window's N, over the time from the first
    // start to the last (the first N may all start at once; edge effects cancel out).
    const span = (Math.max(...starts) - Math.min(...starts)) / 1000;
    return { observed: span > 0 ? (starts.length - rate) / span : 0, maxWindow: maxInWindow(starts, 1000) };
  } finally {
    await store.close();
    await drop();
  }
}

const rows: Row[] = [];
for (const kind of opts.stores.split(",").map((s) => s.trim())) {
  const system = `vigil-${kind}`;
  const far: QueueFlow = { rate: { count: 1_000_000, intervalMs: 1000 } };
  const pairs: [number, number][] = [];
  for (let i = 0; i < REPEAT; i++) {
    // Alternating which goes first, so a machine getting busier or quieter favours neither.
    const first = i % 2 === 0 ? await drain(kind, undefined) : await drain(kind, far);
    const second = i % 2 === 0 ? await drain(kind, far) : await drain(kind, undefined);
    pairs.push(i % 2 === 0 ? [first, second] : [second, first]);
    if (REPEAT > 1) process.stderr.write(`${kind} pair ${i + 1}: ${Math.round(pairs[i]![0])} / ${Math.round(pairs[i]![1])} jobs/s\n`);
  }
  const plain = median(pairs.map((p) => p[0]));
  const withRate = median(pairs.map((p) => p[1]));
  const overhead = median(pairs.map(([p, r]) => 1 - r / p));
  rows.push({ system, scenario: `drain-c${CONCURRENCY}`, value: Math.round(plain), unit: "jobs/s" });
  rows.push({ system, scenario: `drain-c${CONCURRENCY}-rate-far-above`, value: Math.round(withRate), unit: "jobs/s" });
  rows.push({ system, scenario: "rate-overhead", value: Math.round(overhead * 1000) / 10, unit: "%" });
  for (const rate of RATES) {
    const r = await rated(kind, rate);
    rows.push({ system, scenario: `rate-${rate}/s-observed`, value: Math.round(r.observed * 10) / 10, unit: "jobs/s" });
    rows.push({ system, scenario: `rate-${rate}/s-max-in-sliding-1s`, value: r.maxWindow, unit: "starts" });
  }
}

printTable(
  ["SYSTEM", "SCENARIO", "VALUE", "UNIT"],
  rows.map((r) => [r.system, r.scenario, r.value, r.unit]),
);
process.stdout.write(JSON.stringify({ bench: "flow", rows }) + "\n");
