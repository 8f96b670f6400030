/**
 * A status snapshot without a live supervisor: queues and incidents from the store,
 * services and triggers from the last status file when there is one. What the HTTP server
 * shows when it is started on its own (and what tests serve); inside the supervisor the
 * live `snapshot()` is used instead.
 */
import { pausedQueues } from "./queues.js";
import type { Store } from "../store/store.js";
import { readStatusFile } from "./state-files.js";
import type { StatusSnapshot } from "./types.js";

/** Options of `storeSnapshot`. */
export interface StoreSnapshotOptions {
  /** The state folder whose status.json supplies services and triggers (optional). */
  stateDir?: string;
  /** Recent incidents included (default 20). */
  incidents?: number;
}

/** Builds a `StatusSnapshot` from the store (and the status file, if any). */
export async function storeSnapshot(store: Store, opts: StoreSnapshotOptions = {}): Promise<StatusSnapshot> {
  const now = store.clock.now();
  const file = opts.stateDir ? readStatusFile(opts.stateDir, now) : null;
  const [queues, incidents, paused] = await Promise.all([
    store.stats(),
    store.listIncidents({ limit: opts.incidents ?? 20 }),
    pausedQueues(store),
  ]);
  return {
    at: now,
    supervisor: file?.snapshot.supervisor ?? null,
    services: file?.snapshot.services ?? [],
    queues,
    paused,
    triggers: file?.snapshot.triggers ?? [],
    incidents,
    source: file ? "status-file" : "store",
  };
}
