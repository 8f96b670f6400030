/** What the store contract's parts share: the store under test, its clock, and helpers. */
import { ManualClock } from "../../src/core/clock.js";
import type { VigilError } from "../../src/core/errors.js";
import type { Job, Lease } from "../../src/core/types.js";
import type { Store, StoreOptions } from "../../src/store/store.js";

/**
 * A fresh store, and `serverNow` when the store sets and judges lease and lock deadlines
 * by its database server's clock rather than by `opts.clock` (PostgreSQL): the server's
 * time in ms since the epoch, as the store reads it.
 */
export type OpenStore = (opts?: StoreOptions) => Promise<{ store: Store; cleanup: () => Promise<void>; serverNow?: () => Promise<number> }>;

/** The lease length claims use unless a test says otherwise (ms). */
export const LEASE = 10_000;

/** Resolves once `cond` holds; fails with `what` after `ms` (generous: shared 2-core machine). */
export async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The error `fn` rejects with (fails the test if it resolves). */
export async function errorOf(fn: () => Promise<unknown>): Promise<VigilError> {
  try {
    await fn();
  } catch (err) {
    return err as VigilError;
  }
  throw new Error("expected a rejection");
}

/** One per suite; `reset` before each test gives it a fresh store and clock. */
export class ContractContext {
  clock = new ManualClock();
  store!: Store;
  private serverNow: (() => Promise<number>) | undefined;
  private readonly opened: { store: Store; cleanup: () => Promise<void> }[] = [];

  constructor(private readonly open: OpenStore) {}

  async reset(): Promise<void> {
    this.clock = new ManualClock();
    this.store = await this.fresh();
  }

  /** Closes every store the test opened, then lets the adapter clean up after it. */
  async closeAll(): Promise<void> {
    for (const r of this.opened.splice(0)) {
      await r.store.close();
      await r.cleanup();
    }
  }

  /** Another fresh store (own file or schema) on the same clock unless `opts` says otherwise. */
  async fresh(opts: StoreOptions = {}): Promise<Store> {
    const r = await this.open({ clock: this.clock, ...opts });
    this.opened.push(r);
    this.serverNow = r.serverNow;
    return r.store;
  }

  /** The time lease and lock deadlines are judged by: the ManualClock, or the server's. */
  leaseNow(): Promise<number> {
    return this.serverNow ? this.serverNow() : Promise.resolve(this.clock.now());
  }

  /**
   * Lets that time pass `deadline`: the ManualClock is moved just past it (exactly, so
   * boundaries are tested); a server's clock is waited for, really.
   */
  async waitPast(deadline: number): Promise<void> {
    if (!this.serverNow) {
      if (this.clock.now() <= deadline) this.clock.advance(deadline + 1 - this.clock.now());
      return;
    }
    for (let now = await this.serverNow(); now <= deadline; now = await this.serverNow()) {
      await new Promise((r) => setTimeout(r, deadline - now + 5));
    }
  }

  /** When the lease of job `id` runs out, by the time `leaseNow` reads. */
  async deadlineOf(id: number): Promise<number> {
    const until = (await this.must(id)).leaseUntil;
    if (until === null) throw new Error(`job ${id} holds no lease`);
    return until;
  }

  claim(queues: Record<string, number>, workerId = "w1", leaseMs = LEASE, s = this.store): Promise<Lease[]> {
    return s.claim({ workerId, queues, leaseMs });
  }

  async claimOne(queue = "q", workerId = "w1"): Promise<Lease> {
    const [lease] = await this.claim({ [queue]: 1 }, workerId);
    if (!lease) throw new Error(`nothing to claim on ${queue}`);
    return lease;
  }

  async must(id: number, s = this.store): Promise<Job> {
    const job = await s.get(id);
    if (!job) throw new Error(`job ${id} is missing`);
    return job;
  }
}
