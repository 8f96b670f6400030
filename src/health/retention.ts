/**
 * Retention: removes completed jobs older than `retention.completed` (default 7 d), dead
 * jobs older than `retention.dead` (default 30 d) and cancelled ones older than
 * `retention.cancelled` (default: as dead), and folds per-minute report counts older than
 * two days into hourly ones, periodically, in small
 * batches (`store.prune` commits `batch` rows per transaction and pauses between them, so
 * a worker's claim never waits long behind it and the pruning process's own event loop,
 * with its heartbeat, keeps turning). Totals and report figures survive: the store keeps
 * per-queue totals that pruning does not lower.
 *
 * Only one process prunes at a time, across hosts: each round runs under the store's
 * `retention` leader lock. The `vigil triggers` housekeeping process starts it with
 * `startRetention(store, config.retention, { owner: workerId })`.
 */
import { randomUUID } from "node:crypto";
import { startPeriodic } from "../core/periodic.js";
import { MINUTES_KEPT_MS } from "../store/rollups.js";
import type { Store } from "../store/store.js";
import { silentLogger, type Logger } from "../core/log.js";

/** The `retention:` section of the config, in ms. */
export interface RetentionPolicy {
  /** Completed jobs finished longer ago than this are removed (default 7 d). */
  completed: number;
  /** Dead jobs finished longer ago than this are removed (default 30 d). */
  dead: number;
  /** Cancelled jobs finished longer ago than this are removed (default: as `dead`). */
  cancelled?: number;
}

/** Options of `startRetention`. */
export interface RetentionOptions {
  /** Who holds the `retention` lock (default: a random id for this process). */
  owner?: string;
  /** Time between rounds, ms (default 10 min). */
  every?: number;
  /** Delay before the first round, ms (default 30 s), so start-up is not slowed by it. */
  firstAfter?: number;
  /** Rows per transaction (default 500). */
  batch?: number;
  logger?: Logger;
}

/** Rows removed by one round. */
export interface PruneRound {
  completed: number;
  dead: number;
}

/** A running retention timer. */
export interface RetentionHandle {
  /** Runs one round now; null when another process holds the lock. */
  runOnce(): Promise<PruneRound | null>;
  /** Stops the timer and waits for a round in progress. */
  stop(): Promise<void>;
}

/** The lock name shared by every process that may prune. */
export const RETENTION_LOCK = "retention";

/**
 * Starts pruning `store` by `policy` every `every` ms (first round after `firstAfter`),
 * one round at a time and only while holding the `retention` lock.
 */
export function startRetention(store: Store, policy: RetentionPolicy, opts: RetentionOptions = {}): RetentionHandle {
  // Ten minutes: old jobs are measured in days, so pruning more often only costs queries;
  // much rarer would let a burst of millions of jobs pile up between rounds.
  const every = opts.every ?? 600_000;
  const log = opts.logger ?? silentLogger;
  return startPeriodic({
    name: "retention round",
    every,
    firstAfter: opts.firstAfter ?? 30_000,
    // The lock outlives a round comfortably (rounds take seconds) yet frees itself soon
    // after a pruning process dies, so another host takes over at its next round.
    lock: { store, name: RETENTION_LOCK, owner: opts.owner ?? `retention:${randomUUID()}`, ttlMs: Math.max(60_000, every * 2) },
    log,
    run: async () => {
      const now = store.clock.now();
      const done = await store.prune({
        completedBefore: now - policy.completed,
        deadBefore: now - policy.dead,
        cancelledBefore: now - (policy.cancelled ?? policy.dead),
        // Per-minute counts older than two days become hourly ones (store/rollups.ts).
        foldBefore: now - MINUTES_KEPT_MS,
        batch: opts.batch ?? 500,
      });
      if (done.completed + done.dead > 0) log.info({ ...done }, "retention pruned old jobs");
      return done;
    },
  });
}
