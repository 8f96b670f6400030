/**
 * Group commit of completions. Handlers that finish close together are committed in one
 * `completeMany` transaction: on the next turn of the event loop, or at once when
 * `maxBatch` have piled up. One transaction per batch instead of one per job is where a
 * worker's throughput comes from (PEERS.md: ~2.8k single vs ~150k batched claim/complete
 * per second on raw SQLite), at the cost of at most one event-loop turn of latency.
 * When the store has `completeAndClaim`, the worker's next claim rides in the same
 * transaction (one commit per cycle, not two).
 */
import type { CompleteOutcome, Store } from "../store/store.js";
import type { Lease, LeaseRef, NextJob } from "../core/types.js";
import type { BorrowedClaim } from "./claim-loop.js";

export interface PendingCompletion {
  lease: LeaseRef;
  queue: string;
  result: unknown;
  next?: NextJob[];
}

export interface CommitterOptions {
  /** Commit at once when this many are waiting (default 100). */
  maxBatch?: number;
  /** Told the outcome of each completion once its transaction ran. */
  onOutcome: (item: PendingCompletion, outcome: CompleteOutcome) => void;
  /** Told when a whole batch could not be committed (it is retried). */
  onError: (err: unknown, items: number) => void;
  /** Runs just before each transaction (the crash test hook lives here). */
  beforeCommit?: () => void;
  /** The claim to run in the same transaction, if any (used when the store has `completeAndClaim`). */
  claim?: () => BorrowedClaim | null;
  /** Runs after each flush ends (a claim deferred to it may be due now). */
  afterFlush?: () => void;
}

/**
 * After a failed `completeMany` (store busy or unreachable) the batch is retried after
 * 100 ms, doubling to 5 s: quick enough that a brief lock costs little, slow enough not to
 * hammer a store that is down. The leases stay renewed meanwhile (see `pending`).
 */
const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 5000;
/** Most completions in one transaction (500): keeps each transaction short for readers. */
const MAX_TRANSACTION = 500;

/** Buffers completions and commits them in batches; see the file comment. */
export class Committer {
  private buffer: PendingCompletion[] = [];
  private inFlight: PendingCompletion[] = [];
  private scheduled = false;
  private flushing = false;
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  private readonly maxBatch: number;

  constructor(
    private readonly store: Store,
    private readonly opts: CommitterOptions,
  ) {
    this.maxBatch = opts.maxBatch ?? 100;
  }

  /** Queues a completion; it is committed on the next loop turn, or now if the batch is full. */
  add(item: PendingCompletion): void {
    this.buffer.push(item);
    if (this.flushing || this.retryTimer) return;
    if (this.buffer.length >= this.maxBatch) {
      void this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
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
  }

  get size(): number {
    return this.buffer.length + this.inFlight.length;
  }

  /** Commits everything waiting now, retrying on store errors; resolves when none is left. */
  async drain(): Promise<void> {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (!this.flushing && this.buffer.length) void this.flush();
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

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let round = 0; this.buffer.length > 0; round++) {
        // Completions that arrived while the last transaction ran come from jobs it started,
        // still finishing in microtasks: one loop turn lets them join this batch.
        if (round > 0 && this.buffer.length < this.maxBatch) await new Promise((r) => setImmediate(r));
        this.inFlight = this.buffer.splice(0, MAX_TRANSACTION);
        this.opts.beforeCommit?.();
        let outcomes: CompleteOutcome[];
        const items = this.inFlight.map((p) => ({ lease: p.lease, result: p.result, next: p.next }));
        const claim = this.store.completeAndClaim && this.opts.claim ? this.opts.claim() : null;
        let leases: Lease[] = [];
        try {
          if (this.store.completeAndClaim) {
            ({ outcomes, leases } = await this.store.completeAndClaim(items, claim?.req ?? null));
          } else {
            outcomes = await this.store.completeMany(items);
          }
        } catch (err) {
          claim?.failed(err);
          this.opts.onError(err, this.inFlight.length);
          this.buffer.unshift(...this.inFlight);
          this.inFlight = [];
          this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs ? this.retryMs * 2 : RETRY_BASE_MS);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            void this.flush();
          }, this.retryMs);
          return;
        }
        this.retryMs = 0;
        const done = this.inFlight;
        this.inFlight = [];
        for (let i = 0; i < done.length; i++) this.opts.onOutcome(done[i]!, outcomes[i]!);
        claim?.done(leases);
      }
    } finally {
      this.flushing = false;
      if (this.size === 0) for (const w of this.idleWaiters.splice(0)) w();
      this.opts.afterFlush?.();
    }
  }
}
