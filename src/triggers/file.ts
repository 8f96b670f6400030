/**
 * `file`: one file; a job whenever its content hash changes (once stable for `settle`).
 * A missing or unreadable file is a trigger error, shown in status and retried each poll.
 */
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { Stats } from "node:fs";
import { SnapshotSource } from "./snapshot.js";
import type { SourceOptions } from "./types.js";

export interface FileOptions extends SourceOptions {
  /** Absolute path of the file. */
  file: string;
  /** ms the file must stay unchanged before it becomes a job (default 1 s). */
  settle?: number;
}

/** Payload of each job: `{ path, size, mtimeMs, sha256 }`. */
export function fileSource(opts: FileOptions): SnapshotSource {
  const path = opts.file;
  const list = async (_warn: unknown, visit: (rel: string, abs: string, st: Stats) => void): Promise<void> => {
    let st: Stats;
    try {
      st = await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new Error(`${path} does not exist yet; it becomes a job once it does`);
      }
      throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    visit(basename(path), path, st);
  };
  return new SnapshotSource("file", { ...opts, folder: dirname(path), settle: opts.settle ?? 1000 }, list);
}
