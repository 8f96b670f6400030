/** What a failed attempt means: retry when, or dead. Pure, so it is tested without a store. */
import { backoffDelay } from "../core/backoff.js";
import { isNonRetryable } from "../core/errors.js";
import type { Job, JobErrorInfo } from "../core/types.js";
import type { QueueSettings } from "./options.js";

export interface FailureDecision {
  error: JobErrorInfo;
  /** When to retry; undefined means the job is dead. */
  retryAt: number | undefined;
}

/** The largest stack kept per attempt (8 KiB): attempt history stays readable and small. */
const MAX_STACK_CHARS = 8192;

/**
 * Decides a failed attempt: `NonRetryableError` → dead; attempts exhausted → dead;
 * `RetryAfterError` → retry after its delay; otherwise the queue's backoff for this attempt.
 */
export function decideFailure(
  err: unknown,
  job: Job,
  q: QueueSettings,
  now: number,
  outcome: "error" | "timeout" = "error",
  random: () => number = Math.random,
): FailureDecision {
  const error = errorInfo(err, outcome);
  if (isNonRetryable(err)) return { error, retryAt: undefined };
  const max = q.attempts ?? job.maxAttempts;
  if (job.attempt >= max) return { error, retryAt: undefined };
  const after = retryAfterMs(err);
  const delay = after ?? backoffDelay(q.backoff, job.attempt, random);
  return { error, retryAt: now + delay };
}

/** Message and stack of anything a handler may throw (not only Errors). */
export function errorInfo(err: unknown, outcome: "error" | "timeout" = "error"): JobErrorInfo {
  if (err instanceof Error) {
    const info: JobErrorInfo = { message: err.message || err.name, outcome };
    if (err.stack) info.stack = err.stack.slice(0, MAX_STACK_CHARS);
    return info;
  }
  let message: string;
  try {
    message = typeof err === "string" ? err : JSON.stringify(err) ?? String(err);
  } catch {
    message = String(err);
  }
  return { message: `non-error thrown: ${message}`, outcome };
}

/** The delay a `RetryAfterError` asks for (also from another copy of the class). */
function retryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof Error) || err.name !== "RetryAfterError") return undefined;
  const d = (err as Error & { delayMs?: unknown }).delayMs;
  return typeof d === "number" && Number.isFinite(d) && d >= 0 ? d : undefined;
}
