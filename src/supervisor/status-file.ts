/**
 * Writing `.vigil/status.json`: the last StatusSnapshot, replaced atomically (temp file,
 * fsync, rename) every `statusEvery`, so a reader never sees half a file. Readers use
 * `readStatusFile` in src/health/state-files.ts.
 */
import type { StatusSnapshot } from "../core/status.js";
import { writeFileAtomic } from "../os/files.js";

export function writeStatusFile(path: string, snapshot: StatusSnapshot): void {
  writeFileAtomic(path, JSON.stringify(snapshot, null, 1) + "\n");
}
