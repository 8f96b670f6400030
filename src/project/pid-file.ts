/**
 * One supervisor per project: `.vigil/supervisor.pid`, created with O_EXCL. A pid file
 * whose process is gone (or is no longer a vigil process: pids get reused) is stale and
 * taken over; a live one makes the second `vigil start` refuse, naming the pid. The
 * supervisor takes and releases it; health checks, doctor and the CLI read it.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { VigilError } from "../core/errors.js";
import { isAlive, procInfo } from "../os/process.js";

/** The command line of a process as its argv, or null when it is gone (Linux /proc). */
export function procCmdline(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").filter((s) => s.length > 0);
  } catch {
    return null;
  }
}

/** Whether `pid` still runs: alive and not a zombie nobody has collected yet. */
export function isRunning(pid: number): boolean {
  return isAlive(pid) && procInfo(pid)?.state !== "Z";
}

/** Whether `pid` is alive and runs the vigil CLI (guards against a reused pid). */
export function isVigilSupervisor(pid: number): boolean {
  if (!isRunning(pid)) return false;
  const argv = procCmdline(pid);
  if (argv === null) return true; // no /proc (not Linux): trust the pid
  return argv.some((a) => /vigil|cli[\\/]main\.[jt]s/.test(a)) && argv.includes("start");
}

/** Name of the supervisor's pid file in the state folder. */
export const PID_FILE = "supervisor.pid";

export function readPid(path: string): number | null {
  try {
    const n = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** The supervisor's pid file as a reader sees it. */
export interface PidFileState {
  path: string;
  /** null when the file is missing or holds no pid */
  pid: number | null;
  /** The pid runs a vigil supervisor (a reused pid running something else does not count). */
  alive: boolean;
}

/** Reads `<stateDir>/supervisor.pid` and whether its pid is a live supervisor. */
export function readPidFile(stateDir: string): PidFileState {
  const path = join(stateDir, PID_FILE);
  const pid = readPid(path);
  return { path, pid, alive: pid !== null && isVigilSupervisor(pid) };
}

export interface LockTaken {
  /** The pid of a previous supervisor that died without cleaning up, if any. */
  stalePid: number | null;
}

/**
 * Takes the project lock for this process. Throws `VigilError("LOCKED")` naming the pid
 * of a live supervisor; takes over a stale file.
 */
export function acquireLock(pidFile: string, pid = process.pid): LockTaken {
  mkdirSync(dirname(pidFile), { recursive: true });
  let stalePid: number | null = null;
  // A few rounds: another `vigil start` may take over the same stale file at once.
  for (let round = 0; round < 5; round++) {
    try {
      writeFileSync(pidFile, `${pid}\n`, { flag: "wx", mode: 0o644 });
      return { stalePid };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const other = readPid(pidFile);
    if (other !== null && other !== pid && isVigilSupervisor(other)) {
      throw new VigilError(
        "LOCKED",
        `a supervisor is already running for this project (pid ${other}); use \`vigil stop\` first, or \`vigil status\` to see it`,
      );
    }
    stalePid = other ?? stalePid;
    // Re-read just before removing, so a file another start has just written survives.
    if (readPid(pidFile) === other) {
      try {
        unlinkSync(pidFile);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    }
  }
  throw new VigilError("LOCKED", `could not take ${pidFile}; another vigil start is racing this one, try again`);
}

/** Removes the pid file if it is still ours. */
export function releaseLock(pidFile: string, pid = process.pid): void {
  if (readPid(pidFile) !== pid) return;
  try {
    unlinkSync(pidFile);
  } catch {
    // already gone: nothing to release
  }
}
