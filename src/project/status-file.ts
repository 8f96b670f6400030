/**
 * `.vigil/status.json`: the last StatusSnapshot. The supervisor replaces it atomically
 * (temp file, fsync, rename) every `statusEvery`, so a reader never sees half a file;
 * health checks, doctor and the CLI read it.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { StatusSnapshot } from "../core/status.js";
import { writeFileAtomic } from "../os/files.js";

/** Name of the status file in the state folder. */
export const STATUS_FILE = "status.json";

export function writeStatusFile(path: string, snapshot: StatusSnapshot): void {
  writeFileAtomic(path, JSON.stringify(snapshot, null, 1) + "\n");
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
