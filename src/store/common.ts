/** Checks every adapter applies the same way, before anything is written. */
import { BadInputError, PayloadTooLargeError } from "../core/errors.js";
import type { EnqueueItem } from "../core/types.js";
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
