/**
 * bench/chaos — a soak under random faults: does Vigil lose work, run a side effect twice
 * after it let go of a job, or kill healthy workers, and how long does each kind of fault
 * take to heal without a person?
 *
 *   npm run bench -- chaos [--minutes 10] [--store sqlite|postgres|both] [--seed N]
 *                          [--rate 20] [--drain 3m] [--pg-restart]
 *
 * For each store, a fresh project in a temp folder (bench/lib/chaos-project.ts): a real
 * `vigil start` with two worker processes and the triggers process, default supervision
 * (stallAfter 5 s, killTimeout 5 s), running ingest -> transform -> publish (two module
 * stages and a python3 command stage), every handler writing START and END ledger lines
 * around its side effect. Load: `--rate` JSON lines a second appended to the log a tail
 * trigger follows, plus a `vigil enqueue ingest -` batch of 50 records every 15-25 s.
 * Faults, one at a time, 4-16 s apart once every service runs again, of a kind drawn
 * uniformly (bench/lib/chaos-faults.ts): worker SIGKILL; worker SIGSTOP, SIGCONT 1-10 s
 * later; supervisor SIGSTOP for 2-8 s; SQLite's write lock held 2-8 s by another process
 * (SQLite only); a PostgreSQL restart (PostgreSQL with --pg-restart only: it restarts the
 * server for everyone on the machine); logrotate in create mode, the writer reopening a
 * second later; a poison record (its transform returns a next-stage job with priority
 * 2**31 or a 4,000-char key); a handler that ignores its abort past the queue timeout.
 * Every draw (kinds, gaps, durations, targets) comes from a PRNG seeded by --seed.
 * After `--minutes`, faults and load stop and the pipeline drains (at most --drain); then
 * the figures are computed from the store and the ledger, with the definitions printed
 * (bench/lib/chaos-analysis.ts). Progress every 15 s. Ctrl-C stops everything it started.
 * Last line: { "bench": "chaos", "rows": [{ system, scenario, value, unit }] }.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { printTable } from "../src/cli/output.js";
import { requireDuration } from "../src/core/duration.js";
import { killGroup } from "../src/os/process.js";
import { openStore } from "../src/store/open.js";
import type { Store } from "../src/store/store.js";
import { analyse, DEFINITIONS, summariseRecovery, type Sample } from "./lib/chaos-analysis.js";
import { faultKinds, inject, prng, type Fault, type FaultContext, type FaultKind } from "./lib/chaos-faults.js";
import { allRunning, LogWriter, makeProject, sleep, snapshot, startVigil, stopVigil, VIGIL, waitFor, type Project } from "./lib/chaos-project.js";
import { dropSchema, freshSchema, PG_URL } from "./lib/pg.js";
import { median, percentile, type BenchRow } from "./lib/report.js";

const { values: opts } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    store: { type: "string", default: "sqlite" },
    seed: { type: "string" },
    rate: { type: "string", default: "20" },
    drain: { type: "string", default: "3m" },
    "pg-restart": { type: "boolean", default: false },
  },
});
const MINUTES = Number(opts.minutes);
const RATE = Number(opts.rate);
const DRAIN_MS = requireDuration(opts.drain!, "--drain");
const SEED = opts.seed !== undefined ? Number(opts.seed) : Math.floor(Math.random() * 2 ** 31);
const STORES = opts.store === "both" ? (["sqlite", "postgres"] as const) : ([opts.store] as ("sqlite" | "postgres")[]);
if (!(MINUTES > 0) || !(RATE > 0) || !Number.isInteger(SEED) || !STORES.every((s) => s === "sqlite" || s === "postgres")) {
  process.stderr.write("usage: npm run bench -- chaos [--minutes 10] [--store sqlite|postgres|both] [--seed N] [--rate 20] [--drain 3m] [--pg-restart]\n");
  process.exit(2);
}
/** Progress lines this often, so a long run can be watched. */
const PROGRESS_MS = 15_000;
/** Status samples this often: the resolution of the "every service running" part of recovery. */
const SAMPLE_MS = 500;

const rows: BenchRow[] = [];

/** Everything a run started, for cleanup on Ctrl-C as well as at the end. */
interface Live {
  project: Project;
  store: Store | null;
  writer: LogWriter | null;
  schema: string | null;
  children: Set<ChildProcess>;
}
let live: Live | null = null;
let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  const l = live;
  if (!l) return Promise.resolve();
  cleaning ??= (async () => {
    l.writer?.close();
    for (const c of l.children) if (c.pid) killGroup(c.pid, "SIGKILL") || c.kill("SIGKILL");
    await stopVigil(l.project);
    await l.store?.close().catch(() => {});
    if (l.schema) await dropSchema(l.schema).catch((e: Error) => process.stderr.write(`chaos: could not drop schema ${l.schema}: ${e.message}\n`));
    rmSync(l.project.dir, { recursive: true, force: true });
    live = null;
    cleaning = null;
  })();
  return cleaning;
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nchaos: ${sig}; stopping everything this run started\n`);
    setTimeout(() => process.exit(1), 60_000).unref();
    void cleanup().finally(() => process.exit(1));
  });
}

/** One `vigil enqueue ingest -` batch of 50 records; they count only if the command succeeded. */
function enqueueBatch(l: Live, batch: number, direct: Map<string, { poison: boolean }>): Promise<boolean> {
  const recs = Array.from({ length: 50 }, (_, i) => `e-${batch}-${i}`);
  const child = spawn(process.execPath, [VIGIL, "-c", l.project.config, "enqueue", "ingest", "-"], { cwd: l.project.dir, stdio: ["pipe", "ignore", "pipe"] });
  l.children.add(child);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  child.stdin!.end(recs.map((rec) => JSON.stringify({ rec })).join("\n") + "\n");
  return new Promise((resolve) => {
    child.on("exit", (code) => {
      l.children.delete(child);
      if (code === 0) for (const rec of recs) direct.set(rec, { poison: false });
      else process.stderr.write(`chaos: enqueue batch ${batch} failed (exit ${code}): ${err.trim().slice(0, 200)}\n`);
      resolve(code === 0);
    });
  });
}

async function soak(kind: "sqlite" | "postgres"): Promise<void> {
  const system = `vigil-${kind}`;
  const schema = kind === "postgres" ? freshSchema("chaos") : null;
  const project = makeProject(kind, PG_URL, schema);
  const l: Live = { project, store: null, writer: null, schema, children: new Set() };
  live = l;
  const rnd = prng(SEED + (kind === "postgres" ? 1 : 0));
  process.stdout.write(`\n== ${system}: ${MINUTES} min, seed ${SEED}, ${RATE} lines/s, project ${project.dir}${schema ? `, schema ${schema}` : ""}\n`);
  await startVigil(project);
  l.store = await openStore(kind === "sqlite" ? `sqlite:${project.dir}/.vigil/vigil.db` : PG_URL, schema ? { schema } : {});
  const store = l.store;
  const startedAt = Date.now();
  const writer = new LogWriter(project.log, RATE);
  l.writer = writer;
  writer.start();

  const direct = new Map<string, { poison: boolean }>();
  const faults: Fault[] = [];
  const samples: Sample[] = [];
  const ctx: FaultContext = { project, store, storeKind: kind, rnd, writer, children: l.children, direct };
  const kinds = faultKinds(kind, opts["pg-restart"]!);
  const endAt = startedAt + MINUTES * 60_000;
  let sampling = true;
  let failedBatches = 0;

  const sampler = (async () => {
    while (sampling) {
      const t0 = Date.now();
      const s = await snapshot(project.dir, 2000);
      const t = Date.now();
      if (s) {
        samples.push({
          t,
          allRunning: allRunning(s),
          services: s.services.map((v) => ({ name: v.name, pid: v.pid, state: v.state, hbAt: v.heartbeatAgeMs === null ? null : t - v.heartbeatAgeMs })),
        });
      }
      await sleep(Math.max(0, SAMPLE_MS - (Date.now() - t0)));
    }
  })();

  const progress = setInterval(() => {
    void store.stats().then((st) => {
      const sum = (k: "completed" | "active" | "waiting" | "dead") => Object.values(st).reduce((a, c) => a + c[k], 0);
      const byKind = kinds.map((k) => `${k} ${faults.filter((f) => f.kind === k).length}`).join(", ");
      process.stdout.write(`[${String(Math.round((Date.now() - startedAt) / 1000)).padStart(4)} s] faults ${faults.length} (${byKind}) | lines ${writer.seq} | completed ${sum("completed")}, active ${sum("active")}, waiting ${sum("waiting")}, dead ${sum("dead")}\n`);
    }, () => process.stdout.write(`[${Math.round((Date.now() - startedAt) / 1000)} s] (store not answering)\n`));
  }, PROGRESS_MS);

  const batches = (async () => {
    // Its own PRNG: the fault loop's draws must not depend on how the two loops interleave.
    const brnd = prng(SEED ^ 0x5bd1e995);
    let batch = 0;
    while (Date.now() < endAt) {
      await sleep(15_000 + brnd() * 10_000);
      if (Date.now() >= endAt) break;
      if (!(await enqueueBatch(l, ++batch, direct))) failedBatches++;
    }
  })();

  // Faults, one at a time; the next waits until every service runs again (at most 60 s).
  while (Date.now() < endAt) {
    await sleep(4000 + rnd() * 12_000);
    if (Date.now() >= endAt) break;
    const k = kinds[Math.floor(rnd() * kinds.length)]!;
    const f = await inject(k, ctx).catch((e: Error) => {
      process.stderr.write(`chaos: injecting ${k} failed: ${e.message}\n`);
      return null;
    });
    if (f) {
      faults.push(f);
      process.stdout.write(`  fault ${faults.length}: ${f.kind}${f.target ? ` on ${f.target}` : ""}: ${f.note}\n`);
    }
    await waitFor("every service running", async () => allRunning(await snapshot(project.dir)), 60_000, 250).catch(() => {
      process.stdout.write("  (not every service is running 60 s after the fault; going on)\n");
    });
  }
  writer.stop();
  await batches;
  const tailRecords = writer.seq;

  // Drain: until every service runs and nothing is left to run, and either the trigger
  // has read every line or 5 s passed so (lines that never come); bounded by --drain.
  process.stdout.write(`faults stopped at ${Math.round((Date.now() - startedAt) / 1000)} s; draining (at most ${Math.round(DRAIN_MS / 1000)} s)\n`);
  const drainStart = Date.now();
  let quietSince: number | null = null;
  while (Date.now() - drainStart < DRAIN_MS) {
    const st = await store.stats().catch(() => null);
    const open = st ? Object.values(st).reduce((a, c) => a + c.scheduled + c.waiting + c.active + c.failed, 0) : 1;
    const ingested = st?.["ingest"] ? Object.values(st["ingest"]).reduce((a, b) => a + b, 0) : 0;
    const settled = open === 0 && allRunning(await snapshot(project.dir));
    if (settled && ingested >= tailRecords + direct.size) break;
    if (settled) quietSince ??= Date.now();
    else quietSince = null;
    if (quietSince !== null && Date.now() - quietSince > 5000 + 2 * 500) break;
    await sleep(500);
  }
  const drainedMs = Date.now() - drainStart;
  clearInterval(progress);
  sampling = false;
  await sampler;

  const jobs = await store.list({ limit: 0 });
  const incidents = await store.listIncidents({ since: startedAt - 1000, limit: 100_000 });
  const r = analyse({ jobs, incidents, faults, samples, ledgerPath: project.ledger, tailRecords, direct });
  await cleanup();

  // --- report -------------------------------------------------------------------------
  const lost = r.lost.missing.length + r.lost.stuck.length + r.lost.dead.length;
  const rec = summariseRecovery(r.recovery);
  const unrecovered = r.recovery.filter((x) => x.ms === null).length;
  process.stdout.write(`\n${system}: drained in ${Math.round(drainedMs / 1000)} s; ${failedBatches} enqueue batch(es) failed and are not counted\n`);
  const count = (scenario: string, value: number) => rows.push({ system, scenario, value, unit: "count" });
  count("faults", faults.length);
  for (const k of kinds) count(`faults-${k}`, faults.filter((f) => f.kind === k).length);
  count("records", r.records);
  count("jobs-completed", r.jobsCompleted);
  count("lost", lost);
  count("lost-missing", r.lost.missing.length);
  count("lost-stuck", r.lost.stuck.length);
  count("lost-dead", r.lost.dead.length);
  count("enqueued-twice", r.enqueuedTwice.length);
  count("twice", r.twice.jobs.size);
  count("twice-overlap", r.twice.overlap.size);
  count("twice-late-end", r.twice.lateEnd.size);
  count("healthy-worker-incidents", r.healthyIncidents.length);
  for (const [k, v] of r.during) {
    if (v.twice) count(`twice-during-${k}`, v.twice);
    if (v.healthy) count(`healthy-worker-incidents-during-${k}`, v.healthy);
  }
  count("unrecovered-faults", unrecovered);
  for (const [k, v] of rec) {
    if (v.ms.length === 0) continue;
    rows.push({ system, scenario: `recovery-${k}-p50`, value: Math.round(median(v.ms)), unit: "ms" });
    rows.push({ system, scenario: `recovery-${k}-p95`, value: Math.round(percentile(v.ms, 95)), unit: "ms" });
  }
  const mine = rows.filter((x) => x.system === system);
  printTable(["SYSTEM", "SCENARIO", "VALUE", "UNIT"], mine.map((x) => [x.system, x.scenario, String(x.value), x.unit]));
  process.stdout.write(`\nhandler runs ${r.twice.runs}; jobs run more than once ${r.twice.reruns}; runs cut short (no END) ${r.twice.cut}\n`);
  printTable(
    ["FAULT", "N", "RECOVERED", "MEDIAN MS", "P95 MS", "MAX MS"],
    [...rec].map(([k, v]) => [k, String(v.ms.length + v.unrecovered), String(v.ms.length), v.ms.length ? String(Math.round(median(v.ms))) : "-", v.ms.length ? String(Math.round(percentile(v.ms, 95))) : "-", v.ms.length ? String(Math.max(...v.ms)) : "-"]),
  );
  const show = (what: string, xs: string[]) => xs.length && process.stdout.write(`${what} (${xs.length}): ${xs.slice(0, 12).join(", ")}${xs.length > 12 ? ", ..." : ""}\n`);
  show("lost, missing", r.lost.missing);
  show("lost, stuck", r.lost.stuck);
  show("lost, dead", r.lost.dead);
  show("enqueued twice", r.enqueuedTwice);
  show("twice, overlapping runs (job ids)", [...r.twice.overlap].map(String));
  show("twice, END after release (job ids)", [...r.twice.lateEnd].map(String));
  show("healthy-worker incidents", r.healthyIncidents.map((i) => `${i.service} ${i.cause} at +${Math.round((i.detectedAt - startedAt) / 1000)} s`));
  show("job timeouts no fault explains", r.unexpectedTimeouts.map((i) => `${i.service} at +${Math.round((i.detectedAt - startedAt) / 1000)} s`));
  show("unrecovered faults", r.recovery.filter((x) => x.ms === null).map((x) => `${x.fault.kind} at +${Math.round((x.fault.t0 - startedAt) / 1000)} s (${x.fault.note})`));
}

process.stdout.write(`chaos: seed ${SEED} (rerun with --seed ${SEED}); stores ${STORES.join(", ")}; ${MINUTES} min each; PostgreSQL restarts ${opts["pg-restart"] ? "ON" : "off"}\n`);
for (const kind of STORES) {
  try {
    await soak(kind);
  } catch (e) {
    process.stderr.write(`chaos: the ${kind} soak failed: ${(e as Error).stack ?? e}\n`);
    await cleanup();
    process.exitCode = 1;
  }
}
process.stdout.write(`\n${DEFINITIONS}\n\n`);
process.stdout.write(JSON.stringify({ bench: "chaos", rows }) + "\n");
