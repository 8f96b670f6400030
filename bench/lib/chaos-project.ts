/**
 * The project the chaos soak runs: a three-stage pipeline in a temp folder whose handlers
 * write every side effect into a ledger, a real `vigil start` over it, and the tail
 * trigger's log writer. See bench/chaos.ts for what is measured.
 *
 * Stages: `ingest` and `transform` are module handlers (stage.mjs), `publish` a command
 * handler (publish.py, python3). Each run of a handler appends one line with `ph: "S"` at
 * the start of its side effect and one with `ph: "E"` at its end, with O_APPEND (a single
 * write of a short line, so lines from several processes never interleave).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { StatusSnapshot } from "../../src/core/status.js";
import { killGroup } from "../../src/os/process.js";
import { askSupervisor } from "../../src/supervisor/supervisor.js";
import { sleep, waitFor } from "./wait.js";

export { sleep, waitFor };

export const ROOT = resolve(import.meta.dirname, "..", "..");
export const VIGIL = join(ROOT, "bin", "vigil");

/** ms a handler ignoring its abort keeps running past the `ingest` timeout (4 s): inside killGrace (5 s). */
export const IGNORE_ABORT_EXTRA_MS = 1500;
export const INGEST_TIMEOUT_MS = 4000;

const STAGE = `// A pipeline stage of the chaos soak: ledger lines at the start and end of its side effect.
import { appendFileSync } from "node:fs";
const LEDGER = new URL("./ledger.jsonl", import.meta.url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function mark(job, ph) {
  const p = job.payload ?? {};
  appendFileSync(LEDGER, JSON.stringify({ job: job.id, key: job.key, rec: p.rec, stage: job.queue, attempt: job.attempt, pid: process.pid, ph, t: Date.now() }) + "\\n");
}
export default async function stage(job) {
  const p = job.payload ?? {};
  mark(job, "S");
  // The abort-ignoring fault: the first attempt runs past the queue's timeout and never
  // looks at ctx.signal, as a wedged library call would.
  if (p.ignoreAbortMs && job.attempt === 1 && job.queue === "ingest") await sleep(p.ignoreAbortMs);
  else await sleep(10 + Math.random() * 90);
  mark(job, "E");
  const out = { rec: p.rec, from: job.queue, pid: process.pid };
  if (p.poison) out.poison = p.poison;
  // Poison: a next-stage job the store may refuse. Keys are global, so each poison
  // record gets its own 4,000-char key (a shared one would dedupe the second away).
  if (job.queue === "transform" && p.poison === "priority") return { next: "publish", payload: out, priority: 2 ** 31 };
  if (job.queue === "transform" && p.poison === "key") return { next: "publish", payload: out, key: (p.rec + ":").padEnd(4000, "k") };
  return out;
}
`;

const PUBLISH = `# The last stage of the chaos soak, a command handler: ledger lines around its side effect.
import json, os, random, sys, time
LEDGER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ledger.jsonl")
job = json.load(sys.stdin)
payload = job.get("payload") or {}
def mark(ph):
    line = json.dumps({"job": job["id"], "key": job.get("key"), "rec": payload.get("rec"), "stage": job["queue"],
                       "attempt": job["attempt"], "pid": os.getpid(), "ph": ph, "t": int(time.time() * 1000)}) + "\\n"
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
mark("S")
time.sleep(0.05 + random.random() * 0.15)
mark("E")
print(json.dumps({"rec": payload.get("rec"), "published": True}))
`;


/** The python the command stage runs: the system one when there, it starts fastest. */
function python(): string[] {
  return existsSync("/usr/bin/python3") ? ["/usr/bin/python3", "-S"] : ["python3", "-S"];
}

function config(store: string, schema: string | null): string {
  const q = "attempts: 10, backoff: { base: 500ms, max: 5s }, maxStalls: 8";
  return `# The chaos soak's pipeline: ingest -> transform -> publish.
store: ${store}
${schema ? `schema: ${schema}\n` : ""}http: { enabled: false }
queues:
  ingest: { handler: ./stage.mjs, concurrency: 4, timeout: ${INGEST_TIMEOUT_MS}ms, ${q}, next: transform }
  transform: { handler: ./stage.mjs, concurrency: 4, timeout: 10s, ${q}, next: publish }
  publish: { command: ${JSON.stringify([...python(), "publish.py"])}, concurrency: 4, timeout: 10s, ${q} }
triggers:
  feed: { tail: data/in.log, format: jsonl, queue: ingest, every: 500ms }
services:
  workers: { queues: [ingest, transform, publish], instances: 2 }
# Default stallAfter and killTimeout (5 s each). Faults come on purpose: keep them from
# adding up to a crash-loop verdict or growing the restart backoff.
supervision: { maxRestarts: 1000/5m, minUptime: 1s }
`;
}

export interface Project {
  dir: string;
  config: string;
  ledger: string;
  log: string;
  supervisor: ChildProcess | null;
}

export function makeProject(store: "sqlite" | "postgres", pgUrl: string, schema: string | null): Project {
  const dir = mkdtempSync(join(tmpdir(), `vigil-bench-chaos-${store}-`));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "stage.mjs"), STAGE);
  writeFileSync(join(dir, "publish.py"), PUBLISH);
  writeFileSync(join(dir, "ledger.jsonl"), "");
  writeFileSync(join(dir, "data", "in.log"), "");
  const storeUrl = store === "sqlite" ? "sqlite:.vigil/vigil.db" : pgUrl;
  writeFileSync(join(dir, "vigil.yaml"), config(storeUrl, schema));
  return { dir, config: join(dir, "vigil.yaml"), ledger: join(dir, "ledger.jsonl"), log: join(dir, "data", "in.log"), supervisor: null };
}

export async function snapshot(dir: string, timeoutMs = 2000): Promise<StatusSnapshot | null> {
  const r = await askSupervisor(dir, { op: "status" }, timeoutMs).catch(() => null);
  return r?.ok ? (r.snapshot as StatusSnapshot) : null;
}


export function allRunning(s: StatusSnapshot | null): boolean {
  return !!s && s.services.length === 3 && s.services.every((r) => r.state === "running");
}

export async function startVigil(p: Project): Promise<void> {
  const child = spawn(process.execPath, [VIGIL, "-c", p.config, "start"], { cwd: p.dir, detached: true, stdio: ["ignore", "ignore", "pipe"] });
  child.on("error", (err) => process.stderr.write(`chaos: could not start vigil: ${err.message}\n`));
  // The supervisor's own stderr, kept for a person reading a failed run.
  child.stderr!.on("data", () => {});
  p.supervisor = child;
  await waitFor("both workers and the triggers process running", async () => allRunning(await snapshot(p.dir)), 120_000, 250);
}

/**
 * The processes of this project still alive: those whose command line names its folder
 * (the supervisor, workers, triggers) or whose working folder is it (command handlers).
 * Read from /proc each time, so a pid reused by someone else's process is never touched.
 */
export function projectProcesses(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    if (ownedBy(Number(name), dir)) out.push(Number(name));
  }
  return out;
}

/** Whether `pid` is one of this project's processes (see projectProcesses). */
export function ownedBy(pid: number, dir: string): boolean {
  try {
    if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir)) return true;
    return readlinkSync(`/proc/${pid}/cwd`) === dir;
  } catch {
    return false; // gone, or not ours to read
  }
}

/**
 * Stops the project: SIGCONT to its processes (a fault may have left one stopped),
 * SIGTERM to the supervisor, and after it has gone (or 30 s) SIGKILL to whatever of the
 * project is still alive (command handlers a killed worker left behind, for one).
 */
export async function stopVigil(p: Project): Promise<void> {
  const sup = p.supervisor;
  for (const pid of projectProcesses(p.dir)) safeKill(pid, "SIGCONT");
  if (sup?.pid && sup.exitCode === null && sup.signalCode === null) {
    killGroup(sup.pid, "SIGTERM");
    await waitFor("the supervisor to stop", () => sup.exitCode !== null || sup.signalCode !== null, 30_000, 100).catch(() => {
      process.stderr.write("chaos: the supervisor did not stop within 30 s; SIGKILL to the project's processes\n");
    });
  }
  for (let i = 0; i < 3; i++) {
    const left = projectProcesses(p.dir);
    if (left.length === 0) break;
    for (const pid of left) safeKill(pid, "SIGKILL");
    await sleep(200);
  }
}

export function safeKill(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * The tail trigger's feed, written from this process: `rate` JSON lines a second to
 * data/in.log through an O_APPEND descriptor. `rotated()` keeps writing to the old
 * descriptor (now the rotated file, as a program that reopens on SIGHUP would) and
 * reopens the path `reopenAfterMs` later.
 */
export class LogWriter {
  seq = 0;
  private fd: number;
  private timer: NodeJS.Timeout | null = null;
  private owed = 0;

  constructor(
    private readonly path: string,
    private readonly rate: number,
  ) {
    this.fd = openSync(path, "a");
  }

  start(): void {
    let last = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      this.owed += ((now - last) / 1000) * this.rate;
      last = now;
      let chunk = "";
      for (; this.owed >= 1; this.owed--) chunk += JSON.stringify({ rec: `t-${this.seq}`, seq: this.seq++, at: now }) + "\n";
      if (chunk) writeSync(this.fd, chunk);
    }, 100);
  }

  reopen(): void {
    const old = this.fd;
    this.fd = openSync(this.path, "a");
    closeSync(old);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  close(): void {
    this.stop();
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}
