/**
 * bench/soak — PostgreSQL under steady churn, with a long-running read in the middle.
 *
 * A fresh schema (optionally filled first with `--history` finished jobs, as bench/scale
 * fills it), one producer enqueueing `--rate` jobs a second on a steady clock (a batch every
 * 20 ms), and one Vigil `Worker` (concurrency 50, defaults otherwise) running no-op
 * handlers, for `--minutes`. In the middle, for `--read-minutes`, another connection holds
 * a REPEATABLE READ transaction open (a count of the jobs table, then `pg_sleep`): while it
 * lives, no row version that died after its snapshot can be cleaned up, by vacuum or by
 * index scans. Every `--interval` seconds it prints: jobs completed per second; the
 * worker's claim round trips (`claim`, or `completeAndClaim` carrying a claim) p50/p95;
 * pick-up (handler start − enqueue) p50/p95; a renewal of 100 held leases (`renewMany`,
 * timed once a second) p50; and the jobs table's live and dead tuples, autovacuum count
 * and size (pg_stat_user_tables). At the end: the medians before, during and after the
 * read, and how long after the read ended claim and pick-up latency were back within 1.5×
 * of their medians before it (medians over 30 s, so one quiet window among slow ones does
 * not count).
 *
 *   npm run bench -- soak [--minutes 10] [--rate 1000] [--read-minutes 2] [--interval 10]
 *                         [--history 0] [--concurrency 50]
 *   npm run bench -- soak --peers 1000000      (claim rates beside pg-boss and Graphile)
 *
 * VIGIL_BENCH_PG picks the server (default the local one). The last line is one JSON object.
 */
import { parseArgs } from "node:util";
import { pino } from "pino";
import type { HandlerJob } from "../src/handlers/types.js";
import type { Lease } from "../src/core/types.js";
import { printTable } from "../src/cli/output.js";
import { openStore } from "../src/store/open.js";
import type { Store } from "../src/store/store.js";
import { Worker } from "../src/worker/worker.js";
import { describePostgres, dropSchema, freshSchema, PG_URL } from "./lib/pg.js";
import { median, percentile } from "./lib/report.js";
import { fill } from "./lib/scale-fill.js";
import { describeVacuum, holdLongRead, jobsTableStats } from "./lib/soak-pg.js";
import { preciseNow } from "./lib/target.js";
import { sleep } from "./lib/wait.js";

const { values: opts } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    rate: { type: "string", default: "1000" },
    "read-minutes": { type: "string", default: "2" },
    interval: { type: "string", default: "10" },
    history: { type: "string", default: "0" },
    concurrency: { type: "string", default: "50" },
    peers: { type: "string" },
  },
});

if (opts.peers !== undefined) {
  const { comparePeers } = await import("./lib/soak-peers.js");
  await comparePeers(Number(opts.peers));
  process.exit(0);
}

const RUN_MS = Number(opts.minutes) * 60_000;
const RATE = Number(opts.rate);
const READ_MS = Number(opts["read-minutes"]) * 60_000;
const INTERVAL_MS = Number(opts.interval) * 1000;
const HISTORY = Number(opts.history);
/** The read sits in the middle of the run. */
const READ_AT = Math.max(0, (RUN_MS - READ_MS) / 2);
const QUEUE = "bench";
const PROBE = "probe";
const LEASE_MS = 3_600_000;

interface Window {
  t: number;
  phase: "before" | "read" | "after";
  claims: number[];
  pickups: number[];
  renews: number[];
  done: number;
}

const round = (x: number) => Math.round(x * 100) / 100;
const pct = (xs: number[], p: number) => (xs.length ? percentile(xs, p) : NaN);
const schema = freshSchema("soak");
const url = `${PG_URL}?schema=${schema}`;

/** Times every claim the worker makes (a plain claim, or one riding with completions). */
function timeClaims(store: Store, sink: () => number[]): void {
  const claim = store.claim.bind(store);
  store.claim = async (req) => {
    const t = preciseNow();
    try {
      return await claim(req);
    } finally {
      sink().push(preciseNow() - t);
    }
  };
  const cac = store.completeAndClaim?.bind(store);
  if (cac) {
    store.completeAndClaim = async (items, req) => {
      const t = preciseNow();
      try {
        return await cac(items, req);
      } finally {
        if (req) sink().push(preciseNow() - t);
      }
    };
  }
}

async function main(): Promise<void> {
  process.stdout.write(
    `vigil bench soak: ${await describePostgres()}; schema ${schema}; ${opts.minutes} min at ${RATE} jobs/s, ` +
      `history ${HISTORY}, long read ${READ_MS / 1000} s from ${READ_AT / 1000} s; node ${process.version}\n`,
  );
  const producer = await openStore(url);
  const workerStore = await openStore(url);
  const probe = await openStore(url);
  process.stdout.write(`autovacuum: ${await describeVacuum(schema)}\n`);
  if (HISTORY > 0) {
    const t = performance.now();
    await fill({ engine: "postgres", url, schema }, HISTORY);
    process.stdout.write(`filled ${HISTORY} finished jobs in ${round((performance.now() - t) / 1000)} s\n`);
  }
  // 100 leases held all run long, renewed once a second: what renewal costs under churn.
  await probe.enqueueMany(Array.from({ length: 100 }, (_, i) => ({ queue: PROBE, payload: { i } })));
  const held: Lease[] = await probe.claim({ workerId: "soak-probe", queues: { [PROBE]: 100 }, leaseMs: LEASE_MS });

  const windows: Window[] = [];
  const start = preciseNow();
  const phase = (at: number): Window["phase"] =>
    READ_MS > 0 && at >= READ_AT ? (at < READ_AT + READ_MS ? "read" : "after") : "before";
  let cur: Window = { t: 0, phase: phase(0), claims: [], pickups: [], renews: [], done: 0 };
  timeClaims(workerStore, () => cur.claims);

  const worker = new Worker(workerStore, {
    ipc: false,
    logger: pino({ level: "warn" }, pino.destination(2)),
    queues: {
      [QUEUE]: {
        concurrency: Number(opts.concurrency),
        handler: async (job: HandlerJob) => {
          cur.pickups.push(preciseNow() - (job.payload as { t: number }).t);
          cur.done++;
          return null;
        },
      },
    },
  });
  worker.on("store-error", () => {});
  worker.start();

  let stopping = false;
  let enqueued = 0;
  const produce = (async () => {
    while (!stopping) {
      const due = Math.floor(((preciseNow() - start) * RATE) / 1000) - enqueued;
      if (due > 0) {
        const n = Math.min(due, 5 * RATE);
        const t = preciseNow();
        await producer.enqueueMany(Array.from({ length: n }, (_, k) => ({ queue: QUEUE, payload: { i: enqueued + k, t } })));
        enqueued += n;
      }
      await sleep(20);
    }
  })();
  const renew = (async () => {
    while (!stopping) {
      const t = preciseNow();
      await probe.renewMany(held, LEASE_MS);
      cur.renews.push(preciseNow() - t);
      await sleep(1000);
    }
  })();
  const read = READ_MS > 0 ? sleep(READ_AT).then(() => holdLongRead(schema, READ_MS)) : Promise.resolve();

  const header = ["t s", "phase", "done/s", "claim p50", "claim p95", "pick-up p50", "pick-up p95", "renew p50", "live", "dead", "autovac", "MB"];
  process.stdout.write(`${header.join("\t")}\n`);
  const table: (string | number)[][] = [];
  const rows: Record<string, number | string>[] = [];
  for (let next = INTERVAL_MS; next <= RUN_MS; next += INTERVAL_MS) {
    await sleep(Math.max(0, start + next - preciseNow()));
    const w = cur;
    cur = { t: next, phase: phase(next), claims: [], pickups: [], renews: [], done: 0 };
    windows.push(w);
    const s = await jobsTableStats(schema);
    const row = {
      t: next / 1000,
      phase: w.phase,
      rate: Math.round((w.done * 1000) / INTERVAL_MS),
      claimP50: round(pct(w.claims, 50)),
      claimP95: round(pct(w.claims, 95)),
      pickupP50: round(pct(w.pickups, 50)),
      pickupP95: round(pct(w.pickups, 95)),
      renewP50: round(pct(w.renews, 50)),
      live: s.live,
      dead: s.dead,
      autovacuums: s.autovacuums,
      mb: Math.round(s.mb),
    };
    rows.push(row);
    const cells = Object.values(row);
    table.push(cells);
    process.stdout.write(`${cells.join("\t")}\n`);
  }
  stopping = true;
  await Promise.all([produce, renew, read]);
  await worker.stop();
  for (const s of [producer, workerStore, probe]) await s.close();
  summarize(rows);
}

/** Medians per phase, and when latency came back after the read. */
function summarize(rows: Record<string, number | string>[]): void {
  const of = (phase: string, key: string) => median(rows.filter((r) => r["phase"] === phase).slice(phase === "before" ? 1 : 0).map((r) => Number(r[key])));
  const keys = ["rate", "claimP50", "claimP95", "pickupP50", "pickupP95", "renewP50", "dead"];
  const phases = READ_MS > 0 ? ["before", "read", "after"] : ["before"];
  process.stdout.write("\nmedians per phase (the first window left out of `before`: warm-up)\n");
  printTable(["phase", ...keys], phases.map((p) => [p, ...keys.map((k) => round(of(p, k)))]));
  const summary: Record<string, number | string | boolean> = {};
  for (const p of phases) for (const k of keys) summary[`${k}@${p}`] = round(of(p, k));
  if (READ_MS > 0) {
    const readEnd = (READ_AT + READ_MS) / 1000;
    // Back to normal: the first 30 s after the read (three 10 s windows) whose median claim
    // p50 and median pick-up p50 are within 1.5x of their medians before it; a single quiet
    // window among slow ones does not count.
    const after = rows.filter((r) => r["phase"] === "after");
    const span = Math.max(1, Math.round(30_000 / INTERVAL_MS));
    const within = (i: number, key: string) => median(after.slice(i, i + span).map((r) => Number(r[key]))) <= 1.5 * of("before", key);
    const i = after.findIndex((_, k) => k + span <= after.length && within(k, "claimP50") && within(k, "pickupP50"));
    const backAt = i < 0 ? null : Number(after[i + span - 1]!["t"]) - readEnd;
    summary["backToNormalS"] = backAt ?? "never";
    summary["backWithinMinute"] = backAt !== null && backAt <= 60;
    process.stdout.write(
      backAt === null
        ? "latency did NOT come back within 1.5x of before the read (median of 30 s) by the end of the run\n"
        : `latency back within 1.5x of before the read (median of 30 s) ${backAt} s after it ended: ${backAt <= 60 ? "within" : "NOT within"} a minute\n`,
    );
  }
  process.stdout.write(JSON.stringify({ bench: "soak", history: HISTORY, rate: RATE, rows, summary }) + "\n");
}

try {
  await main();
} finally {
  await dropSchema(schema);
}
