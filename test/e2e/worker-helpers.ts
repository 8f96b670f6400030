/**
 * Real `vigil worker` processes for the end-to-end tests: a project folder with handlers,
 * workers spawned from bin/vigil (run `npm run build` first) in their own process groups,
 * their JSON log lines, and a clean-up that leaves no process or folder behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll } from "vitest";
import { isAlive, killGroup } from "../../src/os/process.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import type { WorkerMessage } from "../../src/child/protocol.js";
import { VIGIL, waitFor } from "./supervisor-helpers.js";

export interface WorkerProject {
  dir: string;
  config: string;
  db: string;
}

export function workerProject(yaml: string, files: Record<string, string>): WorkerProject {
  const dir = mkdtempSync(join(tmpdir(), "vigil-wp-"));
  writeFileSync(join(dir, "vigil.yaml"), yaml);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, config: join(dir, "vigil.yaml"), db: join(dir, "vigil.db") };
}

export interface WorkerProcess {
  id: string;
  child: ChildProcess;
  pid: number;
  /** Parsed JSON log lines so far. */
  logs: () => Record<string, unknown>[];
  /** IPC messages received so far (with `ipc: true`). */
  messages: WorkerMessage[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<WorkerProcess>();

export function startWorker(
  p: WorkerProject,
  id: string,
  queues: string,
  env: Record<string, string> = {},
  opts: { ipc?: boolean; args?: string[] } = {},
): WorkerProcess {
  const args = [VIGIL, "-c", p.config, "worker", "--queues", queues, ...(opts.args ?? [])];
  const child = spawn(process.execPath, args, {
    cwd: p.dir,
    env: { ...process.env, VIGIL_WORKER_ID: id, ...env },
    detached: true,
    stdio: opts.ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
  });
  child.on("error", () => {});
  const messages: WorkerMessage[] = [];
  child.on("message", (m) => messages.push(m as WorkerMessage));
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const w: WorkerProcess = {
    id,
    child,
    pid: child.pid!,
    exited,
    messages,
    logs: () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return {};
          }
        }),
  };
  running.add(w);
  void exited.then(() => running.delete(w));
  return w;
}

/** Waits for the worker's "worker started" log line (store open, handlers loaded). */
export async function started(w: WorkerProcess): Promise<void> {
  await waitFor(`worker ${w.id} to start`, () => w.logs().some((l) => l.msg === "worker started"), 30_000);
}

/** SIGKILLs every worker still running (their whole groups) and waits for them to go. */
export async function killAll(): Promise<void> {
  for (const w of running) {
    killGroup(w.pid, "SIGCONT");
    killGroup(w.pid, "SIGKILL");
  }
  await waitFor("workers to exit", () => [...running].every((w) => !isAlive(w.pid)) || running.size === 0, 15_000);
}

export function removeProject(p: WorkerProject): void {
  rmSync(p.dir, { recursive: true, force: true });
}

/**
 * The hooks of a worker end-to-end file: one project and its store for the file (handed to
 * `use`), every worker killed after each test, both removed at the end.
 */
export function workerSuite(yaml: string, files: Record<string, string>, use: (p: WorkerProject, store: Store) => void): void {
  let p: WorkerProject;
  let store: Store;
  beforeAll(async () => {
    p = workerProject(yaml, files);
    store = await openStore(`sqlite:${p.db}`);
    use(p, store);
  });
  afterEach(async () => {
    await killAll();
  });
  afterAll(async () => {
    await store?.close();
    if (p) removeProject(p);
  });
}
