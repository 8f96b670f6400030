/**
 * Lease renewal for a Worker: every third of the shortest lease, one `renewMany` per lease
 * length over every lease the worker still needs, and word of the ones it lost.
 */
import { intervalNow } from "../core/clock.js";
import type { LeaseRef } from "../core/types.js";
import type { Store } from "../store/store.js";
import type { Committer } from "./committer.js";
import type { JobRun } from "./job-run.js";
import type { LeaseBuffer } from "./lease-buffer.js";
import type { QueueSettings } from "./options.js";

/** What renewal reads from the Worker that owns the leases. */
export interface RenewalHost {
  readonly store: Store;
  readonly queues: ReadonlyMap<string, QueueSettings>;
  readonly running: ReadonlyMap<number, JobRun>;
  /** Runs whose handler settled and whose fail or rounds check is still in flight. */
  readonly finishing: ReadonlySet<JobRun>;
  readonly committer: () => Committer;
  readonly buffer: LeaseBuffer;
  readonly track: (p: Promise<unknown>) => void;
  /** A renewal found this lease gone. */
  readonly lost: (jobId: number) => void;
  readonly storeError: (err: unknown, doing: string) => void;
}

/** Renews a Worker's leases on a timer; see the file comment. */
export class LeaseRenewals {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: RenewalHost) {}

  /** Renewing at a third of the lease leaves two more chances before it runs out. */
  start(minLeaseMs: number): void {
    this.timer = setInterval(() => this.renewAll(), Math.max(50, minLeaseMs / 3));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Renews, per lease length, every lease the worker still needs: running handlers, jobs
   * whose fail or rounds check is in flight, completions waiting for a transaction, and the
   * claim-ahead buffer. Completions in a transaction now are left out (committer.ts).
   */
  renewAll(): void {
    const h = this.host;
    const byMs = new Map<number, LeaseRef[]>();
    const add = (lease: LeaseRef, ms: number) => {
      const list = byMs.get(ms) ?? [];
      list.push({ jobId: lease.jobId, token: lease.token });
      byMs.set(ms, list);
    };
    for (const r of h.running.values()) if (r.holdsLease) add(r.lease, r.q.lease);
    for (const r of h.finishing) add(r.lease, r.q.lease);
    for (const p of h.committer().pending()) add(p.lease, h.queues.get(p.queue)!.lease);
    for (const l of h.buffer.leases()) add(l, h.queues.get(l.job.queue)!.lease);
    for (const [ms, leases] of byMs) {
      const asked = intervalNow(h.store.clock);
      h.track(
        h.store.renewMany(leases, ms).then(
          (lost) => {
            const gone = new Set(lost);
            h.buffer.renewed(new Set(leases.map((l) => l.jobId).filter((id) => !gone.has(id))), asked + ms);
            for (const id of lost) h.lost(id);
          },
          (err) => h.storeError(err, "renewing leases"),
        ),
      );
    }
  }
}
