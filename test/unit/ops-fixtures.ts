/**
 * Shared by the operations tests: a real SQLite store in a temp folder, and jobs driven to
 * completed or dead through the store's own verbs (claim → complete / fail), as a worker
 * would, without starting one.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "../../src/core/clock.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import type { Store } from "../../src/store/store.js";

export interface TempStore {
  store: Store;
  dir: string;
  file: string;
  cleanup(): Promise<void>;
}

export async function tempStore(clock?: Clock): Promise<TempStore> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-ops-"));
  const file = join(dir, "vigil.db");
  const store = await openSqliteStore(file, clock ? { clock } : {});
  return {
    store,
    dir,
    file,
    cleanup: async () => {
      await store.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Enqueues `n` jobs on `queue` and completes them; returns their ids. */
export async function completeJobs(store: Store, queue: string, n: number, beforeComplete?: () => void): Promise<number[]> {
  await store.enqueueMany(Array.from({ length: n }, (_, i) => ({ queue, payload: { i } })));
  const leases = await store.claim({ workerId: "test:1", queues: { [queue]: n }, leaseMs: 60_000 });
  beforeComplete?.();
  for (const l of leases) await store.complete(l, { ok: l.jobId });
  return leases.map((l) => l.jobId);
}

/** Enqueues `n` jobs on `queue` and fails each for good (no retry): they end `dead`. */
export async function killJobs(store: Store, queue: string, n: number): Promise<number[]> {
  await store.enqueueMany(Array.from({ length: n }, (_, i) => ({ queue, payload: { i }, maxAttempts: 1 })));
  const leases = await store.claim({ workerId: "test:1", queues: { [queue]: n }, leaseMs: 60_000 });
  for (const l of leases) await store.fail(l, { message: "boom" });
  return leases.map((l) => l.jobId);
}
