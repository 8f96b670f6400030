/**
 * `tail`: one job per complete line of an append-only file.
 *
 * The cursor is (inode, generation, offset of the first unconsumed byte), for the file at
 * the path and for each rotated file still being drained. A partial last line is never
 * consumed, so it is read again, whole, once its newline arrives; nothing about it needs
 * to be persisted. It never becomes a job on its own.
 *
 * Rotation and truncation:
 * - another inode at the path (rename-and-create rotation, logrotate's `create`): the new
 *   file is read from its start, and the old one is drained beside it through the handle
 *   this process holds on it (a renamed or deleted file stays readable through an open
 *   handle): its writer goes on appending to it until it reopens the path, which it does
 *   when told to (a postrotate signal), a moment later. The old file is read until it has
 *   not grown for `drain`; a last line still without its newline then is a rejected
 *   record, never a job. Its position is part of the cursor, committed with the jobs, so a
 *   crash mid-drain neither loses nor repeats a line. A process that did not hold the old
 *   file (it was not running at the rotation) finds it in the same folder by its inode,
 *   not by a name pattern, and drains it only if the bytes just before the cursor still
 *   match. A rotation that compressed or deleted the old file while nothing ran leaves
 *   nothing to find: its unread tail is skipped.
 * - the same inode but smaller than the offset, or different bytes just before the offset
 *   (truncated and regrown between polls, as with `copytruncate`): read again from the start.
 *
 * Reads are bounded (at most 1 MiB, or `maxLine` + 1, per step, and at most
 * `MAX_RECORDS` records per transaction), so a huge backlog commits steady progress and
 * the event loop stays free for heartbeats.
 */
import { stat, type FileHandle } from "node:fs/promises";
import type { Stats } from "node:fs";
import type { EnqueueItem, RejectedRecord } from "../core/types.js";
import { HeldFiles } from "./tail-files.js";
import {
  payloadFits,
  sampleOf,
  type PollContext,
  type PollOutcome,
  type SourceOptions,
  type TailCursor,
  type TailPosition,
  type TriggerSource,
} from "./types.js";

export interface TailOptions extends SourceOptions {
  /** Absolute path of the file. */
  path: string;
  /** `lines`: payload `{ line }`; `jsonl`: the parsed object (default `lines`). */
  format?: "lines" | "jsonl";
  /** Longer lines are rejected records, skipped without buffering them (bytes, default 1 MiB). */
  maxLine?: number;
  /** ms a rotated file must stay unchanged before it is taken as finished (default DEFAULT_DRAIN_MS). */
  drain?: number;
}

/**
 * How long a rotated file is read on, by default, after it last grew: 10 s. An
 * application reopens its log when the rotation's postrotate signals it, normally within
 * a second; a busy one may take a few. Waiting longer costs one open handle and one stat
 * a poll, and delays nothing else (the new file is read meanwhile) but the rejection of a
 * last line that never got its newline.
 */
export const DEFAULT_DRAIN_MS = 10_000;
/**
 * Bytes read per step. Large enough that a backlog of short lines moves quickly, small
 * enough that one step's buffer and JSON parsing never hold the event loop for long.
 */
const CHUNK_BYTES = 1 << 20;
/** Records per transaction: bounds one commit's size and time on both stores. */
const MAX_RECORDS = 1000;
/** Bytes before the offset kept as a fingerprint (see `TailPosition.fp`). */
const FP_BYTES = 16;
/**
 * Rotated files drained at once, at most: more rotations than this within one drain
 * period (a runaway rotation loop) drop the oldest, so the cursor stays small.
 */
const MAX_RETIRED = 16;

type Step = "progress" | "idle" | "conflict";

export class TailSource implements TriggerSource {
  readonly kind = "tail" as const;
  private readonly format: "lines" | "jsonl";
  private readonly maxLine: number;
  private readonly readBytes: number;
  private readonly drainMs: number;
  /** The files the cursor names, kept open so rotated ones can be read after their rename. */
  private readonly files = new HeldFiles();
  private buf: Buffer | null = null;

  constructor(private readonly opts: TailOptions) {
    this.format = opts.format ?? "lines";
    this.maxLine = opts.maxLine ?? 1 << 20;
    this.readBytes = Math.max(CHUNK_BYTES, this.maxLine + 1);
    this.drainMs = opts.drain ?? DEFAULT_DRAIN_MS;
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
  private async step(ctx: PollContext): Promise<Step> {
    const path = this.opts.path;
    const st = await statOrNull(path);
    const cur = ctx.cursor?.kind === "tail" ? ctx.cursor : null;
    if (!cur) {
      if (!st) throw new Error(`${path} does not exist yet; it is read from its start once it does`);
      if (!(await this.files.adopt(path, st))) return "idle"; // replaced meanwhile: the next step sees it
      return this.commitOrIdle(ctx, fresh(st, 0, []), null);
    }
    const retired = cur.retired ?? [];
    await this.files.keepOnly([cur, ...retired]);
    for (const r of retired) {
      const s = await this.drain(ctx, cur, r);
      if (s !== "idle") return s;
    }
    if (st === null || st.ino !== cur.ino || st.dev !== cur.dev) {
      if (!st) {
        // Renamed or removed, nothing at the path yet: read on through the handle meanwhile.
        const held = this.files.get(cur) ?? (await this.files.findRotated(path, cur));
        const r = held ? await this.readFrom(held.fh, cur, ctx, (next) => ({ ...cur, ...next })) : "idle";
        if (r !== "idle" && r !== "mismatch") return r;
        throw new Error(`${path} does not exist (rotated away?); reading resumes when it is back`);
      }
      // Rotated: the new file is read from its start, the old one drained beside it.
      if (!(await this.files.adopt(path, st))) return "idle";
      const all = [...retired, positionOf(cur)];
      if (all.length > MAX_RETIRED) {
        ctx.warn(`more than ${MAX_RETIRED} rotations within the drain period; the oldest rotated file's unread lines are skipped`);
        all.splice(0, all.length - MAX_RETIRED);
      }
      return this.commitOrIdle(ctx, fresh(st, cur.gen + 1, all), cur);
    }
    if (st.size < cur.offset) return this.commitOrIdle(ctx, fresh(st, cur.gen + 1, retired), cur); // truncated
    const held = this.files.get(st) ?? (await this.files.adopt(path, st));
    if (!held) return "idle"; // rotated between stat and open: the next step sees it
    const r = await this.readFrom(held.fh, cur, ctx, (next) => ({ ...cur, ...next }));
    if (r !== "mismatch") return r;
    const now = await held.fh.stat();
    return this.commitOrIdle(ctx, fresh(now, cur.gen + 1, retired), cur); // truncated and regrown
  }

  /**
   * One step of draining the rotated file `r`: its next complete lines, or, once it has
   * not grown for `drain` (its writer reopened the path), its end: `r` leaves the cursor,
   * and a last line without a newline becomes a rejected record in the same commit.
   */
  private async drain(ctx: PollContext, cur: TailCursor, r: TailPosition): Promise<Step> {
    const held = this.files.get(r) ?? (await this.files.findRotated(this.opts.path, r));
    if (!held) {
      ctx.warn(`a rotated file of ${this.opts.path} (inode ${r.ino}) is gone (compressed or deleted?); its unread lines are skipped`);
      return this.retire(ctx, cur, r, []);
    }
    const read = await this.readFrom(held.fh, r, ctx, (next) => withRetired(cur, r, next));
    if (read === "mismatch") {
      ctx.warn(`a rotated file of ${this.opts.path} (inode ${r.ino}) was rewritten; its unread lines are skipped`);
      return this.retire(ctx, cur, r, []);
    }
    if (read !== "idle") return read;
    const { size } = await held.fh.stat();
    const now = ctx.now();
    if (!held.quiet || held.quiet.size !== size) held.quiet = { size, since: now };
    if (now - held.quiet.since < this.drainMs) return "idle";
    const rejected: RejectedRecord[] = [];
    if (!r.skipping && size > r.offset) {
      const tail = Buffer.alloc(Math.min(size - r.offset, 4 * 200));
      const { bytesRead } = await held.fh.read(tail, 0, tail.length, r.offset);
      const text = tail.toString("utf8", 0, bytesRead);
      const reason = `the last line of a rotated file never got its newline (no growth for ${this.drainMs} ms); a partial line is not a job`;
      if (text.trim() !== "") rejected.push(this.rejectText(r.offset, reason, text));
    }
    return this.retire(ctx, cur, r, rejected);
  }

  /** Commits the cursor without the rotated file `r`. */
  private async retire(ctx: PollContext, cur: TailCursor, r: TailPosition, rejected: RejectedRecord[]): Promise<Step> {
    const { retired = [], ...rest } = cur;
    const left = retired.filter((x) => x !== r);
    const next: TailCursor = left.length > 0 ? { ...rest, retired: left } : rest;
    const ok = await ctx.commit({ jobs: [], rejected, cursor: next });
    return ok ? "progress" : "conflict";
  }

  private async commitOrIdle(ctx: PollContext, next: TailCursor, prev: TailCursor | null): Promise<Step> {
    if (prev && sameCursor(prev, next)) return "idle";
    const ok = await ctx.commit({ jobs: [], rejected: [], cursor: next });
    return ok ? "progress" : "conflict";
  }

  /**
   * Reads one chunk at `pos` and commits the complete lines in it, with the cursor that
   * `place` makes of the position moved past them. "mismatch": the bytes before the
   * offset are not what was read there (the file was truncated or rewritten).
   */
  private async readFrom(
    fh: FileHandle,
    pos: TailPosition,
    ctx: PollContext,
    place: (next: TailPosition) => TailCursor,
  ): Promise<Step | "mismatch"> {
    const back = Math.min(pos.offset, FP_BYTES);
    // One buffer, reused: everything taken from it (lines, samples, fp) is copied out
    // before the next read.
    this.buf ??= Buffer.allocUnsafe(FP_BYTES + this.readBytes);
    const buf = this.buf.subarray(0, back + this.readBytes);
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos.offset - back);
    if (back > 0 && (bytesRead < back || buf.toString("hex", 0, back) !== pos.fp)) return "mismatch";
    const data = buf.subarray(back, Math.max(back, bytesRead));
    const jobs: EnqueueItem[] = [];
    const rejected: RejectedRecord[] = [];
    let skipping = pos.skipping;
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
        rejected.push(this.reject(pos.offset + p, `line longer than maxLine (${this.maxLine} bytes); skipped`, data, p));
        if (nl < 0) {
          [p, skipping] = [data.length, true];
          break;
        }
        p = nl + 1;
        continue;
      }
      if (nl < 0) break; // a partial line waits for its newline
      this.record(data.subarray(p, nl), pos, pos.offset + p, jobs, rejected);
      p = nl + 1;
    }
    if (p === 0 && skipping === pos.skipping) return "idle";
    const offset = pos.offset + p;
    const fpStart = back + p - Math.min(offset, FP_BYTES);
    const next: TailPosition = { ...positionOf(pos), offset, skipping, fp: buf.toString("hex", fpStart, back + p) };
    const lagMs = jobs.length > 0 ? Math.max(0, ctx.now() - (await fh.stat()).mtimeMs) : undefined;
    const ok = await ctx.commit({ jobs, rejected, cursor: place(next), lagMs });
    return ok ? "progress" : "conflict";
  }

  /** One line (without its newline) becomes a job or a rejected record. */
  private record(line: Buffer, pos: TailPosition, offset: number, jobs: EnqueueItem[], rejected: RejectedRecord[]): void {
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
      key: `trigger:${name}:${pos.ino}:${pos.gen}:${offset}`,
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

  async close(): Promise<void> {
    await this.files.closeAll();
  }
}

/** The start of the file `st`, with the rotated files still drained. */
function fresh(st: Stats, gen: number, retired: TailPosition[]): TailCursor {
  const cursor: TailCursor = { kind: "tail", ino: st.ino, dev: st.dev, offset: 0, gen, skipping: false, fp: "" };
  if (st.birthtimeMs > 0) cursor.born = st.birthtimeMs;
  if (retired.length > 0) cursor.retired = retired;
  return cursor;
}

function positionOf(c: TailPosition): TailPosition {
  const pos: TailPosition = { ino: c.ino, dev: c.dev, offset: c.offset, gen: c.gen, skipping: c.skipping, fp: c.fp };
  if (c.born) pos.born = c.born;
  return pos;
}

/** `cur` with the rotated file `r` moved to `next`. */
function withRetired(cur: TailCursor, r: TailPosition, next: TailPosition): TailCursor {
  return { ...cur, retired: (cur.retired ?? []).map((x) => (x === r ? next : x)) };
}

function sameCursor(a: TailCursor, b: TailCursor): boolean {
  const same = (x: TailPosition, y: TailPosition) =>
    x.ino === y.ino && x.dev === y.dev && x.offset === y.offset && x.skipping === y.skipping;
  const ra = a.retired ?? [];
  const rb = b.retired ?? [];
  return same(a, b) && ra.length === rb.length && ra.every((x, i) => same(x, rb[i]!));
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}
