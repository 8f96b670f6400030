/**
 * `.vigil/children.json`: the process groups of the supervisor's running children. The
 * supervisor rewrites it (atomically) as they start and end; the next `vigil start` reads
 * it to end the orphans a dead supervisor left (src/supervisor/orphans.ts), and `vigil
 * doctor` to list them.
 */
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { writeFileAtomic } from "../os/files.js";

export interface ChildRecord {
  name: string;
  /** The process (and process group) id. */
  pid: number;
  argv: string[];
  workerId: string | null;
  startedAt: number;
}

interface ChildrenFile {
  supervisorPid: number;
  children: ChildRecord[];
}

export function writeChildren(path: string, children: ChildRecord[], supervisorPid = process.pid): void {
  writeFileAtomic(path, JSON.stringify({ supervisorPid, children } satisfies ChildrenFile, null, 1) + "\n");
}

export function removeChildren(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

export function readChildren(path: string): ChildRecord[] {
  if (!existsSync(path)) return [];
  try {
    const f = JSON.parse(readFileSync(path, "utf8")) as ChildrenFile;
    return Array.isArray(f.children) ? f.children : [];
  } catch {
    return [];
  }
}
