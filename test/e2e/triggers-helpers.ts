/**
 * Shared by the triggers' end-to-end tests: a project folder with one trigger, a real
 * `vigil triggers` process that can be SIGKILLed and started again, its jobs as the real
 * SQLite store holds them, and a clean-up that leaves no process and no folder behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach } from "vitest";
import type { Job } from "../../src/core/types.js";
import { isAlive, killGroup } from "../../src/os/process.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";

export const VIGIL = resolve(import.meta.dirname, "../../bin/vigil");
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const between = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs `fn` after the current test, after everything registered before it. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export interface ProjectOptions {
  /** A program (and its arguments) that runs `node vigil triggers` for us, e.g. one that drops privileges. */
  runVia?: string[];
  /** Added to the process's environment. */
  env?: Record<string, string>;
}

/** A project folder with one trigger `t`, and a `vigil triggers` process that can be killed and restarted. */
export function project(trigger: string, opts: ProjectOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), "vigil-trigcrash-"));
  const config = join(dir, "vigil.yaml");
  writeFileSync(config, `store: sqlite:vigil.db\nqueues:\n  q: { command: [cat] }\ntriggers:\n  t: ${trigger}\n`);
  let child: ChildProcess | null = null;
  let kills = 0;
  let output = "";
  const start = () => {
    const argv = [...(opts.runVia ?? []), process.execPath, VIGIL, "-c", config, "triggers"];
    const c = spawn(argv[0]!, argv.slice(1), {
      cwd: dir,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // One owner id across restarts, as the supervisor gives its triggers service: the
      // new process takes the trigger's lock at once instead of waiting for it to expire.
      env: { ...process.env, VIGIL_WORKER_ID: "triggers-crash-test", VIGIL_LOG_LEVEL: "warn", ...opts.env },
    });
    c.on("error", () => {});
    // Its log (JSON lines on stdout) and anything it prints on stderr, the newest part.
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-20_000));
    c.stdout!.on("data", keep);
    c.stderr!.on("data", keep);
    child = c;
  };
  const kill = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c?.pid) return;
    killGroup(c.pid, signal);
    const deadline = Date.now() + 15_000;
    while (c.exitCode === null && c.signalCode === null && Date.now() < deadline) await sleep(20);
    killGroup(c.pid, "SIGKILL");
  };
  /**
   * Kills and restarts the process until `done()` says stop. Most kills wait until the new
   * process has committed something (it is past its start-up and polling), then strike at
   * a random moment within the next poll or two, so they land in reads, hashing and
   * commits; some strike at a random moment of the start-up itself.
   */
  const chaos = async (done: () => boolean) => {
    while (!done()) {
      if (Math.random() < 0.2) {
        await sleep(between(50, 600));
      } else {
        const before = (await jobs()).length;
        const deadline = Date.now() + 5000;
        while ((await jobs()).length === before && Date.now() < deadline && !done()) await sleep(between(5, 40));
        await sleep(between(0, 150));
      }
      await kill("SIGKILL");
      kills++;
      start();
    }
  };
  /** SIGKILL, then a new process at once: one crash. */
  const crash = async () => {
    await kill("SIGKILL");
    kills++;
    start();
  };
  let store: Store | null = null;
  const openOnce = async () => (store ??= await openStore(`sqlite:${join(dir, "vigil.db")}`));
  async function jobs(): Promise<Job[]> {
    return (await (await openOnce()).list({ queue: "q", limit: 0 })).sort((a, b) => a.id - b.id);
  }
  cleanups.push(async () => {
    await kill("SIGKILL");
    if (child?.pid && isAlive(child.pid)) killGroup(child.pid, "SIGKILL");
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, start, kill, crash, chaos, jobs, kills: () => kills, output: () => output, store: openOnce };
}

export async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}
