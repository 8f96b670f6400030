/**
 * Reading what the supervisor leaves in the state folder (`.vigil/` beside the config):
 * its pid file and the status file it rewrites atomically every `statusEvery` (2 s).
 * The supervisor writes them; health checks, doctor and the CLI only read.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isVigilSupervisor, readPid } from "../supervisor/lock.js";
import type { StatusSnapshot } from "../core/status.js";

/** Name of the status file in the state folder (written by src/supervisor/status-file.ts). */
export const STATUS_FILE = "status.json";
/** Name of the supervisor's pid file in the state folder (src/supervisor/lock.ts). */
export const PID_FILE = "supervisor.pid";

/** The supervisor's pid file (see src/supervisor/lock.ts, which writes it). */
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

/** The status file with its age; null when it is missing or unreadable. */
export interface StatusFileState {
  path: string;
  snapshot: StatusSnapshot;
  /** ms between the snapshot's `at` (or the file's mtime) and `now` */
  ageMs: number;
}

/** Reads `<stateDir>/status.json` and how old it is at `now`. */
export function readStatusFile(stateDir: string, now = Date.now()): StatusFileState | null {
  const path = join(stateDir, STATUS_FILE);
  try {
    const snapshot = JSON.parse(readFileSync(path, "utf8")) as StatusSnapshot;
    const at = typeof snapshot.at === "number" ? snapshot.at : statSync(path).mtimeMs;
    return { path, snapshot: { ...snapshot, source: "status-file" }, ageMs: Math.max(0, now - at) };
  } catch {
    return null;
  }
}
