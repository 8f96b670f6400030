/**
 * Shared by the supervisor's end-to-end tests: a throw-away project folder, a real
 * `vigil start` child, waiting on conditions with a deadline, and a clean-up that leaves
 * no process and no temp folder behind.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, expect } from "vitest";
import type { StatusSnapshot, ServiceStatus } from "../../src/core/status.js";
import { isAlive, killGroup, procInfo } from "../../src/os/process.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { readChildren } from "../../src/project/children-file.js";
import { vigilPaths } from "../../src/project/paths.js";
import { askSupervisor } from "../../src/supervisor/supervisor.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const VIGIL = join(ROOT, "bin", "vigil");

export interface Project {
  dir: string;
  config: string;
}

export function makeProject(yaml: string, files: Record<string, string> = {}): Project {
  const dir = mkdtempSync(join(tmpdir(), "vigil-sup-"));
  writeFileSync(join(dir, "vigil.yaml"), yaml);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, config: join(dir, "vigil.yaml") };
}

export interface Running {
  child: ChildProcess;
  output: () => string;
}

/**
 * `vigil start` as a child (own process group, so it can be SIGKILLed alone); `env` is
 * added to this process's environment (the supervisor hands it on to its children).
 */
export function startVigil(p: Project, args: string[] = [], env: NodeJS.ProcessEnv = {}): Running {
  let out = "";
  const child = spawn(process.execPath, [VIGIL, "-c", p.config, "start", ...args], { cwd: p.dir, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  child.on("error", () => {});
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

/** Runs a vigil command to completion. */
export function vigil(p: Project, args: string[], timeoutMs = 60_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [VIGIL, "-c", p.config, ...args], { cwd: p.dir, encoding: "utf8", timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value other than undefined/false/null, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await sleep(everyMs);
  }
}

export async function snapshot(p: Project): Promise<StatusSnapshot | null> {
  const res = await askSupervisor(p.dir, { op: "status" }, 5000);
  return res?.ok ? (res.snapshot as StatusSnapshot) : null;
}

export async function row(p: Project, name: string): Promise<ServiceStatus | undefined> {
  return (await snapshot(p))?.services.find((s) => s.name === name);
}

/** Waits until every row is `running`; returns the rows. */
export async function allRunning(p: Project, run?: Running, timeoutMs = 30_000): Promise<ServiceStatus[]> {
  let last = null as StatusSnapshot | null;
  try {
    return await waitFor("every process running", async () => {
      const s = (last = await snapshot(p));
      return s && s.services.length > 0 && s.services.every((r) => r.state === "running") ? s.services : null;
    }, timeoutMs);
  } catch (err) {
    const rows = last?.services.map((r) => `${r.name}=${r.state}`).join(" ") ?? "no answer";
    throw new Error(`${(err as Error).message}; rows: ${rows}; supervisor output:\n${run?.output() ?? ""}`);
  }
}

export function openProjectStore(p: Project): Promise<Store> {
  return openStore(`sqlite:${join(p.dir, ".vigil", "vigil.db")}`);
}

export function lines(path: string): string[] {
  try {
    return readFileSync(path, "utf8").split("\n").filter((l) => l.length > 0);
  } catch {
    return [];
  }
}

/** Stops the supervisor (SIGTERM, then SIGKILL), kills any child it left, removes the folder. */
export async function cleanUp(p: Project, runs: Running[]): Promise<void> {
  const paths = vigilPaths(p.dir);
  const children = readChildren(paths.childrenFile);
  for (const r of runs) {
    if (r.child.exitCode === null && r.child.signalCode === null && r.child.pid) {
      killGroup(r.child.pid, "SIGTERM");
      const deadline = Date.now() + 15_000;
      while (isAlive(r.child.pid) && Date.now() < deadline) await sleep(100);
      killGroup(r.child.pid, "SIGKILL");
    }
  }
  for (const c of [...children, ...readChildren(paths.childrenFile)]) killGroup(c.pid, "SIGKILL");
  rmSync(p.dir, { recursive: true, force: true });
}

/** What a supervisor test file holds per test; `supervisorTest()` clears it after each. */
export interface SupervisorTest {
  project: Project | null;
  runs: Running[];
  /** A store the test opened on the project; closed before the project is cleaned up. */
  store: Store | null;
}

/**
 * The per-test state of a supervisor end-to-end file, with an `afterEach` that closes the
 * store, stops every `vigil start` (see `cleanUp`) and removes the project folder.
 */
export function supervisorTest(): SupervisorTest {
  const t: SupervisorTest = { project: null, runs: [], store: null };
  afterEach(async () => {
    await t.store?.close();
    t.store = null;
    if (t.project) await cleanUp(t.project, t.runs);
    t.project = null;
    t.runs = [];
  });
  return t;
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

/**
 * A handler for the worker tests: on its first attempt it sleeps, blocks its event loop
 * or never settles (per `payload.mode`); every attempt logs start and end with its pid
 * to runs.log; the result names the process that completed the job.
 */
export const WORK_HANDLER = `import { appendFileSync, existsSync, writeFileSync } from "node:fs";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default async function handle(job, ctx) {
  const log = (what) => appendFileSync(new URL("./runs.log", import.meta.url), process.pid + " " + job.id + " " + job.attempt + " " + what + "\\n");
  log("start");
  // "sleep-once": only the first run sleeps, however the job came back (a drained
  // worker gives a job back without counting the attempt).
  if (job.payload.mode === "sleep-once") {
    const marker = new URL("./slept-" + job.id, import.meta.url);
    if (!existsSync(marker)) {
      writeFileSync(marker, "");
      await sleep(job.payload.ms);
    }
  } else if (job.attempt === 1) {
    const mode = job.payload.mode;
    if (mode === "sleep") await sleep(job.payload.ms);
    if (mode === "block") {
      await sleep(job.payload.after ?? 0);
      for (;;) {}
    }
    if (mode === "hang") await new Promise(() => {});
  }
  log("end");
  return { pid: process.pid };
}
`;

/**
 * A command handler that records each side effect with its attempt in ledger.log
 * (`ATTEMPT start|end PID`): the first attempt takes 6 s, longer than a stall, the release
 * and the retry together.
 */
export const LEDGER_COMMAND = `import { appendFileSync } from "node:fs";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const { attempt } = JSON.parse(input);
const note = (what) => appendFileSync("ledger.log", attempt + " " + what + " " + process.pid + "\\n");
note("start");
if (attempt === 1) await new Promise((r) => setTimeout(r, 6000));
note("end");
console.log(JSON.stringify({ pid: process.pid }));
`;

/** Two workers on queue `cmd`, whose handler is LEDGER_COMMAND as ./ledger-cmd.mjs. */
export const LEDGER_YAML = (supervision: string) => `queues:
  cmd: { command: [${JSON.stringify(process.execPath)}, ./ledger-cmd.mjs] }
services:
  workers: { queues: [cmd], instances: 2 }
supervision: ${supervision}
http: { enabled: false }
`;

/** Two workers on queue `work` (no timeout to speak of) and `hang` (2 s timeout, 1 s killGrace). */
export const WORKERS_YAML = (supervision: string) => `queues:
  work: { handler: ./work.mjs }
  hang: { handler: ./work.mjs, timeout: 2s, killGrace: 1s }
services:
  workers: { queues: [work, hang], instances: 2 }
supervision: ${supervision}
http: { enabled: false }
`;

/** The worker process that holds job `id` now and has reported it in a heartbeat. */
export async function holderOf(p: Project, store: Store, id: number): Promise<{ pid: number; name: string }> {
  return waitFor(`job ${id} active on a worker`, async () => {
    const job = await store.get(id);
    if (job?.state !== "active" || !job.workerId) return null;
    const r = (await snapshot(p))?.services.find((s) => s.workerId === job.workerId);
    // Wait for a heartbeat that lists the job too, so the incident can name it.
    return r?.pid && (r.activeJobs ?? 0) > 0 ? { pid: r.pid, name: r.name } : null;
  });
}

/** Whether a process still runs (a zombie whose parent has not collected it has ended). */
export function running(pid: number): boolean {
  return isAlive(pid) && procInfo(pid)?.state !== "Z";
}

/**
 * Runs a command job on a supervised worker, sends the worker `signal` (the worker alone:
 * its command runs in a process group of its own), and checks that the first attempt's
 * command was gone before the retry started and never finished. Returns the pids.
 */
export async function commandDiesWithWorker(t: SupervisorTest, supervision: string, signal: NodeJS.Signals): Promise<{ victim: { pid: number; name: string }; cmdPid: number }> {
  t.project = makeProject(LEDGER_YAML(supervision), { "ledger-cmd.mjs": LEDGER_COMMAND });
  t.runs.push(startVigil(t.project));
  await allRunning(t.project, t.runs[0]);
  t.store = await openProjectStore(t.project);
  const store = t.store;
  const { job } = await store.enqueue("cmd", {});
  const victim = await holderOf(t.project, store, job.id);
  const ledger = join(t.project.dir, "ledger.log");
  const first = await waitFor("the first attempt's command running", () => lines(ledger).find((l) => l.startsWith("1 start ")));
  const cmdPid = Number(first.split(" ")[2]);
  process.kill(victim.pid, signal);

  await waitFor("the second attempt started", () => lines(ledger).some((l) => l.startsWith("2 start ")));
  const commandAliveAtRetry = running(cmdPid);
  await waitFor("job completed elsewhere", async () => (await store.get(job.id))?.state === "completed");
  await waitFor("the first attempt's command gone", () => !running(cmdPid));
  expect(lines(ledger).filter((l) => l.startsWith("1 "))).toEqual([`1 start ${cmdPid}`]);
  expect(commandAliveAtRetry).toBe(false);
  return { victim, cmdPid };
}

/**
 * `vigil start` of two workers on queue `work` with the HTTP server on a free port; waits
 * until every service runs. Returns the server's base URL and the services' rows.
 */
export async function startWithHttp(t: SupervisorTest): Promise<{ port: number; base: string; rows: ServiceStatus[] }> {
  const port = await freePort();
  t.project = makeProject(
    `queues:
  work: { handler: ./work.mjs }
services:
  workers: { queues: [work], instances: 2 }
supervision: { stallAfter: 2s, killTimeout: 1s }
http: { port: ${port} }
`,
    { "work.mjs": WORK_HANDLER },
  );
  t.runs.push(startVigil(t.project));
  const rows = await allRunning(t.project, t.runs[0]);
  return { port, base: `http://127.0.0.1:${port}`, rows };
}
