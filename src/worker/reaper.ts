/**
 * Reaping expired leases: the jobs of a worker that vanished without anyone seeing it die
 * (its host lost, a SIGKILL with no supervisor, a worker frozen past its leases) go back
 * to `waiting` (or `dead`), a stall each.
 *
 * Workers own this, one at a time per project: every worker offers, and the store's
 * `reaper` leader lock lets one reap, on any store and any number of hosts. Workers are
 * the processes that need it (nobody else would run the freed jobs), they run in every
 * deployment (with or without a supervisor, a triggers process or a full-role host), and
 * a worker that holds the lock and vanishes hands it over within the lock's TTL. See
 * "Reaping expired leases" in docs/store.md.
 */
import { startPeriodic, type PeriodicTask } from "../core/periodic.js";
import type { Logger } from "pino";
import type { Store } from "../store/store.js";
import type { QueueSettings } from "./options.js";

/**
 * How often a worker reaps expired leases (5 s, or half the shortest lease). A frozen or
 * vanished worker's job is back within lease + this (+ the lock's TTL when the vanished
 * worker was the one reaping). More often costs a store write per tick for nothing most of
 * the time.
 */
export const REAP_EVERY_MS = 5000;
/** The leader lock every worker of a project offers for. */
export const REAP_LOCK = "reaper";

export interface ReaperOptions {
  /** Who holds the lock: the worker id. */
  owner: string;
  /** The worker's queues: the shortest lease sets the pace, each queue's maxStalls its limit. */
  queues: QueueSettings[];
  /** ms between rounds (default: REAP_EVERY_MS, or half the shortest lease if less, at least 100). */
  every?: number;
  log: Logger;
  onError(err: unknown): void;
}

/** Starts reaping now and every round after, while this worker holds the `reaper` lock. */
export function startReaper(store: Store, opts: ReaperOptions): PeriodicTask<number> {
  const minLease = Math.min(...opts.queues.map((q) => q.lease));
  const every = opts.every ?? Math.min(REAP_EVERY_MS, Math.max(100, minLease / 2));
  // Each of this worker's queues by its own maxStalls (the store may know others' too).
  const stalls = { queueMaxStalls: Object.fromEntries(opts.queues.map((q) => [q.name, q.maxStalls])) };
  return startPeriodic({
    name: "reaping expired leases",
    every,
    firstAfter: 0,
    // Two rounds: one round late does not hand it over; a vanished holder's is taken over soon.
    lock: { store, name: REAP_LOCK, owner: opts.owner, ttlMs: 2 * every },
    run: async () => {
      const n = await store.reapExpired(stalls);
      if (n > 0) opts.log.info({ reaped: n }, "returned jobs with expired leases");
      return n;
    },
    onError: opts.onError,
  });
}
