/**
 * Waiting for the SQLite write lock without blocking the event loop. better-sqlite3 is
 * synchronous: its `busy_timeout` sleeps inside the call, so a lock another process holds
 * for seconds would freeze the whole process — a worker's heartbeats stop and the
 * supervisor kills it as stalled. So the connection's own wait is kept to a few ms, and a
 * transaction that still meets SQLITE_BUSY is run again whole after an asynchronous sleep
 * (capped exponential backoff with jitter) until `lockWaitMs` has passed.
 *
 * Safe to run again because every write is `BEGIN IMMEDIATE`: the lock is taken first,
 * so busy comes before any statement ran, and a transaction that fails later is rolled
 * back whole by better-sqlite3 before the error reaches here.
 */

/**
 * The connection's synchronous wait (`busy_timeout`): long enough to ride out another
 * process's ordinary transaction (a claim or a group commit: ~1–10 ms) without the
 * asynchronous path, short enough that the loop is never held for more than a sliver of
 * a heartbeat (1 s).
 */
export const BUSY_TIMEOUT_MS = 10;

/**
 * How long a transaction keeps trying before it fails with STORE_UNREACHABLE. Waiting is
 * harmless now (the loop keeps turning), so this is long enough to ride out a bulk import
 * or a slow checkpoint on a loaded disk, and still names a process that holds the lock
 * for good.
 */
export const LOCK_WAIT_MS = 30_000;

/**
 * Backoff between tries: from 5 ms (another process's transaction is usually done by
 * then), doubling to 200 ms, so a lock freed after a long hold is noticed within a fifth
 * of a second and a waiting process costs a few wake-ups per second.
 */
const FIRST_DELAY_MS = 5;
const MAX_DELAY_MS = 200;

/** SQLITE_BUSY and its extended codes (BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT). */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

/** Raised when the lock stayed taken for `waitedMs`; carries SQLite's last error. */
export class LockWaitExpired extends Error {
  constructor(
    readonly waitedMs: number,
    readonly last: unknown,
  ) {
    super(`still locked after ${waitedMs} ms: ${(last as Error).message}`);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Runs `attempt` now; if it meets SQLITE_BUSY, runs it again after asynchronous sleeps
 * until it succeeds, throws something else, or `waitMs` has passed (then
 * `LockWaitExpired`). Without contention this is one synchronous call and its value,
 * not a promise: the hot path pays nothing.
 */
export function whenUnlocked<T>(attempt: () => T, waitMs: number): T | Promise<T> {
  try {
    return attempt();
  } catch (err) {
    if (!isBusy(err)) throw err;
    return retry(attempt, waitMs, err);
  }
}

async function retry<T>(attempt: () => T, waitMs: number, first: unknown): Promise<T> {
  const started = Date.now();
  let last = first;
  for (let delay = FIRST_DELAY_MS; ; delay = Math.min(delay * 2, MAX_DELAY_MS)) {
    const left = started + waitMs - Date.now();
    if (left <= 0) throw new LockWaitExpired(waitMs, last);
    // Full jitter over the upper half: processes that met the same lock do not wake together.
    await sleep(Math.min(left, delay / 2 + Math.random() * (delay / 2)));
    try {
      return attempt();
    } catch (err) {
      if (!isBusy(err)) throw err;
      last = err;
    }
  }
}
