/**
 * What every verb of the SQLite store runs on: the connection with its prepared
 * statements, and the transaction discipline. Every write is one IMMEDIATE transaction
 * (the write lock is taken up front, so a writer meets SQLITE_BUSY before it did anything,
 * never halfway); a transaction or read that meets the lock held by another process is run
 * again after an asynchronous sleep (busy.ts), so the event loop never waits on the lock
 * for more than `BUSY_TIMEOUT_MS`. Queues a write made available are announced after it
 * commits (wake.ts). The verbs themselves are in store.ts.
 */
import { realpathSync } from "node:fs";
import type Database from "better-sqlite3";
import { WallStepGuard, systemClock, type Clock } from "../../core/clock.js";
import { VigilError } from "../../core/errors.js";
import { DEFAULT_ATTEMPTS, DEFAULT_MAX_PAYLOAD, type StoreOptions } from "../store.js";
import { LOCK_WAIT_MS, whenUnlocked } from "./busy.js";
import { translateError } from "./errors.js";
import type * as w from "./job-writes.js";
import { prepareJobStatements, type JobStatements } from "./jobs-sql.js";
import { prepareFlowStatements, type FlowStatements } from "./flow.js";
import { statementCache, type Prepare } from "./rows.js";
import * as side from "./side-tables.js";
import { WakeBus } from "./wake.js";

/** `whenUnlocked` (busy.ts), with SQLite's errors translated for an operator. */
export function unlocked<T>(fn: () => T, waitMs: number, path: string): T | Promise<T> {
  let out: T | Promise<T>;
  try {
    out = whenUnlocked(fn, waitMs);
  } catch (err) {
    throw translateError(err, path);
  }
  if (out instanceof Promise) {
    return out.catch((err: unknown) => {
      throw translateError(err, path);
    });
  }
  return out;
}

/** The SQLite connection and its transactions; `SqliteStore` (store.ts) adds the verbs. */
export abstract class SqliteConnection {
  readonly clock: Clock;
  protected readonly ctx: w.JobContext;
  protected readonly sql: JobStatements | null;
  private readonly side: side.SideStatements | null;
  protected readonly wake: WakeBus;
  private closed = false;
  /** How long a transaction waits for another process's write lock (busy.ts). */
  protected readonly lockWaitMs: number;
  /**
   * Every process on the machine reads the same wall clock, so SQLite leases are set and
   * judged by it: a step forward would make every lease look expired at once; reapExpired
   * discounts it (see WallStepGuard).
   */
  protected readonly steps: WallStepGuard;
  /** Read statements, prepared on first use (list filters make a handful of shapes). */
  protected readonly prep: Prepare;
  /** One transaction wrapper, made once: better-sqlite3 builds a new one per `transaction()` call. */
  private readonly tx: Database.Transaction<(fn: (now: number) => unknown) => unknown>;
  /** How many migrations opening this store ran (0 when another process had run them). */
  migratedOnOpen = 0;
  protected readonly queueMaxStalls: Record<string, number> | undefined;

  constructor(
    protected readonly db: Database.Database,
    readonly location: string,
    opts: StoreOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.lockWaitMs = opts.lockWaitMs ?? LOCK_WAIT_MS;
    this.queueMaxStalls = opts.queueMaxStalls;
    this.steps = new WallStepGuard(this.clock);
    this.prep = statementCache(db);
    this.sql = opts.readOnly ? null : prepareJobStatements(db);
    this.side = opts.readOnly ? null : side.prepareSideStatements(db);
    this.ctx = {
      db,
      sql: this.sql as JobStatements,
      clock: this.clock,
      maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      defaultAttempts: opts.defaultAttempts ?? DEFAULT_ATTEMPTS,
      queueMaxStalls: opts.queueMaxStalls,
      queueOnDuplicate: opts.queueOnDuplicate,
      queueGroupBy: opts.queueGroupBy,
      woke: new Set(),
      flow: (opts.readOnly ? null : prepareFlowStatements(db)) as FlowStatements,
    };
    this.wake = WakeBus.acquire(realpathSync(location));
    // The clock is read inside the transaction, once its write lock is held: a write that
    // waited for the lock (in SQLite's busy handler, up to BUSY_TIMEOUT_MS, or between
    // tries) is not dated from before the wait. A claim's time is its jobs' start, by which
    // a worker judges a rate-limited job late (worker.ts).
    this.tx = db.transaction((fn: (now: number) => unknown) => fn(this.clock.now()));
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction, then announces queues it made available; `now`
   * is read once the write lock is held. When another process holds the write lock, the
   * whole transaction runs again later (with a fresh `now`), and the caller gets a promise;
   * otherwise it gets the value at once.
   */
  protected write<T>(fn: (now: number) => T): T | Promise<T> {
    if (!this.sql) throw new VigilError("BAD_INPUT", `store ${this.location} was opened read-only`);
    return this.unlocked(() => this.attempt(fn));
  }

  private attempt<T>(fn: (now: number) => T): T {
    // Checked on every try: the store may have been closed while a write waited.
    if (this.closed) throw new VigilError("STORE_UNREACHABLE", `store ${this.location} is closed`);
    this.ctx.woke.clear();
    let out: T;
    try {
      out = this.tx.immediate(fn) as T;
    } catch (err) {
      this.ctx.woke.clear();
      throw err;
    }
    if (this.ctx.woke.size > 0) {
      this.wake.notify(this.ctx.woke);
      this.ctx.woke.clear();
    }
    return out;
  }

  /** Reads need no write lock (WAL), but may meet a busy file during recovery: same retry. */
  protected read<T>(fn: () => T): T | Promise<T> {
    return this.unlocked(() => {
      if (this.closed) throw new VigilError("STORE_UNREACHABLE", `store ${this.location} is closed`);
      return fn();
    });
  }

  protected unlocked<T>(fn: () => T): T | Promise<T> {
    return unlocked(fn, this.lockWaitMs, this.location);
  }

  protected get s(): side.SideStatements {
    return this.side as side.SideStatements;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
    await this.wake.release();
  }
}
