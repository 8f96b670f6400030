/**
 * The faults the chaos soak injects, one at a time, each recorded with when it began
 * (`t0`), when it was lifted (`t1`: SIGCONT sent, lock given up, writer reopened; `t0`
 * for an instant fault), the service it aimed at and the work it touched.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Store } from "../../src/store/store.js";
import { IGNORE_ABORT_EXTRA_MS, INGEST_TIMEOUT_MS, ownedBy, ROOT, safeKill, sleep, snapshot, type LogWriter, type Project } from "./chaos-project.js";

const run = promisify(execFile);

export type FaultKind =
  | "worker-kill"
  | "worker-stop"
  | "supervisor-stop"
  | "sqlite-lock"
  | "pg-restart"
  | "logrotate"
  | "poison"
  | "abort-ignored";

export interface Fault {
  kind: FaultKind;
  /** ms since the epoch: the fault began. */
  t0: number;
  /** ms since the epoch: the fault was lifted (t0 for an instant fault). */
  t1: number;
  /** The service (`workers:1`, ...) the fault aimed at, if one. */
  target: string | null;
  pid: number | null;
  /** Jobs the target worker held when the fault began. */
  jobs: number[];
  /** Input records the fault touched; recovery waits for their pipeline runs to finish. */
  recs: string[];
  note: string;
}

/** A seeded PRNG (mulberry32): the same seed gives the same faults, waits and targets. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultContext {
  project: Project;
  store: Store;
  storeKind: "sqlite" | "postgres";
  rnd: () => number;
  writer: LogWriter;
  /** Child processes this soak started besides the supervisor (lock holders). */
  children: Set<ChildProcess>;
  /** Records enqueued directly (not by the tail trigger), with whether they are poison. */
  direct: Map<string, { poison: boolean }>;
}

/** The kinds this run may inject. PostgreSQL restarts only when asked for. */
export function faultKinds(storeKind: "sqlite" | "postgres", pgRestart: boolean): FaultKind[] {
  const kinds: FaultKind[] = ["worker-kill", "worker-stop", "supervisor-stop", "logrotate", "poison", "abort-ignored"];
  if (storeKind === "sqlite") kinds.push("sqlite-lock");
  if (storeKind === "postgres" && pgRestart) kinds.push("pg-restart");
  return kinds;
}

const between = (rnd: () => number, lo: number, hi: number) => Math.round(lo + rnd() * (hi - lo));
let serial = 0;

export async function inject(kind: FaultKind, ctx: FaultContext): Promise<Fault | null> {
  const f = (over: Partial<Fault>): Fault => ({ kind, t0: Date.now(), t1: Date.now(), target: null, pid: null, jobs: [], recs: [], note: "", ...over });
  switch (kind) {
    case "worker-kill":
    case "worker-stop": {
      const snap = await snapshot(ctx.project.dir);
      const workers = (snap?.services ?? []).filter((s) => s.kind === "worker" && s.state === "running" && s.pid && s.workerId);
      if (workers.length === 0) return null;
      // Prefer a worker that holds jobs: that is where a fault costs something.
      const busy = workers.filter((w) => (w.activeJobs ?? 0) > 0);
      const pool = busy.length ? busy : workers;
      const w = pool[Math.floor(ctx.rnd() * pool.length)]!;
      const held = (await ctx.store.list({ state: "active", limit: 0 })).filter((j) => j.workerId === w.workerId).map((j) => j.id);
      const t0 = Date.now();
      if (kind === "worker-kill") {
        // The worker process alone, as the kernel's OOM killer would: its command
        // handlers run in their own process groups and are not signalled.
        safeKill(w.pid!, "SIGKILL");
        return f({ t0, t1: t0, target: w.name, pid: w.pid, jobs: held, note: `SIGKILL pid ${w.pid}` });
      }
      const ms = between(ctx.rnd, 1000, 10_000);
      safeKill(w.pid!, "SIGSTOP");
      await sleep(ms);
      // The supervisor may have killed it meanwhile: wake it only if it is still ours.
      if (ownedBy(w.pid!, ctx.project.dir)) safeKill(w.pid!, "SIGCONT");
      return f({ t0, t1: Date.now(), target: w.name, pid: w.pid, jobs: held, note: `SIGSTOP pid ${w.pid} for ${ms} ms` });
    }
    case "supervisor-stop": {
      const pid = ctx.project.supervisor?.pid;
      if (!pid) return null;
      const ms = between(ctx.rnd, 2000, 8000);
      const t0 = Date.now();
      safeKill(pid, "SIGSTOP");
      await sleep(ms);
      safeKill(pid, "SIGCONT");
      return f({ t0, t1: Date.now(), pid, note: `SIGSTOP supervisor pid ${pid} for ${ms} ms` });
    }
    case "sqlite-lock": {
      const ms = between(ctx.rnd, 2000, 8000);
      const r = await holdSqliteLock(ctx, ms);
      return r && f({ t0: r.t0, t1: r.t1, pid: r.pid, note: `BEGIN IMMEDIATE held ${ms} ms by pid ${r.pid}` });
    }
    case "pg-restart": {
      const version = readdirSync("/etc/postgresql")[0];
      if (!version) return null;
      const t0 = Date.now();
      await run("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", "restart"], { timeout: 120_000 });
      return f({ t0, t1: Date.now(), note: `pg_ctlcluster ${version} main restart` });
    }
    case "logrotate": {
      const { dir } = ctx.project;
      const conf = join(dir, "logrotate.conf");
      if (!existsSync(conf)) {
        writeFileSync(conf, `${ctx.project.log} {\n  create 0644\n  rotate 5\n  missingok\n  nocompress\n}\n`, { mode: 0o644 });
      }
      const first = ctx.writer.seq;
      const t0 = Date.now();
      await run("/usr/sbin/logrotate", ["-f", "-s", join(dir, "logrotate.state"), conf], { timeout: 30_000 });
      // The writer goes on writing to the renamed file for a second, then reopens the
      // path, as a daemon told by a postrotate SIGHUP would.
      await sleep(1000);
      ctx.writer.reopen();
      const last = ctx.writer.seq; // the first line that goes to the new file
      const recs: string[] = [];
      for (let s = first; s <= last; s++) recs.push(`t-${s}`);
      return f({ t0, t1: Date.now(), recs, note: `logrotate create; records t-${first}..t-${last}` });
    }
    case "poison": {
      const poison = ctx.rnd() < 0.5 ? "priority" : "key";
      const rec = `p-${++serial}`;
      ctx.direct.set(rec, { poison: true });
      const t0 = Date.now();
      await ctx.store.enqueue("ingest", { rec, poison });
      return f({ t0, t1: t0, recs: [rec], note: poison === "priority" ? "next-stage job with priority 2**31" : "next-stage job with a 4,000-char key" });
    }
    case "abort-ignored": {
      const rec = `a-${++serial}`;
      ctx.direct.set(rec, { poison: false });
      const t0 = Date.now();
      await ctx.store.enqueue("ingest", { rec, ignoreAbortMs: INGEST_TIMEOUT_MS + IGNORE_ABORT_EXTRA_MS });
      return f({ t0, t1: t0, recs: [rec], note: `handler ignores its abort, runs ${INGEST_TIMEOUT_MS + IGNORE_ABORT_EXTRA_MS} ms (timeout ${INGEST_TIMEOUT_MS} ms)` });
    }
  }
}

// Under `node -e`, process.argv[1] is the first argument after the script.
const LOCKER = `
const Database = require(process.argv[1]);
const db = new Database(process.argv[2]);
db.pragma("busy_timeout = 30000");
db.exec("BEGIN IMMEDIATE");
process.stdout.write("locked\\n");
setTimeout(() => { db.exec("ROLLBACK"); db.close(); process.stdout.write("released\\n"); process.exit(0); }, Number(process.argv[3]));
`;

/** A second process takes SQLite's write lock (BEGIN IMMEDIATE) and holds it for `ms`. */
async function holdSqliteLock(ctx: FaultContext, ms: number): Promise<{ t0: number; t1: number; pid: number } | null> {
  const db = join(ctx.project.dir, ".vigil", "vigil.db");
  const child = spawn(process.execPath, ["-e", LOCKER, join(ROOT, "node_modules", "better-sqlite3"), db, String(ms)], { stdio: ["ignore", "pipe", "inherit"] });
  ctx.children.add(child);
  let t0 = 0;
  let t1 = 0;
  child.stdout!.on("data", (d: Buffer) => {
    const s = d.toString();
    if (s.includes("locked") && !t0) t0 = Date.now();
    if (s.includes("released")) t1 = Date.now();
  });
  const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  ctx.children.delete(child);
  if (code !== 0 || !t0) return null;
  return { t0, t1: t1 || Date.now(), pid: child.pid! };
}
