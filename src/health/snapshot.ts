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
import { emptyCounts, type QueueCounts } from "../core/types.js";

/** Options of `storeSnapshot`. */
export interface StoreSnapshotOptions {
  /** The state folder whose status.json supplies services and triggers (optional). */
  stateDir?: string;
  /** Recent incidents included (default 20). */
  incidents?: number;
  /** The config's queues: each is listed, with zero counts while it has no job. */
  queues?: readonly string[];
}

/**
 * The store's counts with every configured queue in them: a queue that has had no job yet
 * is listed with zeros (first, in the config's order), not left out; a queue the store
 * has jobs of but the config no longer names stays listed after them.
 */
export function withConfiguredQueues(counts: Record<string, QueueCounts>, names: readonly string[] = []): Record<string, QueueCounts> {
  const out: Record<string, QueueCounts> = {};
  for (const name of names) out[name] = counts[name] ?? emptyCounts();
  for (const [name, c] of Object.entries(counts)) out[name] ??= c;
  return out;
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
    queues: withConfiguredQueues(queues, opts.queues),
    paused,
    triggers: file?.snapshot.triggers ?? [],
    incidents,
    source: file && !gone ? "status-file" : "store",
  };
}

function stopped(s: ServiceStatus): ServiceStatus {
  return { ...s, state: "stopped", pid: null, heartbeatAgeMs: null, startedAt: null, rssBytes: null, activeJobs: 0, nextRestartAt: null };
}
