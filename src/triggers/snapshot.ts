/**
 * What `watch` and `file` share: compare what stat sees with the snapshot in the cursor,
 * hash only files whose size, mtime or inode changed, and once a file is stable turn each
 * new content into a job.
 *
 * Stable means unchanged for `settle`: the later of the file's mtime and ctime is at least
 * `settle` old. Every write moves both, a rename-over moves the ctime, and no tool can set
 * a ctime back, so this needs no second look a poll later; a file not yet stable asks for
 * an early re-poll at the moment it will be, which keeps detection within one interval.
 * The stat is taken again after hashing: a file that changed meanwhile waits.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { Stats } from "node:fs";
import type { EnqueueItem } from "../core/types.js";
import type { FileStat } from "./scan.js";
import {
  shortHash,
  type PollContext,
  type PollOutcome,
  type SnapshotCursor,
  type SourceOptions,
  type TriggerSource,
} from "./types.js";

/** A file's content as hashed, with the stat it was hashed at. */
interface Hashed {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

export interface SnapshotOptions extends SourceOptions {
  /** Absolute folder that `FileStat.rel` paths are relative to. */
  folder: string;
  /** ms a file must stay unchanged before it becomes a job (default 1 s). */
  settle: number;
  /** `enqueue`: a deleted file becomes a job too (default `ignore`). */
  onDelete?: "ignore" | "enqueue";
}

/**
 * Files per transaction, and bytes hashed per transaction: a folder with thousands of new
 * files commits in steady steps, and one commit's cursor write and job inserts stay small.
 */
const MAX_FILES = 500;
const MAX_HASH_BYTES = 64 << 20;
/**
 * The shortest settle actually used (50 ms). File times tick in steps of a few ms (the
 * kernel's coarse clock); a file hashed while its mtime is that fresh could be rewritten
 * within the same tick at the same size and look unchanged for ever after. Waiting until
 * its times are older than a few ticks rules that out.
 */
export const MIN_SETTLE_MS = 50;
/** Read size while hashing: one buffer, reused. */
const HASH_CHUNK = 1 << 20;

/** A `watch` or `file` source: `list` says which files exist now. */
export class SnapshotSource implements TriggerSource {
  private readonly buf = Buffer.allocUnsafe(HASH_CHUNK);

  constructor(
    readonly kind: "watch" | "file",
    private readonly opts: SnapshotOptions,
    private readonly list: (
      warn: (m: string) => void,
      visit: (rel: string, abs: string, st: Stats) => void,
      unseen: (rel: string) => void,
    ) => Promise<void>,
  ) {}

  async poll(ctx: PollContext): Promise<PollOutcome> {
    const now = ctx.now();
    const start = snapshotOf(ctx.cursor);
    const settle = Math.max(this.opts.settle, MIN_SETTLE_MS);
    const todo: FileStat[] = [];
    const seen: string[] = [];
    /** Folders (or files) that could not be read this poll: their entries stay as they are. */
    const unseen: string[] = [];
    let known = 0;
    let wakeInMs = Infinity;
    // The hot loop of an idle poll: one stat per file, compared with the snapshot.
    await this.list(
      (m) => ctx.warn(m),
      (rel, abs, st) => {
        const prev = start.files[rel];
        if (prev) {
          known++;
          seen.push(rel);
          if (prev[0] === st.size && prev[1] === st.mtimeMs && prev[2] === st.ino) return;
        }
        const age = now - Math.max(st.mtimeMs, st.ctimeMs);
        if (age < settle) {
          wakeInMs = Math.min(wakeInMs, settle - age);
          return;
        }
        todo.push({ rel, abs, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino });
      },
      (rel) => unseen.push(rel),
    );
    // Paths are unique, so fewer known files seen than the snapshot holds means deletions,
    // except under what could not be read this poll: unknown is not deleted.
    let gone: string[] = [];
    if (known < countOf(start)) {
      const present = new Set(seen);
      gone = Object.keys(start.files).filter((rel) => !present.has(rel) && !unseen.some((u) => within(rel, u)));
    }
    todo.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));

    let i = 0;
    while (i < todo.length || gone.length > 0) {
      if (!ctx.hasTime()) return { more: true };
      const base = snapshotOf(ctx.cursor);
      const next: SnapshotCursor = { kind: "snapshot", files: { ...base.files }, seq: base.seq };
      const jobs: EnqueueItem[] = [];
      let dirty = false;
      let lagMs: number | null = null;
      for (const rel of gone) {
        const prev = next.files[rel];
        if (!prev) continue;
        delete next.files[rel];
        dirty = true;
        if (this.opts.onDelete === "enqueue") {
          next.seq++;
          const abs = join(this.opts.folder, rel);
          jobs.push(this.job(abs, { path: abs, size: null, mtimeMs: null, sha256: null, deleted: true }, `${rel}:deleted:${next.seq}`));
        }
      }
      gone = [];
      let bytes = 0;
      while (i < todo.length && jobs.length < MAX_FILES && bytes < MAX_HASH_BYTES) {
        const f = todo[i++]!;
        let entry: Hashed | null;
        try {
          entry = await this.hash(f);
        } catch (err) {
          ctx.warn(`cannot read ${f.abs}: ${(err as Error).message}`);
          continue;
        }
        if (!entry) {
          wakeInMs = Math.min(wakeInMs, Math.max(this.opts.settle, MIN_SETTLE_MS)); // changed while hashing: look again once it settles
          continue;
        }
        const { size, mtimeMs, ino, sha256 } = entry;
        bytes += size;
        const prev = next.files[f.rel];
        const short = shortHash(sha256);
        next.files[f.rel] = [size, mtimeMs, ino, short];
        dirty = true;
        if (prev?.[3] === short) continue; // touched or replaced by the same bytes
        next.seq++;
        jobs.push(this.job(f.abs, { path: f.abs, size, mtimeMs, sha256 }, `${f.rel}:${sha256}:${next.seq}`));
        lagMs = Math.max(lagMs ?? 0, ctx.now() - Math.max(f.mtimeMs, f.ctimeMs));
      }
      if (!dirty) continue;
      if (!(await ctx.commit({ jobs, rejected: [], cursor: next, lagMs }))) return { more: true };
    }
    return Number.isFinite(wakeInMs) ? { more: false, wakeInMs: Math.ceil(wakeInMs) } : { more: false };
  }

  private job(path: string, payload: Record<string, unknown>, keyTail: string): EnqueueItem {
    const { name, queue, priority, maxAttempts } = this.opts;
    return {
      queue,
      payload,
      key: `trigger:${name}:${keyTail}`,
      source: { trigger: name, path },
      ...(priority !== undefined ? { priority } : {}),
      ...(maxAttempts !== undefined ? { maxAttempts } : {}),
    };
  }

  /**
   * sha256 of the file, or null if it changed while being read (another inode at the path,
   * or a different size or mtime afterwards).
   */
  private async hash(f: FileStat): Promise<Hashed | null> {
    const fh = await open(f.abs, "r");
    try {
      const before = await fh.stat();
      if (before.ino !== f.ino || before.size !== f.size || before.mtimeMs !== f.mtimeMs) return null;
      const h = createHash("sha256");
      let pos = 0;
      for (;;) {
        const { bytesRead } = await fh.read(this.buf, 0, this.buf.length, pos);
        if (bytesRead === 0) break;
        h.update(this.buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      const after = await fh.stat();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || pos !== before.size) return null;
      return { size: before.size, mtimeMs: before.mtimeMs, ino: before.ino, sha256: h.digest("hex") };
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {}
}

/** Files in a snapshot, counted once per cursor object (an idle poll does not recount 10,000 keys). */
const counts = new WeakMap<SnapshotCursor, number>();
function countOf(snapshot: SnapshotCursor): number {
  let n = counts.get(snapshot);
  if (n === undefined) counts.set(snapshot, (n = Object.keys(snapshot.files).length));
  return n;
}

/** Whether the path `rel` is `dir` or lies under it ("" is the whole folder). */
function within(rel: string, dir: string): boolean {
  return dir === "" || rel === dir || (rel.startsWith(dir) && rel.charCodeAt(dir.length) === 47 /* / */);
}

function snapshotOf(cursor: PollContext["cursor"]): SnapshotCursor {
  return cursor?.kind === "snapshot" ? cursor : { kind: "snapshot", files: {}, seq: 0 };
}
