/**
 * bench/ops: what the operations surface costs on a store with history. Builds a SQLite
 * store of JOBS jobs (80 % completed, 2 % dead, the rest waiting) and times, as medians:
 * a /metrics scrape, /api/status and what each dashboard page reads when it opens, the health checks, a 24 h report, a retention round
 * that prunes every completed job, and an online backup. Then the same page reads on a
 * PostgreSQL store of JOBS jobs in a fresh schema (dropped after): its finished jobs made
 * by bench/lib/scale-fill.ts's set-based fill (1 % of them dead), the rest enqueued
 * waiting. No peer offers these as one product, so the rows are Vigil's alone.
 *
 *   npm run bench -- ops [--jobs 100000] [--engines sqlite,postgres]
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { printTable } from "../src/cli/output.js";
import { ManualClock } from "../src/core/clock.js";
import { backupSqlite } from "../src/health/backup.js";
import { runHealthChecks } from "../src/health/checks.js";
import { buildReport } from "../src/health/report.js";
import { startRetention } from "../src/health/retention.js";
import { startHttpServer } from "../src/http/server.js";
import { openStore } from "../src/store/open.js";
import { openSqliteStore } from "../src/store/sqlite/store.js";
import type { Store } from "../src/store/store.js";
import { median } from "./lib/report.js";
import { createStore, destroyStore, fill, QUEUES } from "./lib/scale-fill.js";

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const JOBS = arg("jobs", 100_000);
const ei = process.argv.indexOf("--engines");
const ENGINES = (ei > 0 ? process.argv[ei + 1]! : "sqlite,postgres").split(",");
const DAY = 86_400_000;

async function time(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    xs.push(performance.now() - t);
  }
  return Math.round(median(xs) * 100) / 100;
}

type Row = { system: string; scenario: string; value: number; unit: string };

/** Times, through the real HTTP server, /metrics, /api/status and what each dashboard page asks for when it opens. */
async function timePages(system: string, store: Store, rows: Row[]): Promise<void> {
  const http = await startHttpServer({ port: 0, token: "bench-token-0123456789abcdef", store });
  try {
    const get = async (path: string) => (await fetch(http.url + path)).text();
    const pages: [string, string][] = [
      ["metrics-scrape", "/metrics"],
      ["api-status", "/api/status"],
      ["api-queues", "/api/queues"],
      ["api-jobs-page", "/api/jobs?limit=100"],
      ["api-jobs-dead", "/api/jobs?state=dead&limit=100"],
      ["api-jobs-deep", `/api/jobs?limit=100&before=${Math.round(JOBS / 2)}`],
      ["api-job", `/api/jobs/${Math.round(JOBS / 3)}`],
      ["api-runs-page", "/api/runs?limit=50"],
      ["api-runs-search", "/api/runs?search=nomatch&limit=50"],
      ["api-run", `/api/runs/${Math.round(JOBS / 3)}`],
      ["api-incidents", "/api/incidents"],
      ["api-triggers", "/api/triggers"],
      ["api-report-24h", "/api/report"],
    ];
    for (const [scenario, path] of pages) rows.push({ system, scenario, value: await time(10, () => get(path)), unit: "ms" });
  } finally {
    await http.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), "vigil-bench-ops-"));
const rows: Row[] = [];
try {
  if (ENGINES.includes("sqlite")) await sqliteRows();
  if (ENGINES.includes("postgres")) await postgresRows();
  process.stdout.write(`\n`);
  printTable(["system", "scenario", "value", "unit"], rows.map((r) => [r.system, r.scenario, r.value, r.unit]));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ bench: "ops", rows }) + "\n");

async function sqliteRows(): Promise<void> {
  const clock = new ManualClock(Date.now() - 10 * DAY);
  const file = join(dir, "vigil.db");
  const store = await openSqliteStore(file, { clock });
  const queues = ["outline", "implement", "qa"];
  process.stdout.write(`building a store of ${JOBS} jobs in ${dir} ...\n`);
  for (let i = 0; i < JOBS; i += 1000) {
    await store.enqueueMany(Array.from({ length: Math.min(1000, JOBS - i) }, (_, k) => ({ queue: queues[(i + k) % 3]!, payload: { i: i + k, text: "x".repeat(100) }, maxAttempts: 1 })));
  }
  const finish = async (n: number, dead: boolean) => {
    for (let done = 0; done < n; ) {
      const per = Math.min(1000, n - done);
      const leases = await store.claim({ workerId: "bench:1", queues: Object.fromEntries(queues.map((q) => [q, Math.ceil(per / 3)])), leaseMs: 60_000 });
      if (leases.length === 0) break;
      if (dead) for (const l of leases) await store.fail(l, { message: "bench" });
      else await store.completeMany(leases.map((l) => ({ lease: l, result: { ok: true } })));
      done += leases.length;
    }
  };
  await finish(Math.round(JOBS * 0.8), false);
  clock.advance(9 * DAY); // the completed jobs are now 9 days old: past retention
  await finish(Math.round(JOBS * 0.02), true);

  await timePages("vigil-sqlite", store, rows);
  rows.push({
    system: "vigil-sqlite",
    scenario: "health-checks",
    value: await time(10, () => runHealthChecks({ store, stateDir: join(dir, ".vigil"), limits: { maxWaitingAge: 300_000, maxDeadPerHour: 10, minFreeDisk: 1 << 20 }, storeFile: file, now: clock.now() })),
    unit: "ms",
  });
  rows.push({ system: "vigil-sqlite", scenario: "report-24h", value: await time(5, () => buildReport(store, { since: clock.now() - DAY })), unit: "ms" });
  rows.push({ system: "vigil-sqlite", scenario: "report-30d", value: await time(3, () => buildReport(store, { since: clock.now() - 30 * DAY })), unit: "ms" });

  const bytes = statSync(file).size;
  const backupMs = await time(1, () => backupSqlite(file, join(dir, "copy.db")));
  rows.push({ system: "vigil-sqlite", scenario: "backup", value: backupMs, unit: "ms" });
  rows.push({ system: "vigil-sqlite", scenario: "backup-rate", value: Math.round((bytes / (1 << 20) / (backupMs / 1000)) * 10) / 10, unit: "MB/s" });

  const retention = startRetention(store, { completed: 7 * DAY, dead: 30 * DAY }, { firstAfter: 3_600_000 });
  let pruned = 0;
  const pruneMs = await time(1, async () => {
    pruned = (await retention.runOnce())?.completed ?? 0;
  });
  await retention.stop();
  rows.push({ system: "vigil-sqlite", scenario: "prune-completed", value: pruneMs, unit: "ms" });
  rows.push({ system: "vigil-sqlite", scenario: "prune-rate", value: Math.round(pruned / (pruneMs / 1000)), unit: "jobs/s" });
  await store.close();
  process.stdout.write(`sqlite store: ${JOBS} jobs, ${(bytes / (1 << 20)).toFixed(1)} MiB; medians of 10 (report 30d: 3; backup, prune: 1)\n`);
}

async function postgresRows(): Promise<void> {
  const waiting = Math.round(JOBS * 0.18);
  process.stdout.write(`building a PostgreSQL store of ${JOBS} jobs (${JOBS - waiting} finished, set-based; ${waiting} enqueued) ...\n`);
  const s = await createStore("postgres", dir, "ops");
  try {
    await fill(s, JOBS - waiting);
    const store = await openStore(s.url);
    try {
      for (let i = 0; i < waiting; i += 1000) {
        await store.enqueueMany(Array.from({ length: Math.min(1000, waiting - i) }, (_, k) => ({ queue: QUEUES[(i + k) % 3]!, payload: { i: i + k, text: "x".repeat(100) }, maxAttempts: 1 })));
      }
      await timePages("vigil-postgres", store, rows);
    } finally {
      await store.close();
    }
    process.stdout.write(`postgres store: ${JOBS} jobs in schema ${s.schema} (dropped now); medians of 10\n`);
  } finally {
    await destroyStore(s);
  }
}
