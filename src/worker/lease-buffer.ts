/**
 * Claim-ahead: jobs a worker leased beyond its free slots, waiting here for a slot. With
 * them a slot that frees starts its next job at once, and one claim (in the same
 * transaction as the completions, see committer.ts) serves several jobs, so a worker at
 * concurrency 1 no longer pays two transactions per job.
 *
 * Buffered jobs hold leases: they are renewed with the running ones, a job whose lease ran
 * low (renewals failing) is given back instead of started, and a stop gives them all back
 * without counting an attempt. While a job waits here no other worker can run it, so the
 * buffer is kept only for queues whose handlers are quick (see `PREFETCH_MAX_RUN_MS`).
 */
import type { Lease } from "../core/types.js";

/**
 * Default jobs leased ahead per queue: 10. Measured on a 2-core machine (20k no-op jobs,
 * one in-process worker on SQLite, one run each): at concurrency 1, prefetch 0 drained
 * 7.9k jobs/s, 1 12.9k, 10 27k, 50 40.6k; at concurrency 50 prefetch hardly matters
 * (0: 41–42k, 10: 38–43k, 50: 47k) because a batch of completions already frees many slots.
 * Ten gets most of the gain at low concurrency while another worker waits behind this one
 * for at most ten quick jobs (`PREFETCH_MAX_RUN_MS` each), and the leases it holds idle
 * stay few.
 */
export const DEFAULT_PREFETCH = 10;

/**
 * Jobs are leased ahead only while the queue's recent handler run time (a moving average)
 * is at most this (20 ms). For slower handlers a transaction per job is a small share of
 * the work, and a job held here would wait a whole run time while other workers idle.
 */
export const PREFETCH_MAX_RUN_MS = 20;

/**
 * At most this much handler time (1 s, by the moving average) waits in one queue's buffer.
 * A large prefetch (a store's `claimBatchHint`: 1000 on PostgreSQL, where a round trip is
 * the cost) is taken in full only for near-instant handlers; a 20 ms handler buffers 50.
 * That bounds how long a leased job can sit here while another worker is idle.
 */
export const PREFETCH_MAX_WAIT_MS = 1000;

/**
 * For a rate-limited queue, the last job in the buffer waits at most this long (20 ms) for
 * a slot: a job's start is counted at its claim and must happen within the start slack
 * (100 ms, src/store/flow.ts), or the job is given back. A fifth of it leaves room for the
 * commit and a busy loop. Jobs leave the buffer through all the queue's slots at once, so
 * at concurrency C it holds C times this much handler time. (Counted for one slot, a
 * queue of no-op jobs at concurrency 50 leased ahead a fiftieth of what its slots start in
 * time: a PostgreSQL drain of 10,000 such jobs with `rate` far above the drain rate took
 * 56-66 statements, in claims of 4 to 500 jobs, against 34-35 without the rate.)
 */
export const FLOW_PREFETCH_WAIT_MS = 20;

/** Weight of the newest run in the moving average of handler run times. */
const RUN_EWMA_WEIGHT = 0.2;

interface Held {
  lease: Lease;
  /**
   * When the lease runs out as far as this worker knows, by `intervalNow(store.clock)`
   * (monotonic for the system clock): a step of the wall clock must not make held leases
   * look spent, or healthy ones whose renewals fail look fresh.
   */
  until: number;
}

/** One queue's buffered leases and handler pace. */
class QueueBuffer {
  readonly held: Held[] = [];
  /**
   * Moving average of handler run time, ms; unknown until a handler of the queue has run,
   * and nothing is leased ahead until then (a queue of hour-long jobs must not start by
   * holding ten of them).
   */
  avgRunMs: number | undefined;
}

/** The buffered leases of every queue of a worker; see the file comment. */
export class LeaseBuffer {
  private readonly queues = new Map<string, QueueBuffer>();

  constructor(queueNames: Iterable<string>) {
    for (const name of queueNames) this.queues.set(name, new QueueBuffer());
  }

  private at(queue: string): QueueBuffer {
    let b = this.queues.get(queue);
    if (!b) this.queues.set(queue, (b = new QueueBuffer()));
    return b;
  }

  /**
   * How many more jobs of `queue` to lease ahead now, given its `prefetch` setting; at most
   * `maxWaitMs` of handler time (default PREFETCH_MAX_WAIT_MS) waits here for each of
   * `slots` handler slots (1: the time for one slot to run them all).
   */
  room(queue: string, prefetch: number, maxWaitMs = PREFETCH_MAX_WAIT_MS, slots = 1): number {
    const b = this.at(queue);
    if (prefetch <= 0 || !this.quick(queue)) return 0;
    const byTime = Math.floor((maxWaitMs * slots) / Math.max(b.avgRunMs!, 0.01));
    return Math.max(0, Math.min(prefetch, byTime) - b.held.length);
  }

  /** Whether the queue's handlers are known to be quick enough to lease ahead for. */
  quick(queue: string): boolean {
    const avg = this.at(queue).avgRunMs;
    return avg !== undefined && avg <= PREFETCH_MAX_RUN_MS;
  }

  size(queue?: string): number {
    if (queue !== undefined) return this.at(queue).held.length;
    let n = 0;
    for (const b of this.queues.values()) n += b.held.length;
    return n;
  }

  /** Holds `lease`, which runs out at `until` (see `Held`). */
  add(lease: Lease, until: number): void {
    this.at(lease.job.queue).held.push({ lease, until });
  }

  /**
   * The next job of `queue` whose lease has at least `minLeftMs` left at `now`; jobs with
   * less are handed to `giveBack` (their renewals failed, they must not start).
   */
  take(queue: string, now: number, minLeftMs: number, giveBack: (lease: Lease) => void): Lease | undefined {
    const held = this.at(queue).held;
    for (let h = held.shift(); h; h = held.shift()) {
      if (h.until - now >= minLeftMs) return h.lease;
      giveBack(h.lease);
    }
    return undefined;
  }

  /** Every buffered lease (for renewals). */
  *leases(): Iterable<Lease> {
    for (const b of this.queues.values()) for (const h of b.held) yield h.lease;
  }

  /** A renewal of these jobs succeeded: their leases last until at least `until`. */
  renewed(ids: ReadonlySet<number>, until: number): void {
    for (const b of this.queues.values()) for (const h of b.held) if (ids.has(h.lease.jobId)) h.until = until;
  }

  /** Drops a job whose lease was lost (it never ran); true if it was here. */
  drop(jobId: number): boolean {
    for (const b of this.queues.values()) {
      const i = b.held.findIndex((h) => h.lease.jobId === jobId);
      if (i >= 0) {
        b.held.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  /** Empties the buffer, or one queue's part of it (to be given back). */
  takeAll(queue?: string): Lease[] {
    const out: Lease[] = [];
    for (const [name, b] of this.queues) {
      if (queue === undefined || name === queue) out.push(...b.held.splice(0).map((h) => h.lease));
    }
    return out;
  }

  /** A handler of `queue` ran for `ms`. */
  ran(queue: string, ms: number): void {
    const b = this.at(queue);
    b.avgRunMs = b.avgRunMs === undefined ? ms : b.avgRunMs + (ms - b.avgRunMs) * RUN_EWMA_WEIGHT;
  }
}
