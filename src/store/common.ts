/** Checks every adapter applies the same way, before anything is written. */
import { BadInputError, PayloadTooLargeError, VigilError } from "../core/errors.js";
import { FINAL_STATES, type EnqueueItem, type JobState, type NextJob } from "../core/types.js";
import { LIMITS, QUEUE_NAME } from "../core/limits.js";
import { groupOf } from "./flow.js";

/** Serialises a payload or result to JSON, refusing what cannot round-trip or is too big. */
export function encodeJson(value: unknown, maxBytes: number, what = "payload"): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (err) {
    throw new BadInputError(`${what} is not JSON-serialisable: ${(err as Error).message}`, { cause: err });
  }
  if (text === undefined) throw new BadInputError(`${what} is not JSON-serialisable`);
  const size = Buffer.byteLength(text);
  if (size > maxBytes) throw new PayloadTooLargeError(size, maxBytes);
  return text;
}

export function checkQueueName(queue: string): void {
  if (typeof queue !== "string" || !QUEUE_NAME.test(queue)) {
    throw new BadInputError(
      `queue name ${JSON.stringify(queue)} is not valid: use letters, digits and _ . : - (at most 128)`,
    );
  }
}

/** When an item becomes due: explicit runAt, else now + delay, else now. */
export function dueAt(item: Pick<EnqueueItem, "runAt" | "delayMs">, now: number): number {
  if (item.runAt !== undefined) return item.runAt;
  if (item.delayMs !== undefined && item.delayMs > 0) return now + item.delayMs;
  return now;
}

/** Random lease token: 16 bytes of hex. */
export { randomUUID as newToken } from "node:crypto";

/** An enqueue item checked and encoded, ready to insert (every adapter's input to INSERT). */
export interface PreparedItem {
  queue: string;
  payload: string;
  key: string | null;
  priority: number;
  maxAttempts: number;
  /** null: the job's queue has no `maxStalls` the store knows; the freeing call decides. */
  maxStalls: number | null;
  runAt: number | undefined;
  delayMs: number | undefined;
  parentId: number | null;
  rootId: number | null;
  source: string | null;
  /** `onDuplicate: replace`: a live job holding the key that has not started takes this payload. */
  replace: boolean;
  /** The value of its queue's `group.by` field (groupOf); null when the store knows no group for the queue. */
  grp: string | null;
}


/** A whole number in [min, max], else `BAD_INPUT` naming the field and the range. */
function intIn(v: unknown, fallback: number, what: string, min: number, max: number, hint = ""): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new BadInputError(`${what} ${JSON.stringify(v) ?? String(v)} is not a number: use a whole number from ${min} to ${max}${hint}`);
  }
  const n = Math.trunc(v);
  if (n < min || n > max) throw new BadInputError(`${what} ${v} is out of range: use a whole number from ${min} to ${max}${hint}`);
  return n;
}

function checkDelay(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new BadInputError(`delayMs ${String(v)} is not a finite number of milliseconds`);
  if (v > LIMITS.delayMaxMs) {
    throw new BadInputError(`delayMs ${v} is too long: at most ${LIMITS.delayMaxMs} ms (10 years)`);
  }
  return Math.trunc(v);
}

function checkKey(key: unknown): string | null {
  if (key === undefined || key === null) return null;
  const s = String(key);
  if (s.length > LIMITS.keyMaxChars) {
    throw new BadInputError(`key is ${s.length} characters long: at most ${LIMITS.keyMaxChars} characters`);
  }
  return s;
}

function maxStallsOf(v: number | undefined): number | null {
  return v === undefined ? null : intIn(v, 1, "maxStalls", 1, LIMITS.attemptsMax);
}

/**
 * Validates and encodes an enqueue item, throwing `BAD_INPUT` (or `PAYLOAD_TOO_LARGE`)
 * before anything is written. `text` adapts a key to what the engine's text type can hold
 * (PostgreSQL: no NUL characters).
 */
/** What the store's options say about every item enqueued (see StoreOptions). */
export interface EnqueueLimits {
  maxPayload: number;
  defaultAttempts: number;
  queueMaxStalls?: Record<string, number>;
  queueOnDuplicate?: Record<string, "keep" | "replace">;
  queueGroupBy?: Record<string, string>;
}

export function prepareItem(
  item: EnqueueItem | (NextJob & { parentId?: number }),
  limits: EnqueueLimits,
  text: (s: string) => string = (s) => s,
): PreparedItem {
  checkQueueName(item.queue);
  const full = item as EnqueueItem;
  const key = checkKey(item.key);
  // Fewer than one attempt means one, as it always has.
  const asked = typeof item.maxAttempts === "number" && item.maxAttempts < 1 ? 1 : item.maxAttempts;
  const attempts = intIn(asked, limits.defaultAttempts, "maxAttempts", 1, LIMITS.attemptsMax);
  return {
    queue: item.queue,
    payload: encodeJson(item.payload, limits.maxPayload),
    key: key === null ? null : text(key),
    priority: intIn(item.priority, 0, "priority", LIMITS.priorityMin, LIMITS.priorityMax, " (higher runs first)"),
    maxAttempts: attempts,
    maxStalls: maxStallsOf(full.maxStalls ?? limits.queueMaxStalls?.[item.queue]),
    runAt: full.runAt === undefined ? undefined : intIn(full.runAt, 0, "runAt", 0, LIMITS.runAtMax, " (ms since the epoch)"),
    delayMs: checkDelay(item.delayMs),
    parentId: full.parentId ?? null,
    rootId: full.rootId ?? null,
    source: full.source ? encodeJson(full.source, limits.maxPayload, "source") : null,
    replace: (full.onDuplicate ?? limits.queueOnDuplicate?.[item.queue]) === "replace",
    grp: groupColumn(item.queue, item.payload, limits),
  };
}

/** What a job's `grp` column holds: its group's value, when the store knows its queue's group. */
export function groupColumn(queue: string, payload: unknown, limits: Pick<EnqueueLimits, "queueGroupBy">): string | null {
  const by = limits.queueGroupBy?.[queue];
  return by === undefined ? null : groupOf(payload, by);
}

/**
 * A completion's next-stage jobs, each checked as an enqueue is. A refusal names the job
 * (`next-stage job 2 of 3 (queue "b"): ...`) and keeps its code, so the completing job fails
 * with the reason and nothing of it is written.
 */
export function prepareNext(
  next: readonly NextJob[] | undefined,
  limits: EnqueueLimits,
  text?: (s: string) => string,
): PreparedItem[] {
  if (!next?.length) return [];
  return next.map((n, i) => {
    try {
      return prepareItem(n, limits, text);
    } catch (err) {
      if (!(err instanceof VigilError)) throw err;
      const which = next.length > 1 ? `next-stage job ${i + 1} of ${next.length}` : "the next-stage job";
      err.message = `${which} (queue ${JSON.stringify(n.queue)}): ${err.message}`;
      throw err;
    }
  });
}

/**
 * report() takes p50/p95 run times from at most this many of the newest jobs completed in
 * its window (all queues together): reading every run time of a 30-day window took over a
 * second at a million jobs, these a few milliseconds. A queue none of whose jobs are among
 * them has no percentile (null) in that report.
 */
export const REPORT_DURATION_SAMPLE = 10_000;

/**
 * The table a job in `state` lives in, on both engines: a job that finished (completed,
 * dead, cancelled) was moved to `job_history` by the write that finished it.
 */
export function jobTable(state: JobState | string): "jobs" | "job_history" {
  return (FINAL_STATES as readonly string[]).includes(state) ? "job_history" : "jobs";
}
