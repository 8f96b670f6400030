/**
 * Jobs a worker gives back unrun (a stop, a claim-ahead buffer whose handlers turned slow,
 * rate-limited jobs that missed their start slack), collected over one turn of the event
 * loop and released in ONE `store.releaseMany` call. One statement per job queued each
 * release (and, on PostgreSQL, its NOTIFY) behind the next claim in the connection pool.
 */
import type { Lease } from "../core/types.js";
import type { Store } from "../store/store.js";

export class GiveBacks {
  private pending: Lease[] = [];

  constructor(
    private readonly store: Store,
    private readonly hooks: {
      /** Keeps the release's promise for a stop to wait on. */
      track: (p: Promise<unknown>) => void;
      /** Jobs whose lease no longer held when given back (taken over or cancelled). */
      stale: (jobIds: number[]) => void;
      onError: (err: unknown) => void;
    },
  ) {}

  /** Gives `lease` back with the others given back in this turn. */
  add(lease: Lease): void {
    this.pending.push(lease);
    if (this.pending.length > 1) return;
    // Tracked at once, so a stop waits for the release that is not yet sent.
    this.hooks.track(
      Promise.resolve()
        .then(() => this.flush())
        .catch((err) => this.hooks.onError(err)),
    );
  }

  private async flush(): Promise<void> {
    const leases = this.pending;
    this.pending = [];
    const released = new Set(await this.store.releaseMany(leases));
    const stale = leases.filter((l) => !released.has(l.jobId)).map((l) => l.jobId);
    if (stale.length > 0) this.hooks.stale(stale);
  }
}
