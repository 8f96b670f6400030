/**
 * Two "hosts" on one machine for the multi-host tests: each is a `vigil start` in its own
 * folder with its own VIGIL_HOST, all sharing one fresh PostgreSQL schema and one shared
 * folder (the tail trigger's file and the handlers' side-effect log live there, as they
 * would on a network file system).
 */
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killGroup } from "../../src/os/process.js";
import { readChildren } from "../../src/project/children-file.js";
import { vigilPaths } from "../../src/project/paths.js";
import { PG_URL } from "../store-contract/pg-helpers.js";
import { makeProject, snapshot, VIGIL, type Project, type Running } from "./supervisor-helpers.js";

/**
 * The handler of both stages: sleeps `payload.ms` (so jobs are mid-run when a host is
 * killed), then logs one side effect `HOST QUEUE JOB-ID ATTEMPT N` to the shared folder and
 * returns `{ n, by }` — the first stage's result is the second stage's payload.
 */
export const STAGE_HANDLER = `import { appendFileSync } from "node:fs";
export default async function stage(job) {
  await new Promise((r) => setTimeout(r, job.payload.ms ?? 300));
  const host = process.env.VIGIL_HOST;
  appendFileSync(process.env.SHARED_DIR + "/effects.log", [host, job.queue, job.id, job.attempt, job.payload.n].join(" ") + "\\n");
  return { n: job.payload.n, ms: job.payload.ms, by: host };
}
`;

/**
 * A config for one host: two stages (`first` → `second`) and a tail trigger `feed`, owned
 * by `triggerHost` when given, else without `host:` (any host may poll it).
 */
export function hostYaml(schema: string, shared: string, triggerHost?: string): string {
  return `store: ${PG_URL}
schema: ${schema}
queues:
  first: { handler: ./stage.mjs, next: second, lease: 4s, concurrency: 2 }
  second: { handler: ./stage.mjs, lease: 4s, concurrency: 2 }
triggers:
  feed: { tail: ${join(shared, "feed.log")}, queue: first, format: jsonl, every: 200ms${triggerHost ? `, host: ${triggerHost}` : ""} }
services:
  workers: { queues: [first, second], instances: 2 }
supervision: { stallAfter: 5s, killTimeout: 2s }
http: { enabled: false }
`;
}

/** The folder both hosts share. */
export function sharedDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "vigil-shared-"));
  appendFileSync(join(dir, "feed.log"), "");
  appendFileSync(join(dir, "effects.log"), "");
  return dir;
}

export function makeHost(schema: string, shared: string, triggerHost?: string): Project {
  return makeProject(hostYaml(schema, shared, triggerHost), { "stage.mjs": STAGE_HANDLER });
}

/** `vigil start` as host `host` (own process group, like a supervisor under systemd). */
export function startHost(p: Project, host: string, shared: string, args: string[] = []): Running {
  let out = "";
  const child = spawn(process.execPath, [VIGIL, "-c", p.config, "start", ...args], {
    cwd: p.dir,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, VIGIL_HOST: host, SHARED_DIR: shared },
  });
  child.on("error", () => {});
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

/**
 * SIGKILLs every process of a host at once: the supervisor's process group and each
 * child's own group (workers and the triggers process). Returns the pids it aimed at.
 */
export async function killHost(p: Project, run: Running): Promise<number[]> {
  const snap = await snapshot(p);
  const pids = new Set<number>([run.child.pid!]);
  for (const s of snap?.services ?? []) if (s.pid) pids.add(s.pid);
  for (const c of readChildren(vigilPaths(p.dir).childrenFile)) pids.add(c.pid);
  for (const pid of pids) killGroup(pid, "SIGKILL");
  return [...pids];
}

/** One side effect a handler logged. */
export interface Effect {
  host: string;
  queue: string;
  id: number;
  attempt: number;
  n: number;
}

export function effects(shared: string): Effect[] {
  return readFileSync(join(shared, "effects.log"), "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const [host, queue, id, attempt, n] = l.split(" ");
      return { host: host!, queue: queue!, id: Number(id), attempt: Number(attempt), n: Number(n) };
    });
}

/** Appends records `from..to-1` to the shared tail file, one JSON line each. */
export function appendRecords(shared: string, from: number, to: number, ms: number): void {
  let text = "";
  for (let n = from; n < to; n++) text += JSON.stringify({ n, ms }) + "\n";
  appendFileSync(join(shared, "feed.log"), text);
}

export function removeShared(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
