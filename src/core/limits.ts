/**
 * What a name or a job may hold, shared by the config's validation, the store's checks and
 * the HTTP routes: one place, so they never disagree.
 */

/** Queue names: letters, digits and `_ . : -`, up to 128 characters. */
export const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Limits on what a job may carry, checked where every job enters the store (enqueue, a
 * trigger's batch, a completion's next-stage jobs) so the server never meets a value its
 * columns refuse: one such value used to fail a whole completion transaction.
 */
export const LIMITS = {
  /** `priority`: the PostgreSQL `integer` column (SQLite's would hold more, the limit is shared). */
  priorityMin: -2_147_483_648,
  priorityMax: 2_147_483_647,
  /** `maxAttempts`: the same `integer` column type. */
  attemptsMax: 2_147_483_647,
  /** `delayMs`: ten years. Farther is a mistake (a unit slip), and `run_at` must stay in range. */
  delayMaxMs: 3650 * 24 * 3600 * 1000,
  /** `runAt`: the largest time a JavaScript Date can hold (year 275760). */
  runAtMax: 8_640_000_000_000_000,
  /**
   * `key`: characters. PostgreSQL's unique index on keys refuses an entry over ~2,700 bytes
   * (a third of a page); 512 characters stay under it even at 4 bytes each.
   */
  keyMaxChars: 512,
} as const;
