/** Checks every adapter applies the same way, before anything is written. */
import { BadInputError, PayloadTooLargeError } from "../core/errors.js";
import type { EnqueueItem, NextJob } from "../core/types.js";
import { QUEUE_NAME } from "./store.js";

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
  runAt: number | undefined;
  delayMs: number | undefined;
  parentId: number | null;
  rootId: number | null;
  source: string | null;
}

function intOr(v: number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  if (!Number.isFinite(v)) throw new BadInputError(`${what} must be a finite number`);
  return Math.trunc(v);
}

/**
 * Validates and encodes an enqueue item, throwing before anything is written. `text`
 * adapts a key to what the engine's text type can hold (PostgreSQL: no NUL characters).
 */
export function prepareItem(
  item: EnqueueItem | (NextJob & { parentId?: number }),
  limits: { maxPayload: number; defaultAttempts: number },
  text: (s: string) => string = (s) => s,
): PreparedItem {
  checkQueueName(item.queue);
  const full = item as EnqueueItem;
  return {
    queue: item.queue,
    payload: encodeJson(item.payload, limits.maxPayload),
    key: item.key === undefined || item.key === null ? null : text(String(item.key)),
    priority: intOr(item.priority, 0, "priority"),
    maxAttempts: Math.max(1, intOr(item.maxAttempts, limits.defaultAttempts, "maxAttempts")),
    runAt: full.runAt === undefined ? undefined : intOr(full.runAt, 0, "runAt"),
    delayMs: item.delayMs === undefined ? undefined : intOr(item.delayMs, 0, "delayMs"),
    parentId: full.parentId ?? null,
    rootId: full.rootId ?? null,
    source: full.source ? encodeJson(full.source, limits.maxPayload, "source") : null,
  };
}

/**
 * report() takes p50/p95 run times from at most this many of the newest jobs completed in
 * its window (all queues together): reading every run time of a 30-day window took over a
 * second at a million jobs, these a few milliseconds. A queue none of whose jobs are among
 * them has no percentile (null) in that report.
 */
export const REPORT_DURATION_SAMPLE = 10_000;
