/**
 * Errors. Infrastructure errors derive from `VigilError` and carry a stable string `code`;
 * job-control errors (`NonRetryableError`, `RetryAfterError`) are what a handler throws on
 * purpose and are kept apart from them.
 */

export type ErrorCode =
  | "LEASE_LOST"
  | "BAD_INPUT"
  | "PAYLOAD_TOO_LARGE"
  | "UNKNOWN_QUEUE"
  | "NOT_FOUND"
  | "INVALID_STATE"
  | "STORE_CORRUPT"
  | "STORE_FOREIGN"
  | "STORE_UNREACHABLE"
  | "STORE_TOO_NEW"
  | "CONFIG"
  | "LOCKED"
  | "HANDLER_LOAD"
  | "WEDGED";

export class VigilError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A renewal or completion carried a lease token that is no longer the job's. */
export class LeaseLostError extends VigilError {
  constructor(
    readonly jobId: number,
    options?: ErrorOptions,
  ) {
    super(
      "LEASE_LOST",
      `job ${jobId}: the lease was lost (it expired or another worker took the job); this result is discarded`,
      options,
    );
  }
}

/** Input that cannot be accepted: say which and what to do. */
export class BadInputError extends VigilError {
  constructor(message: string, options?: ErrorOptions) {
    super("BAD_INPUT", message, options);
  }
}

export class PayloadTooLargeError extends VigilError {
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(
      "PAYLOAD_TOO_LARGE",
      `payload is ${size} bytes, over the limit of ${limit} bytes; store large data in a file and enqueue its path, or raise maxPayload`,
    );
  }
}

export class NotFoundError extends VigilError {
  constructor(what: string) {
    super("NOT_FOUND", `${what} not found`);
  }
}

export class InvalidStateError extends VigilError {
  constructor(message: string) {
    super("INVALID_STATE", message);
  }
}

/** Thrown by a handler: the job goes straight to `dead`, no more attempts. */
export class NonRetryableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/** Thrown by a handler: retry no earlier than `delayMs` from now (the attempt still counts). */
export class RetryAfterError extends Error {
  constructor(
    readonly delayMs: number,
    message = `retry after ${delayMs} ms`,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "RetryAfterError";
  }
}

/**
 * Thrown by `ctx.rateLimited(ms)`: the provider said "too many requests". The job goes back
 * unrun (the attempt not counted) and its queue, or its group, starts nothing for `delayMs`.
 */
export class RateLimitedError extends Error {
  constructor(
    readonly delayMs: number,
    /** What the handler said, if anything (e.g. the provider's answer). */
    readonly reason?: string,
  ) {
    super(`rate limited for ${delayMs} ms${reason ? `: ${reason}` : ""}`);
    this.name = "RateLimitedError";
  }
}

/** The hold a `RateLimitedError` asks for (also from another copy of the class), else undefined. */
export function rateLimitedMs(err: unknown): number | undefined {
  if (!(err instanceof Error) || err.name !== "RateLimitedError") return undefined;
  const d = (err as Error & { delayMs?: unknown }).delayMs;
  return typeof d === "number" && Number.isFinite(d) && d >= 0 ? d : undefined;
}

/** Whether an error thrown by a handler means "do not retry". Works across module copies. */
export function isNonRetryable(err: unknown): boolean {
  return err instanceof NonRetryableError || (err instanceof Error && err.name === "NonRetryableError");
}

/** One line for a person; a stack only when asked. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
