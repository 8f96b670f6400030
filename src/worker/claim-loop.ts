/**
 * When a worker claims, and how much. It claims for every queue that has room (free slots
 * plus its claim-ahead buffer, see lease-buffer.ts) and may have work ("hungry"), in one
 * `store.claim` per lease length, or inside the committer's next transaction when the
 * store can do both at once (`borrow`). A queue stops being hungry when a claim returns
 * fewer jobs than asked; a notification from the store, a poll tick or a job coming due
 * makes it hungry again. A claim of its own runs only while no other is in flight; the
 * committer's transactions may carry one each (see committer.ts, lanes), and the jobs they
 * asked for count as taken until they return. Wake-ups during a claim trigger one more.
 * Expired leases are reaped elsewhere (reaper.ts).
 */
import { monotonicNow } from "../core/clock.js";
import type { Lease } from "../core/types.js";
import { LIMIT_RECHECK_MS } from "../store/flow.js";
import type { ClaimRequest, QueueFlow, Store } from "../store/store.js";
import { EarliestTimer } from "./earliest-timer.js";
import type { QueueSettings } from "./options.js";

/**
 * Idle poll interval when the store pushes wake-ups but does not announce scheduled jobs
 * or cannot say when they come due (1 s): polling is what finds delayed jobs and retries
 * that became due.
 */
export const POLL_NOTIFY_MS = 1000;
/**
 * Idle poll interval when the store announces every enqueue, scheduled ones included
 * (`caps.notifyScheduled`), AND answers `nextDueAt` (30 s). Arrivals
 * (scheduled ones included) wake the worker, which then sets one timer for the next due
 * job, so the poll only bounds how late a lost wake-up is noticed (a notifier's socket
 * broke, a notification was dropped for a swamped listener): at most 30 s, for 1/30 of a
 * store read per second while idle.
 */
export const POLL_NOTIFY_RARE_MS = 30_000;
/**
 * Right after start, poll every second for this long (3 s) whatever the interval: other
 * processes learn of a new listener within a second (wake.ts RELIST_MS), so a job enqueued
 * just then may not be announced to it.
 */
const STARTUP_POLL_MS = 3000;
/** Poll interval when the store cannot push wake-ups (500 ms): pick-up latency vs load. */
export const POLL_NO_NOTIFY_MS = 500;

/** The idle poll interval for `store`, unless the worker was given one (see the constants above). */
export function pollIntervalFor(store: Store, given: number | undefined): number {
  const { caps } = store;
  return given ?? (!caps.notify ? POLL_NO_NOTIFY_MS : caps.notifyScheduled && store.nextDueAt ? POLL_NOTIFY_RARE_MS : POLL_NOTIFY_MS);
}

export interface ClaimLoopHooks {
  /** How many jobs of a queue to claim now: free slots plus claim-ahead room. */
  free(queue: QueueSettings): number;
  /** Whether claiming is allowed (false once a stop began). */
  open(): boolean;
  /**
   * Whether a commit that will carry the claim (`borrow`) is coming: the claim then waits
   * for it instead of paying a transaction of its own. The committer calls `request` after
   * each flush, so a claim deferred this way is never lost.
   */
  deferToCommit?(): boolean;
  /** Runs a claimed job. */
  start(lease: Lease): void;
  onError(err: unknown, doing: string): void;
  /** Keeps the claim's promise, so a stop can wait for it. */
  track(p: Promise<unknown>): void;
}

/** A claim handed to another transaction (see `ClaimLoop.borrow`); settle it exactly once. */
export interface BorrowedClaim {
  req: ClaimRequest;
  done(leases: Lease[]): void;
  failed(err: unknown): void;
}

/** Decides when to claim and how many, per queue; see the file comment. */
export class ClaimLoop {
  private readonly hungry = new Map<string, boolean>();
  private readonly wakeSeq = new Map<string, number>();
  private scheduled = false;
  /** Claims in flight: one of its own (`claimOnce`), or any number borrowed by transactions. */
  private claiming = 0;
  /** Jobs asked for by the claims in flight, per queue (counted as taken until they return). */
  private readonly asked = new Map<string, number>();
  private again = false;
  /** `claimOnce` is in flight (no claim is borrowed meanwhile). */
  private ownClaim = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private asking = false;
  /** Retry due times, in 10 ms buckets (a burst of failures costs one entry per bucket). */
  private readonly wakeTimes = new Set<number>();
  /** Queues whose last claim their `limit` held back (see `freed`). */
  private readonly limitHeld = new Set<string>();
  /** When each queue held by its `limit` is next rechecked (monotonic ms; see `held`). */
  private readonly limitRecheck = new Map<string, number>();
  /** Queues this worker claims nothing of until then (monotonic ms; see `holdLocally`). */
  private readonly localHolds = new Map<string, number>();
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
   * Polls every `pollMs` (waking every queue; every second for the first STARTUP_POLL_MS),
   * starting now. The poll timer is what keeps a worker process alive between jobs.
   */
  startPolling(pollMs: number): void {
    const startedAt = Date.now();
    const poll = () => {
      if (!this.hooks.open()) return;
      this.wakeAll();
      const early = Date.now() - startedAt < STARTUP_POLL_MS;
      this.pollTimer = setTimeout(poll, early ? Math.min(pollMs, 1000) : pollMs);
    };
    poll();
  }

  /** No more polls or retry wake-ups (a claim in flight finishes). */
  stop(): void {
    clearTimeout(this.pollTimer);
    this.retryWake.cancel();
    this.wakeTimes.clear();
  }

  /** Claims again at `at` (monotonic ms), when a retry comes due, not at the next poll. */
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

  /** A claim's request: with the flow control of the queues asked for, and the hold callback. */
  private claimRequest(queues: Record<string, number>, leaseMs: number): ClaimRequest {
    const req: ClaimRequest = { workerId: this.workerId, queues, leaseMs };
    let flow: Record<string, QueueFlow> | undefined;
    for (const name in queues) {
      const f = this.queues.get(name)?.flow;
      if (f) (flow ??= {})[name] = f;
    }
    if (flow) req.flow = flow;
    // Also for queues without flow control: a pause or a handler's ctx.rateLimited holds them.
    req.onHold = (queue, until) => this.held(queue, until);
    return req;
  }

  /**
   * A queue's flow control held a claim back: claim it again when its budget frees (a rate
   * window's next room), or, held by `limit`, when one of this worker's own jobs of it ends
   * (`freed`), when another process's job of it ends (its wake-up), or at the latest after
   * LIMIT_RECHECK_MS.
   */
  private held(queue: string, until: number | null): void {
    if (until === null) {
      this.limitHeld.add(queue);
      // One recheck pending per queue: claims held again meanwhile (polls, wake-ups) must
      // not each start a chain of rechecks of their own.
      const now = monotonicNow();
      if ((this.limitRecheck.get(queue) ?? 0) > now) return;
      this.limitRecheck.set(queue, now + LIMIT_RECHECK_MS);
      this.wakeAt(now + LIMIT_RECHECK_MS);
    } else {
      // `until` is by this process's wall clock; the timer runs on the monotonic one.
      this.wakeAt(until - Date.now() + monotonicNow());
    }
  }

  /** Claims nothing of `queue` until `at` (monotonic ms), then claims it again. */
  holdLocally(queue: string, at: number): void {
    this.localHolds.set(queue, at);
    this.wakeAt(at);
  }

  /** Whether a local hold (`holdLocally`) still keeps `queue` from being claimed. */
  private locallyHeld(queue: string): boolean {
    const at = this.localHolds.get(queue);
    if (at === undefined) return false;
    if (at > monotonicNow()) return true;
    this.localHolds.delete(queue);
    return false;
  }

  /** One of this worker's jobs of `queue` ended: a claim held back by its `limit` may go now. */
  freed(queue: string): void {
    if (this.limitHeld.delete(queue)) this.wake(queue);
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
    if (this.claiming > 0) {
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

  /** Per lease length, how many to claim of each hungry queue with room; and the wake counts seen. */
  private plan(): { groups: Map<number, Record<string, number>>; seq: Map<string, number> } {
    const groups = new Map<number, Record<string, number>>();
    const seq = new Map<string, number>();
    for (const q of this.queues.values()) {
      const free = this.hooks.free(q) - (this.asked.get(q.name) ?? 0);
      if (free <= 0 || !this.hungry.get(q.name) || this.locallyHeld(q.name)) continue;
      // A queue under flow control is claimed by one claim at a time: the store lets its
      // claimers through its row one after another, each holding it to its commit, so a
      // second claim of the same worker in flight (a second commit lane's) would only wait
      // there, and hold that lane's completions with it.
      if (q.flow && (this.asked.get(q.name) ?? 0) > 0) continue;
      const g = groups.get(q.lease) ?? {};
      g[q.name] = free;
      groups.set(q.lease, g);
      seq.set(q.name, this.wakeSeq.get(q.name)!);
    }
    return { groups, seq };
  }

  /** Starts what a claim returned; marks queues that gave fewer than asked as empty. */
  private apply(wants: Record<string, number>, leases: Lease[], seq: Map<string, number>, emptied: string[]): void {
    const got = new Map<string, number>();
    for (const lease of leases) {
      got.set(lease.job.queue, (got.get(lease.job.queue) ?? 0) + 1);
      this.hooks.start(lease);
    }
    for (const [name, asked] of Object.entries(wants)) {
      // Fewer than asked: the queue is empty for now, unless a wake-up came meanwhile.
      if ((got.get(name) ?? 0) < asked && this.wakeSeq.get(name) === seq.get(name)) {
        this.hungry.set(name, false);
        emptied.push(name);
      }
    }
  }

  /** Counts the jobs of a borrowed claim as taken (+1) or no longer pending (-1). */
  private ask(wants: Record<string, number>, sign: 1 | -1): void {
    for (const [name, n] of Object.entries(wants)) this.asked.set(name, (this.asked.get(name) ?? 0) + sign * n);
  }

  /** After a claim: ask when the emptied queues' next jobs come due, and claim again if needed. */
  private after(emptied: string[]): void {
    if (emptied.length > 0) this.askNextDue(emptied);
    if (this.again || [...this.queues.values()].some((q) => this.hungry.get(q.name) && this.hooks.free(q) > 0)) {
      this.request();
    }
  }

  /**
   * Hands the next claim to a transaction the caller is about to run (the committer's
   * `completeAndClaim`), of at most `max` jobs; null when there is nothing to claim or a
   * claim of its own is in flight. Only one lease length goes along; any other is claimed
   * afterwards.
   */
  borrow(max = Infinity): BorrowedClaim | null {
    if (!this.hooks.open() || this.ownClaim) return null;
    const { groups, seq } = this.plan();
    const first = groups.entries().next();
    if (first.done) return null;
    const [leaseMs, all] = first.value;
    // At most `max` jobs in all, shared out in queue order.
    const wants: Record<string, number> = {};
    let left = max;
    for (const [name, n] of Object.entries(all)) {
      if (left <= 0) break;
      wants[name] = Math.min(n, left);
      left -= wants[name];
    }
    this.claiming++;
    this.ask(wants, 1);
    this.again ||= groups.size > 1;
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.claiming--;
      this.ask(wants, -1);
      return true;
    };
    return {
      req: this.claimRequest(wants, leaseMs),
      done: (leases) => {
        if (!settle()) return;
        const emptied: string[] = [];
        this.apply(wants, leases, seq, emptied);
        this.after(emptied);
      },
      failed: (err) => {
        if (!settle()) return;
        this.hooks.onError(err, "claiming jobs (retrying at the next poll)");
      },
    };
  }

  private async claimOnce(): Promise<void> {
    if (!this.hooks.open() || this.claiming > 0 || this.hooks.deferToCommit?.()) return;
    const { groups, seq } = this.plan();
    if (groups.size === 0) return;
    this.claiming++;
    this.ownClaim = true;
    this.again = false;
    const emptied: string[] = [];
    try {
      for (const [leaseMs, wants] of groups) {
        const leases = await this.store.claim(this.claimRequest(wants, leaseMs));
        this.apply(wants, leases, seq, emptied);
      }
    } catch (err) {
      // The store is down or busy: the next poll tries again, not a hot loop here.
      this.hooks.onError(err, "claiming jobs (retrying at the next poll)");
      return;
    } finally {
      this.claiming--;
      this.ownClaim = false;
    }
    this.after(emptied);
  }

  /**
   * Sets one timer for when the next scheduled or failed job of these queues comes due
   * (stores with `nextDueAt`; others are covered by the 1 s poll). One question at a time:
   * a queue emptied meanwhile is asked about at its next emptying or poll.
   */
  private askNextDue(queues: string[]): void {
    const store = this.store;
    if (!store.nextDueAt || this.asking || !this.hooks.open()) return;
    this.asking = true;
    const asked = store.clock.now();
    this.hooks.track(
      store
        .nextDueAt(queues)
        .then(
          (at) => {
            if (at !== null) this.wakeAt(at - asked + monotonicNow());
          },
          (err) => this.hooks.onError(err, "asking when the next job is due"),
        )
        .finally(() => {
          this.asking = false;
        }),
    );
  }
}
