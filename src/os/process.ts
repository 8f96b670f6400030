/**
 * Child processes the way Vigil runs them: never through a shell, each in its own process
 * group (so a timeout or a stall kills the program *and* everything it started), always
 * with an `error` listener.
 */
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { readFileSync, readdirSync as readdirSync } from "node:fs";

export interface SpawnGroupOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  stdio?: StdioOptions;
}

/** Spawns `argv` without a shell as the leader of a new process group. */
export function spawnGroup(argv: readonly string[], opts: SpawnGroupOptions = {}): ChildProcess {
  const [file, ...args] = argv;
  if (!file) throw new Error("spawnGroup: empty command");
  const child = spawn(file, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: opts.stdio ?? "pipe",
    shell: false,
    detached: true, // new session and process group: kill(-pid) reaches the whole tree
  });
  // A spawn failure (ENOENT, EACCES) arrives as an 'error' event; callers add their own
  // listener too, this one only keeps it from becoming an uncaught exception.
  child.on("error", () => {});
  return child;
}

/** Sends a signal to a whole process group; false if it no longer exists. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pid) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** Whether a process (or group, with a negative pid) exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A process's state as /proc shows it (Linux); null elsewhere or when it is gone. */
export interface ProcInfo {
  /** R running, S sleeping, D disk wait, T stopped, Z zombie, ... */
  state: string;
  stateName: string;
  /** User + system CPU time in ms. */
  cpuMs: number;
  rssBytes: number;
  threads: number;
  /** Process group id. */
  pgid: number;
  /** Parent process id. */
  ppid: number;
}

const STATE_NAMES: Record<string, string> = {
  R: "running",
  S: "sleeping",
  D: "disk wait",
  T: "stopped",
  t: "tracing stop",
  Z: "zombie",
  X: "dead",
  I: "idle",
};

export function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = 100; // USER_HZ is 100 on Linux for every architecture Node supports
    const state = rest[0] ?? "?";
    return {
      state,
      stateName: STATE_NAMES[state] ?? state,
      ppid: Number(rest[1]),
      pgid: Number(rest[2]),
      cpuMs: ((Number(rest[11]) + Number(rest[12])) * 1000) / ticks,
      threads: Number(rest[17]),
      rssBytes: Number(rest[21]) * 4096,
    };
  } catch {
    return null;
  }
}

/** Pids of every process whose process group is `pgid` (Linux /proc scan). */
export function groupMembers(pgid: number): number[] {
  return processTable()
    .filter((p) => p.pgid === pgid)
    .map((p) => p.pid);
}

/** Every live process (zombies left out) with its parent and group (Linux /proc scan; empty elsewhere). */
export function processTable(): { pid: number; ppid: number; pgid: number }[] {
  const out: { pid: number; ppid: number; pgid: number }[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const info = procInfo(Number(e));
    if (info && info.state !== "Z" && info.state !== "X") out.push({ pid: Number(e), ppid: info.ppid, pgid: info.pgid });
  }
  return out;
}


