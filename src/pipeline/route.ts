/**
 * Stage hand-off: what a handler's result means for the next stage. The jobs computed here
 * are passed to the store's `complete`, which creates them in the same transaction that
 * completes the current job (a crash can neither lose the hand-off nor make it twice).
 */
import type { NextJob } from "../core/types.js";
import { QUEUE_NAME } from "../core/limits.js";

/**
 * An explicit hand-off a handler returns: `{ next: "implement", payload: {...} }`.
 *
 * A result is recognised as a route when, and only when, it is a plain object that
 * - has an own `next` property that is a valid queue name (a string),
 * - has an own `payload` property (any JSON value, `null` included), and
 * - has no own properties other than `next`, `payload`, `key`, `priority`, `delayMs`.
 *
 * An array is a fan-out when it is non-empty and every element is a route; each element
 * becomes one job. Anything else (an object with other keys, an empty array, an array
 * with one non-route element) is a plain result, handed to the queue's configured `next`
 * if it has one. Returning a route overrides the queue's `next`.
 */
export interface Route {
  /** The queue the payload goes to. */
  next: string;
  payload: unknown;
  /** Idempotency key for the new job. */
  key?: string;
  /** Priority of the new job (higher runs first). */
  priority?: number;
  /** Run the new job no earlier than this many ms from now. */
  delayMs?: number;
}

const ROUTE_KEYS = new Set(["next", "payload", "key", "priority", "delayMs"]);

/** Whether `value` is a route by the rule above. */
export function isRoute(value: unknown): value is Route {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  if (!Object.hasOwn(value, "next") || !Object.hasOwn(value, "payload")) return false;
  const next = (value as { next: unknown }).next;
  if (typeof next !== "string" || !QUEUE_NAME.test(next)) return false;
  for (const k of Object.keys(value)) if (!ROUTE_KEYS.has(k)) return false;
  const r = value as Route;
  if (r.key !== undefined && typeof r.key !== "string") return false;
  if (r.priority !== undefined && !Number.isInteger(r.priority)) return false;
  if (r.delayMs !== undefined && !(typeof r.delayMs === "number" && r.delayMs >= 0)) return false;
  return true;
}

/** Whether `value` is a fan-out: a non-empty array of routes. */
export function isFanOut(value: unknown): value is Route[] {
  return Array.isArray(value) && value.length > 0 && value.every(isRoute);
}

/**
 * The next-stage jobs for a handler's result: its routes if it is a route or a fan-out,
 * else one job on `stageNext` (the queue's `next`) with the result as payload, else none.
 * `attemptsFor` gives the attempts configured for a target queue, if known.
 */
export function nextJobs(
  result: unknown,
  stageNext: string | undefined,
  attemptsFor: (queue: string) => number | undefined = () => undefined,
): NextJob[] {
  const routes: Route[] = isRoute(result)
    ? [result]
    : isFanOut(result)
      ? result
      : stageNext !== undefined
        ? [{ next: stageNext, payload: result === undefined ? null : result }]
        : [];
  return routes.map((r) => {
    const job: NextJob = { queue: r.next, payload: r.payload === undefined ? null : r.payload };
    if (r.key !== undefined) job.key = r.key;
    if (r.priority !== undefined) job.priority = r.priority;
    if (r.delayMs !== undefined) job.delayMs = r.delayMs;
    const attempts = attemptsFor(r.next);
    if (attempts !== undefined) job.maxAttempts = attempts;
    return job;
  });
}
