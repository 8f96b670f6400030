/**
 * `watch`: files matching a glob under a folder. A file becomes a job once stable, and
 * again whenever its content changes (rename-over writes included: they show as a new
 * inode). Deleted files are forgotten, or become jobs with `onDelete: enqueue`. See
 * `snapshot.ts` for stability and hashing, `scan.ts` for what is listed and followed.
 */
import { scanFolder, splitGlob } from "./scan.js";
import { SnapshotSource } from "./snapshot.js";
import type { SourceOptions } from "./types.js";

export interface WatchOptions extends SourceOptions {
  /** Absolute glob (`/srv/data/implementations/*.md`) or folder (its files directly in it). */
  watch: string;
  /** ms a file must stay unchanged before it becomes a job (default 1 s). */
  settle?: number;
  onDelete?: "ignore" | "enqueue";
}

/** Payload of each job: `{ path, size, mtimeMs, sha256 }` (and `deleted: true` for a deletion). */
export function watchSource(opts: WatchOptions): SnapshotSource {
  const { base, glob } = splitGlob(opts.watch);
  return new SnapshotSource("watch", { ...opts, folder: base, settle: opts.settle ?? 1000 }, (warn, visit, unseen) =>
    scanFolder(base, glob, warn, visit, unseen),
  );
}
