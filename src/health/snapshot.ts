/**
 * A status snapshot without a live supervisor: queues and incidents from the store,
 * services and triggers from the last status file when there is one. What `vigil status`
 * shows when no supervisor answers, and the HTTP server when it is started on its own
 * (and what tests serve); inside the supervisor the live `snapshot()` is used instead.
 */
import { pausedQueues } from "./queues.js";
import type { Store } from "../store/store.js";
import { readPidFile } from "../project/pid-file.js";
import { readStatusFile } from "../project/status-file.js";
import type { ServiceStatus, StatusSnapshot } from "../core/status.js";

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
  // With no live supervisor nothing is supervised: its last file's rows are history (one
  // that was SIGKILLed wrote no final file), shown stopped rather than as they were.
  const gone = opts.stateDir !== undefined && !readPidFile(opts.stateDir).alive;
  const [queues, incidents, paused] = await Promise.all([
    store.stats(),
    store.listIncidents({ limit: opts.incidents ?? 20 }),
    pausedQueues(store),
  ]);
  return {
    at: now,
    supervisor: file?.snapshot.supervisor ?? null,
    services: (file?.snapshot.services ?? []).map((s) => (gone ? stopped(s) : s)),
    queues,
    paused,
    triggers: file?.snapshot.triggers ?? [],
    incidents,
    source: file && !gone ? "status-file" : "store",
  };
}

function stopped(s: ServiceStatus): ServiceStatus {
  return { ...s, state: "stopped", pid: null, heartbeatAgeMs: null, startedAt: null, rssBytes: null, activeJobs: 0, nextRestartAt: null };
}
