/**
 * `tail`: one job per complete line of an append-only file.
 *
 * The cursor is (inode, generation, offset of the first unconsumed byte). A partial last
 * line is never consumed, so it is read again, whole, once its newline arrives; nothing
 * about it needs to be persisted.
 *
 * Rotation and truncation:
 * - another inode at the path (rename-and-create rotation): the old file is finished first
 *   through the handle this process still holds on it (a renamed or deleted file stays
 *   readable through an open handle), then the new file is read from its start. If the
 *   process was not running when the file rotated, it holds no handle: the old file is
 *   looked for in the same folder by its inode, not by a name pattern (`.1`, `-20261128`
 *   ...), and finished only if the bytes just before the cursor still match. A rotation
 *   that compressed or deleted the old file while nothing ran leaves nothing to find: its
 *   unread tail is skipped.
 * - the same inode but smaller than the offset, or different bytes just before the offset
 *   (truncated and regrown between polls): read again from the start.
 *
 * Reads are bounded (at most 1 MiB, or `maxLine` + 1, per step, and at most
 * `MAX_RECORDS` records per transaction), so a huge backlog commits steady progress and
 * the event loop stays free for heartbeats.
 */
import { lstat, open, opendir, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Stats } from "node:fs";
import type { EnqueueItem, RejectedRecord } from "../core/types.js";
import {
  payloadFits,
  sampleOf,
  type PollContext,
  type PollOutcome,
  type SourceOptions,
  type TailCursor,
  type TriggerSource,
} from "./types.js";

export interface TailOptions extends SourceOptions {
  /** Absolute path of the file. */
  path: string;
  /** `lines`: payload `{ line }`; `jsonl`: the parsed object (default `lines`). */
  format?: "lines" | "jsonl";
  /** Longer lines are rejected records, skipped without buffering them (bytes, default 1 MiB). */
  maxLine?: number;
}

/**
 * Bytes read per step. Large enough that a backlog of short lines moves quickly, small
 * enough that one step's buffer and JSON parsing never hold the event loop for long.
 */
const CHUNK_BYTES = 1 << 20;
/** Records per transaction: bounds one commit's size and time on both stores. */
const MAX_RECORDS = 1000;
/** Bytes before the offset kept as a fingerprint (see `TailCursor.fp`). */
const FP_BYTES = 16;
/** Folder entries looked at, at most, to find a file rotated while nothing ran. */
const MAX_ROTATED_SCAN = 10_000;

export class TailSource implements TriggerSource {
  readonly kind = "tail" as const;
  private readonly format: "lines" | "jsonl";
  private readonly maxLine: number;
  private readonly readBytes: number;
  /** The file being read, kept open so a rotated file can be finished after its rename. */
  private handle: { fh: FileHandle; ino: number; dev: number } | null = null;
  private buf: Buffer | null = null;

  constructor(private readonly opts: TailOptions) {
    this.format = opts.format ?? "lines";
    this.maxLine = opts.maxLine ?? 1 << 20;
    this.readBytes = Math.max(CHUNK_BYTES, this.maxLine + 1);
  }

  async poll(ctx: PollContext): Promise<PollOutcome> {
    while (ctx.hasTime()) {
      const step = await this.step(ctx);
      if (step === "conflict") return { more: true };
      if (step === "idle") return { more: false };
    }
    return { more: true };
  }

  /** One bounded read and, if anything moved, one commit. */
  private async step(ctx: PollContext): Promise<"progress" | "idle" | "conflict"> {
    const st = await statOrNull(this.opts.path);
    const committed = ctx.cursor?.kind === "tail" ? ctx.cursor : null;
    if (!committed) {
      if (!st) throw new Error(`${this.opts.path} does not exist yet; it is read from its start once it does`);
      return this.commitOrIdle(ctx, fresh(st, 0), null);
    }
    const cur = committed;
    const samePath = st !== null && st.ino === cur.ino && st.dev === cur.dev;
    if (!samePath) {
      // Rotated (or removed): finish the old file through our handle, if we have one.
      const held = this.handle && this.handle.ino === cur.ino && this.handle.dev === cur.dev ? this.handle.fh : null;
      const old = held ?? (await this.openRotated(cur));
      if (old) {
        const r = await this.readFrom(old, cur, ctx, true);
        if (r !== "idle") return r;
      }
      await this.closeHandle();
      if (!st) throw new Error(`${this.opts.path} does not exist (rotated away?); reading resumes when it is back`);
      return this.commitOrIdle(ctx, fresh(st, cur.gen + 1), cur);
    }
    if (st.size < cur.offset) return this.commitOrIdle(ctx, fresh(st, cur.gen + 1), cur); // truncated
    const fh = await this.handleFor(st);
    if (!fh) return "idle"; // rotated between stat and open: the next step sees it
    return this.readFrom(fh, cur, ctx, false);
  }

  private async commitOrIdle(
    ctx: PollContext,
    next: TailCursor,
    prev: TailCursor | null,
  ): Promise<"progress" | "idle" | "conflict"> {
    if (prev && sameCursor(prev, next)) return "idle";
    const ok = await ctx.commit({ jobs: [], rejected: [], cursor: next });
    return ok ? "progress" : "conflict";
  }

  /**
   * Reads one chunk at the cursor and commits the complete lines in it. `final`: the file
   * can no longer grow at this path (it was rotated away), so a last line without a
   * newline is a record too.
   */
  private async readFrom(
    fh: FileHandle,
    cur: TailCursor,
    ctx: PollContext,
    final: boolean,
  ): Promise<"progress" | "idle" | "conflict"> {
    const back = Math.min(cur.offset, FP_BYTES);
    // One buffer, reused: everything taken from it (lines, samples, fp) is copied out
    // before the next read.
    this.buf ??= Buffer.allocUnsafe(FP_BYTES + this.readBytes);
    const buf = this.buf.subarray(0, back + this.readBytes);
    const { bytesRead } = await fh.read(buf, 0, buf.length, cur.offset - back);
    if (back > 0 && (bytesRead < back || buf.toString("hex", 0, back) !== cur.fp)) {
      if (final) return "idle"; // an old file we cannot trust any more: move on to the new one
      const st = await fh.stat();
      return this.commitOrIdle(ctx, fresh(st, cur.gen + 1), cur); // truncated and regrown
    }
    const data = buf.subarray(back, Math.max(back, bytesRead));
    const atEnd = bytesRead < buf.length;
    const jobs: EnqueueItem[] = [];
    const rejected: RejectedRecord[] = [];
    let skipping = cur.skipping;
    let p = 0;
    if (skipping) {
      const nl = data.indexOf(10);
      if (nl < 0) p = data.length;
      else [p, skipping] = [nl + 1, false];
    }
    while (!skipping && jobs.length + rejected.length < MAX_RECORDS) {
      const nl = data.indexOf(10, p);
      const end = nl < 0 ? data.length : nl;
      if (end - p > this.maxLine) {
        rejected.push(this.reject(cur.offset + p, `line longer than maxLine (${this.maxLine} bytes); skipped`, data, p));
        if (nl < 0) {
          [p, skipping] = [data.length, true];
          break;
        }
        p = nl + 1;
        continue;
      }
      if (nl < 0) {
        if (final && atEnd && p < data.length) {
          this.record(data.subarray(p), cur, cur.offset + p, jobs, rejected);
          p = data.length;
        }
        break; // a partial line waits for its newline
      }
      this.record(data.subarray(p, nl), cur, cur.offset + p, jobs, rejected);
      p = nl + 1;
    }
    if (p === 0 && skipping === cur.skipping) return "idle";
    const offset = cur.offset + p;
    const fpStart = back + p - Math.min(offset, FP_BYTES);
    const next: TailCursor = { ...cur, offset, skipping, fp: buf.toString("hex", fpStart, back + p) };
    const lagMs = jobs.length > 0 ? Math.max(0, ctx.now() - (await fh.stat()).mtimeMs) : undefined;
    const ok = await ctx.commit({ jobs, rejected, cursor: next, lagMs });
    return ok ? "progress" : "conflict";
  }

  /** One line (without its newline) becomes a job or a rejected record. */
  private record(line: Buffer, cur: TailCursor, offset: number, jobs: EnqueueItem[], rejected: RejectedRecord[]): void {
    let text = line.toString("utf8");
    if (text.endsWith("\r")) text = text.slice(0, -1); // CRLF files: the \r is not content
    if (text.trim() === "") return; // blank lines carry no record
    let payload: unknown;
    if (this.format === "jsonl") {
      try {
        payload = JSON.parse(text);
      } catch (err) {
        rejected.push(this.rejectText(offset, `not valid JSON: ${(err as Error).message}`, text));
        return;
      }
    } else {
      payload = { line: text };
    }
    if (!payloadFits(payload, this.opts.maxPayload)) {
      rejected.push(this.rejectText(offset, `payload larger than maxPayload (${this.opts.maxPayload} bytes)`, text));
      return;
    }
    const { name, queue, priority, maxAttempts } = this.opts;
    jobs.push({
      queue,
      payload,
      key: `trigger:${name}:${cur.ino}:${cur.gen}:${offset}`,
      source: { trigger: name, path: this.opts.path, offset },
      ...(priority !== undefined ? { priority } : {}),
      ...(maxAttempts !== undefined ? { maxAttempts } : {}),
    });
  }

  private reject(offset: number, reason: string, data: Buffer, p: number): RejectedRecord {
    return this.rejectText(offset, reason, data.toString("utf8", p, Math.min(data.length, p + 4 * 200)));
  }

  private rejectText(offset: number, reason: string, text: string): RejectedRecord {
    return { trigger: this.opts.name, reason, sample: sampleOf(text), path: this.opts.path, offset };
  }

  /** A handle on the file at the path, opened once and kept while its inode stays there. */
  private async handleFor(st: Stats): Promise<FileHandle | null> {
    if (this.handle && this.handle.ino === st.ino && this.handle.dev === st.dev) return this.handle.fh;
    await this.closeHandle();
    return this.adopt(this.opts.path, st);
  }

  /** Opens `path` and keeps the handle if it is still the file `want` (dev, inode); else null. */
  private async adopt(path: string, want: { ino: number; dev: number }): Promise<FileHandle | null> {
    const fh = await open(path, "r");
    const real = await fh.stat();
    if (real.ino !== want.ino || real.dev !== want.dev) {
      await fh.close();
      return null;
    }
    await this.closeHandle();
    this.handle = { fh, ino: real.ino, dev: real.dev };
    return fh;
  }

  /**
   * The file the cursor is in, found again in the tailed file's folder by its inode after
   * a rotation this process did not see (it was not running). Only regular files in that
   * folder are looked at (no links followed, no other folder), at most MAX_ROTATED_SCAN
   * entries; a cursor at offset 0 has no bytes to check the match with and is not looked
   * for. The handle is kept, so the following steps read on from it.
   */
  private async openRotated(cur: TailCursor): Promise<FileHandle | null> {
    if (cur.offset === 0) return null;
    const dir = dirname(this.opts.path);
    const own = basename(this.opts.path);
    try {
      let seen = 0;
      for await (const entry of await opendir(dir)) {
        if (++seen > MAX_ROTATED_SCAN) break;
        if (!entry.isFile() || entry.name === own) continue;
        const path = join(dir, entry.name);
        const st = await lstat(path).catch(() => null);
        if (st && st.ino === cur.ino && st.dev === cur.dev) return await this.adopt(path, cur);
      }
    } catch {
      // An unreadable folder: the old file cannot be finished; the new one is still read.
    }
    return null;
  }

  private async closeHandle(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await h.fh.close().catch(() => {});
  }

  async close(): Promise<void> {
    await this.closeHandle();
  }
}

function fresh(st: Stats, gen: number): TailCursor {
  return { kind: "tail", ino: st.ino, dev: st.dev, offset: 0, gen, skipping: false, fp: "" };
}

function sameCursor(a: TailCursor, b: TailCursor): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.offset === b.offset && a.skipping === b.skipping;
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}
