/**
 * What the trigger kinds share: the cursors they persist and the contract between a
 * source (which knows files) and the runner (which knows the store, locks and timing).
 *
 * A source never writes to the store itself: it hands each batch of jobs, rejected
 * records and its next cursor to `PollContext.commit`, which moves them in one store
 * transaction. So a process killed at any moment either committed a batch (jobs and
 * cursor) or did not (neither), and the next poll starts from the committed cursor.
 */
import type { EnqueueItem, RejectedRecord } from "../core/types.js";

/** Position in one append-only file. */
export interface TailPosition {
  /** Inode and device of the file being read: another inode at the path means rotation. */
  ino: number;
  dev: number;
  /** Bytes consumed: the next record starts here. A partial last line is not consumed. */
  offset: number;
  /**
   * Bumped at every rotation or truncation, and part of each job key, so offset 0 of a
   * truncated file never collides with the key of offset 0 before the truncation.
   */
  gen: number;
  /** Inside a line longer than `maxLine` (already rejected): discard up to its newline. */
  skipping: boolean;
  /**
   * Hex of the (up to 16) bytes just before `offset`. A file truncated and then regrown
   * past `offset` between two polls has the same inode and a larger size; these bytes
   * differing is how that is caught.
   */
  fp: string;
  /**
   * The file's birth time (ms), where the file system keeps one. With the inode it tells a
   * rotated file from an unrelated one that got its inode after it was deleted, which
   * `fp` cannot do before a byte was read (offset 0).
   */
  born?: number;
}

/** Where a `tail` trigger is: in the file at its path, and in files rotated away but still drained. */
export interface TailCursor extends TailPosition {
  kind: "tail";
  /**
   * Files renamed away from the path (rotation) whose writer may still append to them:
   * read on, oldest first, until each has been quiet for the trigger's `drain`. Saved in
   * the same transaction as the jobs, like the position at the path, so a crash during a
   * drain neither loses nor repeats a line. Absent in cursors saved before it existed.
   */
  retired?: TailPosition[];
}

/**
 * What a watch or file trigger last saw of one file: size, mtime (ms), inode, and the
 * first 128 bits of its sha256 in base64url. A tuple, and a shortened hash, because the
 * whole snapshot is one cursor and the store bounds a cursor like a payload (`maxPayload`,
 * default 1 MiB): about 80 bytes a file keeps a folder of 10,000 files under that.
 */
export type SnapshotEntry = [size: number, mtimeMs: number, ino: number, hash: string];

/** The snapshot's short form of a sha256 given in hex. */
export function shortHash(sha256Hex: string): string {
  return Buffer.from(sha256Hex.slice(0, 32), "hex").toString("base64url");
}

/** Files seen by a `watch` or `file` trigger, keyed by path relative to the folder. */
export interface SnapshotCursor {
  kind: "snapshot";
  files: Record<string, SnapshotEntry>;
  /** Jobs made so far; numbers each job key, so content that changes back is still a new job. */
  seq: number;
}

/** Where a `schedule` trigger is: every tick up to `through` has been dealt with. */
export interface ScheduleCursor {
  kind: "schedule";
  /** ms since the epoch: ticks at or before it are enqueued or were skipped as missed. */
  through: number;
  /** ms since the epoch of the last tick enqueued, or null before the first. */
  lastTick: number | null;
}

export type TriggerCursorState = TailCursor | SnapshotCursor | ScheduleCursor;

/** One atomic step: jobs, rejected records and the cursor they lead to. */
export interface TriggerBatch {
  jobs: EnqueueItem[];
  rejected: RejectedRecord[];
  cursor: TriggerCursorState;
  /** ms between the newest record in this batch appearing and now, if known. */
  lagMs?: number | null;
}

/** What a source may do during one poll. */
export interface PollContext {
  /** The last committed cursor, or null before the first commit. */
  readonly cursor: TriggerCursorState | null;
  /**
   * Enqueues the jobs, keeps the rejected records and moves the cursor in one store
   * transaction. False: another process moved the cursor first; the poll must stop (the
   * runner re-reads the cursor and polls again).
   */
  commit(batch: TriggerBatch): Promise<boolean>;
  /** Whether there is time left in this poll for another step (the poll's budget is one interval). */
  hasTime(): boolean;
  /** A problem that does not stop the poll (an unreadable file among many): shown in status. */
  warn(message: string): void;
  /** ms since the epoch */
  now(): number;
}

export interface PollOutcome {
  /** Work is left (a backlog, or the time budget ran out): poll again at once. */
  more: boolean;
  /** Poll again after at most this many ms (a file that will be stable by then). */
  wakeInMs?: number;
}

/** A kind of trigger: knows its files, not the store. */
export interface TriggerSource {
  readonly kind: "tail" | "watch" | "file" | "schedule";
  /** Poll interval chosen by the source, for a kind whose config has no `every` (schedule). */
  readonly every?: number;
  poll(ctx: PollContext): Promise<PollOutcome>;
  /** Extra status fields (a schedule's last and next tick). */
  describe?(now: number): { lastTickAt: number | null; nextTickAt: number | null; missedTicks: number };
  /** Frees open files. */
  close(): Promise<void>;
}

/** Settings every source gets from its trigger's config. */
export interface SourceOptions {
  /** The trigger's name (in job keys and sources). */
  name: string;
  queue: string;
  priority?: number;
  /** Attempts for the jobs it makes (the queue's `attempts`). */
  maxAttempts?: number;
  /** Largest payload the store accepts in bytes: a bigger record is rejected, never retried forever. */
  maxPayload: number;
}

/** Longest sample of a rejected record kept for people (characters). */
export const SAMPLE_CHARS = 200;

/** A record's start, bounded, for a rejected record. */
export function sampleOf(text: string): string {
  return text.length > SAMPLE_CHARS ? `${text.slice(0, SAMPLE_CHARS)}…` : text;
}

/** Whether a payload fits in `maxPayload` bytes of JSON. */
export function payloadFits(payload: unknown, maxPayload: number): boolean {
  return Buffer.byteLength(JSON.stringify(payload)) <= maxPayload;
}
