/**
 * When a worker claims, and how much. It claims for every queue that has free slots and
 * may have work ("hungry"), as many as the free slots, in one `store.claim` per lease
 * length. A queue stops being hungry when a claim returns fewer jobs than asked; a
 * notification from the store, a poll tick or a retry coming due makes it hungry again.
 * Only one claim is in flight at a time; wake-ups during it trigger one more. The poll
 * tick also reaps expired leases now and then.
 */
import type { Lease } from "../core/types.js";
import type { Store } from "../store/store.js";
import { EarliestTimer } from "./earliest-timer.js";
import type { QueueSettings } from "./options.js";

/**
 * Idle poll interval when the store pushes wake-ups (1 s). Arrivals wake the worker at
 * once; polling only catches what no one announces (delayed jobs becoming due, a missed
 * notification). One claim a second keeps an idle worker near 0 % CPU and at about one
 * store operation a second.
 */
export const POLL_NOTIFY_MS = 1000;
/** Poll interval when the store cannot push wake-ups (500 ms): pick-up latency vs load. */
export const POLL_NO_NOTIFY_MS = 500;
/**
 * How often a worker reaps expired leases (5 s, or half the shortest lease). Any worker
 * does it as it polls, so no single process is needed; a frozen worker's job is back within
 * lease + this. More often costs a store write per tick for nothing most of the time.
 */
export const REAP_EVERY_MS = 5000;

export interface ClaimLoopHooks {
  /** Free slots of a queue now. */
  free(queue: QueueSettings): number;
  /** Whether claiming is allowed (false once a stop began). */
  open(): boolean;
  /** Runs a claimed job. */
  start(lease: Lease): void;
  onError(err: unknown, doing: string): void;
  /** Expired leases were returned to their queues. */
  onReaped(count: number): void;
  /** Keeps the claim's promise, so a stop can wait for it. */
  track(p: Promise<unknown>): void;
}

/** Decides when to claim and how many, per queue; see the file comment. */
export class ClaimLoop {
  private readonly hungry = new Map<string, boolean>();
  private readonly wakeSeq = new Map<string, number>();
  private scheduled = false;
  private claiming = false;
  private again = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private lastReapAt = 0;
  /** Retry due times, in 10 ms buckets (a burst of failures costs one entry per bucket). */
  private readonly wakeTimes = new Set<number>();
  // 5 ms late on purpose: the retried job must be due when the claim runs.
  private readonly retryWake = new EarliestTimer((now) => this.retriesDue(now), 5);

  constructor(
    private readonly store: Store,
    private readonly workerId: string,
    private readonly queues: ReadonlyMap<string, QueueSettings>,
    private readonly hooks: ClaimLoopHooks,
  ) {
    for (const name of queues.keys()) {
      this.hungry.set(name, true);
      this.wakeSeq.set(name, 0);
    }
  }

  /**
   * Polls every `pollMs` (waking every queue) and reaps expired leases every `reapMs`,
   * starting now. The poll timer is what keeps a worker process alive between jobs.
   */
  startPolling(pollMs: number, reapMs: number, maxStalls: number): void {
    const tick = () => {
      if (!this.hooks.open()) return;
      this.wakeAll();
      const now = Date.now();
      if (now - this.lastReapAt < reapMs) return;
      this.lastReapAt = now;
      this.hooks.track(
        this.store.reapExpired({ maxStalls }).then(
          (n) => n > 0 && this.hooks.onReaped(n),
          (err) => this.hooks.onError(err, "reaping expired leases"),
        ),
      );
    };
    this.pollTimer = setInterval(tick, pollMs);
    tick();
  }

  /** No more polls or retry wake-ups (a claim in flight finishes). */
  stop(): void {
    clearInterval(this.pollTimer);
    this.retryWake.cancel();
    this.wakeTimes.clear();
  }

  /** Claims again at `at` (ms since the epoch), when a retry comes due, not at the next poll. */
  wakeAt(at: number): void {
    if (!this.hooks.open()) return;
    const bucket = Math.ceil(at / 10) * 10;
    this.wakeTimes.add(bucket);
    this.retryWake.arm(bucket);
  }

  private retriesDue(now: number): number {
    let next = Infinity;
    for (const t of this.wakeTimes) {
      if (t <= now) this.wakeTimes.delete(t);
      else if (t < next) next = t;
    }
    this.wakeAll();
    return next;
  }

  /** Jobs may have become available on `queue`. */
  wake(queue: string): void {
    if (!this.queues.has(queue)) return;
    this.hungry.set(queue, true);
    this.wakeSeq.set(queue, this.wakeSeq.get(queue)! + 1);
    this.request();
  }

  wakeAll(): void {
    for (const q of this.queues.keys()) this.wake(q);
  }

  /** Claims soon if any hungry queue has a free slot (called when a slot frees). */
  request(): void {
    if (!this.hooks.open()) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    // Coalesces the wake-ups of one loop turn (many completions, many notifications)
    // into one claim.
    setImmediate(() => {
      this.scheduled = false;
      this.hooks.track(this.claimOnce());
    });
  }

  private async claimOnce(): Promise<void> {
    if (!this.hooks.open() || this.claiming) return;
    const groups = new Map<number, Record<string, number>>();
    const seq = new Map<string, number>();
    for (const q of this.queues.values()) {
      const free = this.hooks.free(q);
      if (free <= 0 || !this.hungry.get(q.name)) continue;
      const g = groups.get(q.lease) ?? {};
      g[q.name] = free;
      groups.set(q.lease, g);
      seq.set(q.name, this.wakeSeq.get(q.name)!);
    }
    if (groups.size === 0) return;
    this.claiming = true;
    this.again = false;
    try {
      for (const [leaseMs, wants] of groups) {
        const leases = await this.store.claim({ workerId: this.workerId, queues: wants, leaseMs });
        const got = new Map<string, number>();
        for (const lease of leases) {
          got.set(lease.job.queue, (got.get(lease.job.queue) ?? 0) + 1);
          this.hooks.start(lease);
        }
        for (const [name, asked] of Object.entries(wants)) {
          // Fewer than asked: the queue is empty for now, unless a wake-up came meanwhile.
          if ((got.get(name) ?? 0) < asked && this.wakeSeq.get(name) === seq.get(name)) this.hungry.set(name, false);
        }
      }
    } catch (err) {
      // The store is down or busy: the next poll tries again, not a hot loop here.
      this.hooks.onError(err, "claiming jobs (retrying at the next poll)");
      return;
    } finally {
      this.claiming = false;
    }
    if (this.again || [...this.queues.values()].some((q) => this.hungry.get(q.name) && this.hooks.free(q) > 0)) {
      this.request();
    }
  }
}
