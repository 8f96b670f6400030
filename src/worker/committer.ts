/**
 * Group commit of completions. Handlers that finish close together are committed in one
 * `completeMany` transaction: on the next turn of the event loop, or at once when
 * `maxBatch` have piled up. One transaction per batch instead of one per job is where a
 * worker's throughput comes from (PEERS.md: ~2.8k single vs ~150k batched claim/complete
 * per second on raw SQLite), at the cost of at most one event-loop turn of latency.
 * When the store has `completeAndClaim`, the worker's next claim rides in the same
 * transaction (one commit per cycle, not two).
 *
 * A store with `caps.commitLanes` above one (PostgreSQL) gets that many lanes: while one
 * transaction executes in the server, a second batch that has piled up (half a transaction's
 * worth) goes on a second lane, with its own claim. And the jobs a transaction claims wait
 * in the claim-ahead buffer until the lane's next transaction is sent, then run while it
 * executes. Without both, the worker and the server took turns, each idle while the other
 * worked.
 */
import type { CompleteOutcome, Store } from "../store/store.js";
import { isStoreWideError } from "../store/store-wide.js";
import type { Lease, LeaseRef, NextJob } from "../core/types.js";
import type { BorrowedClaim } from "./claim-loop.js";
import { isolateRefused } from "./isolate.js";

export interface PendingCompletion {
  lease: LeaseRef;
  queue: string;
  result: unknown;
  next?: NextJob[];
}

export interface CommitterOptions {
  /** Commit at once when this many are waiting and no transaction is running (default 100). */
  maxBatch?: number;
  /** Told the outcome of each completion once its transaction ran. */
  onOutcome: (item: PendingCompletion, outcome: CompleteOutcome) => void;
  /** Told when a whole batch could not be committed (it is retried). */
  onError: (err: unknown, items: number) => void;
  /**
   * Told when the store refused a batch for something it carries (not a store-wide error):
   * its items are then committed in parts to find the one refused (isolate.ts).
   */
  onSplit?: (err: unknown, items: number) => void;
  /** Told of a completion the store refused on its own; the rest of its batch committed. */
  onRefused: (item: PendingCompletion, err: unknown) => void;
  /** Runs just before each transaction (the crash test hook lives here). */
  beforeCommit?: () => void;
  /**
   * The claim to run in the same transaction, if any (used when the store has
   * `completeAndClaim`), of at most `max` jobs.
   */
  claim?: (max: number) => BorrowedClaim | null;
  /**
   * Runs `deliver` (which hands a claim's jobs over) so that the jobs wait in the
   * claim-ahead buffer instead of starting; `startHeld` starts them. Without these, claimed
   * jobs start as they are handed over.
   */
  holdStarts?: (deliver: () => void) => void;
  startHeld?: () => void;
  /** Runs after each lane ends (a claim deferred to it may be due now). */
  afterFlush?: () => void;
}

/**
 * After a failed `completeMany` (store busy or unreachable) the batch is retried after
 * 100 ms, doubling to 5 s (a batch refused for what it carries is split instead, see
 * isolate.ts): quick enough that a brief lock costs little, slow enough not to
 * hammer a store that is down. The leases stay renewed meanwhile (see `pending`).
 */
export const RETRY_BASE_MS = 100;
export const RETRY_MAX_MS = 5000;
/** Most completions in one transaction (500): keeps each transaction short for readers. */
const MAX_TRANSACTION = 500;

/** Buffers completions and commits them in batches; see the file comment. */
export class Committer {
  private buffer: PendingCompletion[] = [];
  /** Batches in a transaction now, one per lane. */
  private readonly inFlight = new Set<PendingCompletion[]>();
  /** Parts of a refused batch waiting their turn while its refused item is looked for. */
  private readonly isolating = new Set<PendingCompletion[]>();
  private scheduled = false;
  /** Lanes running: each commits batch after batch until nothing is left for it. */
  private lanes = 0;
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  private readonly maxBatch: number;
  private readonly maxLanes: number;

  constructor(
    private readonly store: Store,
    private readonly opts: CommitterOptions,
  ) {
    this.maxBatch = opts.maxBatch ?? 100;
    this.maxLanes = Math.max(1, store.caps.commitLanes ?? 1);
  }

  /**
   * Queues a completion: a running lane takes it with its next batch; with none running it
   * is committed on the next loop turn, or at once if `maxBatch` are waiting.
   */
  add(item: PendingCompletion): void {
    this.buffer.push(item);
    if (this.retryTimer) return;
    if (this.lanes > 0) {
      // Another transaction may go while one runs, once a batch worth it has piled up.
      if (this.lanes < this.maxLanes && this.buffer.length >= MAX_TRANSACTION / 2) void this.lane();
      return;
    }
    if (this.buffer.length >= this.maxBatch) {
      void this.lane();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        if (this.lanes === 0) void this.lane();
      });
    }
  }

  /**
   * Completions waiting for a transaction (their leases must still be renewed). Those in a
   * transaction now are not: on a store whose transactions interleave, renewing a lease
   * while its completion commits only races it, and the renewal then reports a completed
   * job as lost. A batch whose transaction fails comes back here and is renewed again.
   */
  *pending(): Iterable<PendingCompletion> {
    yield* this.buffer;
    for (const part of this.isolating) yield* part;
  }

  get size(): number {
    let n = this.buffer.length;
    for (const b of this.inFlight) n += b.length;
    for (const b of this.isolating) n += b.length;
    return n;
  }

  /** Commits everything waiting now, retrying on store errors; resolves when none is left. */
  async drain(): Promise<void> {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (this.lanes === 0 && this.buffer.length) void this.lane();
    if (this.size === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops retrying; whatever is still waiting is left to lease expiry. */
  abandon(): PendingCompletion[] {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const left = [...this.buffer];
    this.buffer = [];
    for (const w of this.idleWaiters.splice(0)) w();
    return left;
  }

  private async lane(): Promise<void> {
    this.lanes++;
    // Jobs the last transaction claimed, held until the next one is on its way (see below).
    let held = false;
    try {
      for (let round = 0; ; round++) {
        // Completions that arrived while the last transaction ran come from jobs it started,
        // still finishing in microtasks: one loop turn lets them join this batch. Not when
        // claimed jobs are held: the next transaction goes at once, and they run during it.
        if (round > 0 && !held && this.buffer.length < this.maxBatch) await new Promise((r) => setImmediate(r));
        if (this.retryTimer) break;
        const batch = this.buffer.splice(0, MAX_TRANSACTION);
        const claim = this.store.completeAndClaim && this.opts.claim ? this.opts.claim(MAX_TRANSACTION) : null;
        if (batch.length === 0 && !claim) break;
        this.inFlight.add(batch);
        this.opts.beforeCommit?.();
        let outcomes: CompleteOutcome[];
        const items = batch.map((p) => ({ lease: p.lease, result: p.result, next: p.next }));
        let leases: Lease[] = [];
        const commit = this.store.completeAndClaim
          ? this.store.completeAndClaim(items, claim?.req ?? null)
          : this.store.completeMany(items).then((o) => ({ outcomes: o, leases }));
        if (held) {
          // The transaction is written to the connection by now; the handlers of the jobs
          // the last one claimed run while it executes, and their completions make the
          // batch after it. The store and this process work at once instead of in turn.
          held = false;
          setImmediate(() => this.opts.startHeld?.());
        }
        try {
          ({ outcomes, leases } = await commit);
        } catch (failure) {
          claim?.failed(failure);
          this.inFlight.delete(batch);
          let err = failure;
          let left = batch;
          if (batch.length > 0 && !isStoreWideError(err)) {
            // Refused for what it carries: sent again it fails again. Find the item at fault.
            this.opts.onSplit?.(err, batch.length);
            const rest = await isolateRefused(this.store, batch, err, {
              onOutcome: this.opts.onOutcome,
              onRefused: this.opts.onRefused,
              waiting: this.isolating,
              inFlight: this.inFlight,
            });
            if (rest === null) {
              this.retryMs = 0;
              continue;
            }
            ({ left, err } = rest);
          }
          this.opts.onError(err, left.length);
          this.buffer.unshift(...left);
          if (!this.retryTimer) {
            this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs ? this.retryMs * 2 : RETRY_BASE_MS);
            this.retryTimer = setTimeout(() => {
              this.retryTimer = undefined;
              if (this.lanes === 0) void this.lane();
            }, this.retryMs);
          }
          return;
        }
        this.retryMs = 0;
        this.inFlight.delete(batch);
        for (let i = 0; i < batch.length; i++) this.opts.onOutcome(batch[i]!, outcomes[i]!);
        if (claim && leases.length > 0 && this.opts.holdStarts && this.maxLanes > 1) {
          this.opts.holdStarts(() => claim.done(leases));
          held = true;
        } else {
          claim?.done(leases);
        }
      }
    } finally {
      this.lanes--;
      if (held) this.opts.startHeld?.();
      if (this.size === 0) for (const w of this.idleWaiters.splice(0)) w();
      this.opts.afterFlush?.();
    }
  }
}
