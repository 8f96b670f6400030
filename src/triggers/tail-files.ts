/**
 * The files a `tail` trigger holds open, by device and inode: the one at its path and the
 * rotated ones it still drains. A renamed or deleted file stays readable through an open
 * handle, which is what lets lines its writer appends after a rotation still be read.
 * After a restart no handle is left: a rotated file is then found again in the path's
 * folder by its inode, whatever its new name (`.1`, `-20261128`, ...).
 */
import { lstat, open, opendir, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { TailPosition } from "./types.js";

/** Folder entries looked at, at most, to find a file rotated while nothing ran. */
const MAX_ROTATED_SCAN = 10_000;

interface FileId {
  ino: number;
  dev: number;
}

/** One open file. */
export interface HeldFile extends FileId {
  fh: FileHandle;
  /** While drained after a rotation: its size when last looked at, and since when (ms) it has not changed. */
  quiet?: { size: number; since: number };
}

const keyOf = (f: FileId) => `${f.dev}:${f.ino}`;

export class HeldFiles {
  private readonly held = new Map<string, HeldFile>();

  get(f: FileId): HeldFile | null {
    return this.held.get(keyOf(f)) ?? null;
  }

  /** Opens `path` and keeps the handle if it is still the file `want`; else null. */
  async adopt(path: string, want: FileId): Promise<HeldFile | null> {
    const known = this.get(want);
    if (known) return known;
    const fh = await open(path, "r");
    const real = await fh.stat();
    if (real.ino !== want.ino || real.dev !== want.dev) {
      await fh.close();
      return null;
    }
    const held: HeldFile = { fh, ino: real.ino, dev: real.dev };
    this.held.set(keyOf(held), held);
    return held;
  }

  /**
   * The file at `pos`, found again in the folder of `path` by its inode after a rotation
   * this process did not see (it was not running). Only regular files in that folder are
   * looked at (no links followed, no other folder), at most MAX_ROTATED_SCAN entries. The
   * inode must match, and the birth time where one was saved; the caller then checks the
   * bytes before the offset (`TailPosition.fp`). A position at offset 0 without a birth
   * time has nothing to check a match with and is not looked for.
   */
  async findRotated(path: string, pos: TailPosition): Promise<HeldFile | null> {
    const known = this.get(pos);
    if (known) return known;
    if (pos.offset === 0 && !pos.born) return null;
    const dir = dirname(path);
    const own = basename(path);
    try {
      let seen = 0;
      for await (const entry of await opendir(dir)) {
        if (++seen > MAX_ROTATED_SCAN) break;
        if (!entry.isFile() || entry.name === own) continue;
        const found = join(dir, entry.name);
        const st = await lstat(found).catch(() => null);
        if (st && st.ino === pos.ino && st.dev === pos.dev && (!pos.born || st.birthtimeMs === pos.born)) {
          return await this.adopt(found, pos);
        }
      }
    } catch {
      // An unreadable folder: the rotated file cannot be found.
    }
    return null;
  }

  /** Closes every handle but those of `keep` (the files the cursor still names). */
  async keepOnly(keep: FileId[]): Promise<void> {
    if (this.held.size === 0) return;
    const wanted = new Set(keep.map(keyOf));
    for (const [key, h] of this.held) {
      if (wanted.has(key)) continue;
      this.held.delete(key);
      await h.fh.close().catch(() => {});
    }
  }

  async closeAll(): Promise<void> {
    await this.keepOnly([]);
  }
}
