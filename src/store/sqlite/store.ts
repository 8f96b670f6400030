/**
 * The SQLite store: one file, WAL, one connection per process. better-sqlite3 is
 * synchronous; every verb runs as one IMMEDIATE transaction (the write lock is taken up
 * front, so concurrent writers wait on `busy_timeout` instead of failing on an upgrade)
 * and is wrapped in an async method to fit the `Store` interface.
 */
import { mkdirSync, realpathSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { systemClock, type Clock } from "../../core/clock.js";
import { LeaseLostError, VigilError } from "../../core/errors.js";
import type {
  EnqueueItem,
  EnqueueOptions,
  EnqueueResult,
  Incident,
  Job,
  JobErrorInfo,
  JobFilter,
  Lease,
  LeaseRef,
  NewIncident,
  NextJob,
  QueueCounts,
  QueueReport,
  RejectedRecord,
} from "../../core/types.js";
import { encodeJson, type PreparedItem } from "../common.js";
import {
  DEFAULT_ATTEMPTS,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_MAX_STALLS,
  type ClaimRequest,
  type CompleteAndClaimResult,
  type CompleteItem,
  type CompleteOutcome,
  type FailOptions,
  type PruneOptions,
  type ReapOptions,
  type Store,
  type StoreCaps,
  type ResolveIncidentsOptions,
  type StoreOptions,
  type TriggerCommit,
  type TriggerCursor,
} from "../store.js";
import { jobReport, jobStats, listJobs, oldestWaiting, pruneJobs } from "./job-reads.js";
import * as w from "./job-writes.js";
import { prepareJobStatements, type JobStatements } from "./jobs-sql.js";
import { migrate } from "./migrations.js";
import { inspectFile } from "./open-check.js";
import { statementCache, toJob, type JobRow, type Prepare } from "./rows.js";
import * as side from "./side-tables.js";
import { WakeBus } from "./wake.js";

/**
 * How long a writer waits for the write lock before SQLITE_BUSY. Transactions here last
 * micro- to milliseconds (a claim batch, a prune batch of 500 rows), but a WAL checkpoint
 * on a slow or busy disk can hold the lock for a second or more; 5 s rides that out on a
 * loaded 2-core machine while still surfacing a process that holds the lock for good.
 */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Jobs a claim should ask for (100), the floor of a worker's default claim-ahead for quick
 * handlers. Each transaction's commit costs about as much as a few jobs' updates, so a
 * worker whose batches hold c + 10 jobs spends much of its time committing. Measured with
 * 20k no-op jobs and one in-process worker (2 cores, one run each): claim-ahead 10 drained
 * 29.8k / 35.6k / 39.5k jobs/s at concurrency 1 / 10 / 50, 50 37.0k / 39.7k / 43.9k, 100
 * 47.0k / 47.4k / 48.4k. The lease buffer still holds at most about a second of handler
 * time (lease-buffer.ts), so slow handlers lease nothing ahead.
 */
export const CLAIM_BATCH_HINT = 100;

/**
 * Opens (creating it and its folder if needed) the SQLite store at `path`. An existing file
 * is inspected read-only first: one that is not SQLite, is corrupted, belongs to another
 * application or to a newer Vigil is refused (STORE_CORRUPT, STORE_FOREIGN, STORE_TOO_NEW)
 * and never written to. Pending migrations run under the write lock.
 */
export async function openSqliteStore(path: string, opts: StoreOptions = {}): Promise<Store> {
  const abs = resolve(path);
  const state = inspectFile(abs);
  if (opts.readOnly) {
    if (state !== "vigil") {
      throw new VigilError("STORE_UNREACHABLE", `store ${abs} does not exist yet; run \`vigil migrate\` to create it`);
    }
    const db = new Database(abs, { readonly: true, fileMustExist: true });
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    return new SqliteStore(db, abs, opts);
  }
  mkdirSync(dirname(abs), { recursive: true });
  const db = new Database(abs);
  let migrated = 0;
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    enableWal(db);
    db.pragma(`synchronous = ${opts.durability === "full" ? "FULL" : "NORMAL"}`);
    // Sorting or grouping never spills to a temp file (that once made claims 3× slower).
    db.pragma("temp_store = MEMORY");
    migrated = migrate(db, abs);
  } catch (err) {
    db.close();
    throw err;
  }
  const store = new SqliteStore(db, abs, opts);
  store.migratedOnOpen = migrated;
  return store;
}

/**
 * Switches a connection to WAL. While another process is creating or converting the same
 * fresh file, SQLite can answer SQLITE_BUSY for this pragma at once, without calling the
 * busy handler; several workers starting together on a new store would then fail. So it
 * is retried (every 10 ms) for up to the busy timeout.
 */
function enableWal(db: Database.Database): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      db.pragma("journal_mode = WAL");
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "SQLITE_BUSY" || Date.now() > deadline) throw err;
      Atomics.wait(pause, 0, 0, 10); // a synchronous 10 ms pause: opening is synchronous too
    }
  }
}

/** SQLite failures an operator can act on, as VigilErrors; everything else as it came. */
function translateError(err: unknown, path: string): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return err;
  const why = (err as Error).message;
  if (code.startsWith("SQLITE_BUSY")) {
    return new VigilError(
      "STORE_UNREACHABLE",
      `store ${path} stayed locked by another process for ${BUSY_TIMEOUT_MS} ms (${why}); look for a stuck process holding it`,
      { cause: err },
    );
  }
  if (code.startsWith("SQLITE_FULL") || code.startsWith("SQLITE_IOERR")) {
    return new VigilError("STORE_UNREACHABLE", `store ${path} could not be written (${why}); check free disk space`, { cause: err });
  }
  if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") {
    return new VigilError("STORE_CORRUPT", `store ${path} is corrupted (${why}); stop Vigil and restore it from a backup`, { cause: err });
  }
  return err;
}

/** The SQLite store; beyond `Store` it lets `vigil doctor` and tests read its settings. */
export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  readonly caps: StoreCaps = { notify: true, multiHost: false, notifyScheduled: true, claimBatchHint: CLAIM_BATCH_HINT };
  readonly clock: Clock;
  private readonly ctx: w.JobContext;
  private readonly sql: JobStatements | null;
  private readonly side: side.SideStatements | null;
  private readonly wake: WakeBus;
  private closed = false;
  /** Read statements, prepared on first use (list filters make a handful of shapes). */
  private readonly prep: Prepare;
  /** One transaction wrapper, made once: better-sqlite3 builds a new one per `transaction()` call. */
  private readonly tx: Database.Transaction<(fn: (now: number) => unknown, now: number) => unknown>;
  /** How many migrations opening this store ran (0 when another process had run them). */
  migratedOnOpen = 0;

  constructor(
    private readonly db: Database.Database,
    readonly location: string,
    opts: StoreOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.prep = statementCache(db);
    this.sql = opts.readOnly ? null : prepareJobStatements(db);
    this.side = opts.readOnly ? null : side.prepareSideStatements(db);
    this.ctx = {
      db,
      sql: this.sql as JobStatements,
      clock: this.clock,
      maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      defaultAttempts: opts.defaultAttempts ?? DEFAULT_ATTEMPTS,
      woke: new Set(),
    };
    this.wake = WakeBus.acquire(realpathSync(location));
    this.tx = db.transaction((fn: (now: number) => unknown, now: number) => fn(now));
  }

  /** Runs `fn` in one IMMEDIATE transaction, then announces queues it made available. */
  private write<T>(fn: (now: number) => T): T {
    if (!this.sql) throw new VigilError("BAD_INPUT", `store ${this.location} was opened read-only`);
    if (this.closed) throw new VigilError("STORE_UNREACHABLE", `store ${this.location} is closed`);
    const now = this.clock.now();
    this.ctx.woke.clear();
    let out: T;
    try {
      out = this.tx.immediate(fn, now) as T;
    } catch (err) {
      this.ctx.woke.clear();
      throw translateError(err, this.location);
    }
    if (this.ctx.woke.size > 0) {
      this.wake.notify(this.ctx.woke);
      this.ctx.woke.clear();
    }
    return out;
  }

  private get s(): side.SideStatements {
    return this.side as side.SideStatements;
  }

  // --- jobs ---------------------------------------------------------------------------

  async enqueue(queue: string, payload: unknown, opts: EnqueueOptions = {}): Promise<EnqueueResult> {
    const item = w.prepareItem(this.ctx, { ...opts, queue, payload });
    return this.write((now) => w.insertItem(this.ctx, item, now));
  }

  async enqueueMany(items: EnqueueItem[]): Promise<EnqueueResult[]> {
    const prepared = items.map((it) => w.prepareItem(this.ctx, it));
    return this.write((now) => prepared.map((it) => w.insertItem(this.ctx, it, now)));
  }

  async claim(req: ClaimRequest): Promise<Lease[]> {
    return this.write((now) => w.claimJobs(this.ctx, req, now));
  }

  async renew(lease: LeaseRef, leaseMs: number): Promise<number> {
    return this.write((now) => {
      if (!w.renewLease(this.ctx, lease, now + leaseMs)) throw new LeaseLostError(lease.jobId);
      return now + leaseMs;
    });
  }

  async renewMany(leases: LeaseRef[], leaseMs: number): Promise<number[]> {
    return this.write((now) => leases.filter((l) => !w.renewLease(this.ctx, l, now + leaseMs)).map((l) => l.jobId));
  }

  private prepareNext(next: NextJob[] | undefined): PreparedItem[] {
    return (next ?? []).map((n) => w.prepareItem(this.ctx, n));
  }

  async complete(lease: LeaseRef, result: unknown, next?: NextJob[]): Promise<Job[]> {
    const encoded = encodeJson(result, this.ctx.maxPayload, "result");
    const nextItems = this.prepareNext(next);
    return this.write((now) => {
      const made = w.completeJob(this.ctx, lease, encoded, nextItems, now);
      w.countCompleted(this.ctx, [lease.jobId], now);
      return made;
    });
  }

  async completeMany(items: CompleteItem[]): Promise<CompleteOutcome[]> {
    // Encode first: an item with a bad result fails alone, before the transaction.
    const prepared = w.prepareCompletions(this.ctx, items);
    return this.write((now) => w.completeItems(this.ctx, items, prepared, now));
  }

  async completeAndClaim(items: CompleteItem[], claim: ClaimRequest | null): Promise<CompleteAndClaimResult> {
    const prepared = w.prepareCompletions(this.ctx, items);
    return this.write((now) => ({
      outcomes: items.length ? w.completeItems(this.ctx, items, prepared, now) : [],
      leases: claim ? w.claimJobs(this.ctx, claim, now) : [],
    }));
  }

  async nextDueAt(queues: string[]): Promise<number | null> {
    if (queues.length === 0 || !this.sql) return null;
    return w.nextDueAt(this.ctx, queues);
  }

  async fail(lease: LeaseRef, error: JobErrorInfo, opts: FailOptions = {}): Promise<Job> {
    return this.write((now) => w.failJob(this.ctx, lease, error, opts.retryAt, now));
  }

  async release(lease: LeaseRef): Promise<void> {
    this.write(() => w.releaseJob(this.ctx, lease));
  }

  async cancel(id: number): Promise<Job> {
    return this.write((now) => w.cancelJob(this.ctx, id, now));
  }

  async retry(id: number): Promise<Job> {
    return this.write((now) => w.retryJob(this.ctx, id, now));
  }

  async releaseWorker(workerId: string, reason?: string, opts: ReapOptions = {}): Promise<number> {
    const message = reason ?? `worker ${workerId} stopped while running the job`;
    const maxStalls = opts.maxStalls ?? DEFAULT_MAX_STALLS;
    return this.write((now) =>
      w.stallJobs(this.ctx, this.ctx.sql.stallWorker, { workerId, message, maxStalls, now }),
    );
  }

  async reapExpired(opts: ReapOptions = {}): Promise<number> {
    const maxStalls = opts.maxStalls ?? DEFAULT_MAX_STALLS;
    const message = "the lease expired: the worker stopped renewing it";
    return this.write((now) => w.stallJobs(this.ctx, this.ctx.sql.stallExpired, { message, maxStalls, now }));
  }

  async get(id: number): Promise<Job | null> {
    const row = this.prep("SELECT * FROM jobs WHERE id = ?").get(id) as JobRow | undefined;
    return row ? toJob(row) : null;
  }

  async list(filter?: JobFilter): Promise<Job[]> {
    return listJobs(this.prep, filter);
  }

  async stats(): Promise<Record<string, QueueCounts>> {
    return this.db.transaction(() => jobStats(this.prep))();
  }

  async oldestWaiting(): Promise<Record<string, number>> {
    return oldestWaiting(this.prep, this.clock.now());
  }

  async report(since: number): Promise<QueueReport[]> {
    return this.db.transaction(() => jobReport(this.prep, since))();
  }

  async prune(opts: PruneOptions): Promise<{ completed: number; dead: number }> {
    return pruneJobs(this.db, this.prep, opts);
  }

  subscribe(listener: (queue: string) => void): () => void {
    return this.wake.subscribe(listener);
  }

  // --- triggers -----------------------------------------------------------------------

  async getCursor(trigger: string): Promise<TriggerCursor | null> {
    return side.readCursor(this.s, trigger);
  }

  async commitTrigger(c: TriggerCommit): Promise<boolean> {
    const cursor = encodeJson(c.cursor, this.ctx.maxPayload, "cursor");
    const jobs = c.jobs.map((it) => w.prepareItem(this.ctx, it));
    return this.write((now) => {
      const current = side.readCursor(this.s, c.trigger)?.version ?? 0;
      if (current !== c.expectVersion) return false;
      for (const it of jobs) w.insertItem(this.ctx, it, now);
      for (const r of c.rejected ?? []) side.insertRejected(this.s, { ...r, trigger: r.trigger || c.trigger }, now);
      this.s.putCursor.run(c.trigger, cursor, current + 1, now);
      return true;
    });
  }

  async listRejected(trigger?: string, limit?: number): Promise<RejectedRecord[]> {
    return side.listRejected(this.prep, trigger, limit);
  }

  // --- incidents ----------------------------------------------------------------------

  async addIncident(incident: NewIncident): Promise<Incident> {
    const detail = encodeJson(incident.detail ?? {}, this.ctx.maxPayload, "incident detail");
    return this.write((now) => side.addIncident(this.s, incident, now, detail));
  }

  async resolveIncidents(service: string, opts: ResolveIncidentsOptions = {}): Promise<number> {
    return this.write((now) => {
      const args = { at: opts.at ?? now, service, host: opts.host ?? null };
      return opts.id === undefined ? this.s.resolveAll.run(args).changes : this.s.resolveOne.run({ ...args, id: opts.id }).changes;
    });
  }

  async updateIncident(id: number, detail: Record<string, unknown>): Promise<void> {
    const encode = (v: unknown) => encodeJson(v, this.ctx.maxPayload, "incident detail");
    this.write(() => side.mergeIncidentDetail(this.s, id, detail, encode));
  }

  async listIncidents(opts?: { since?: number; service?: string; limit?: number }): Promise<Incident[]> {
    return side.listIncidents(this.prep, opts);
  }

  // --- leader locks -------------------------------------------------------------------

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.write((now) => this.s.tryLock.run({ name, owner, expiresAt: now + ttlMs, now }).changes > 0);
  }

  async unlock(name: string, owner: string): Promise<void> {
    this.write(() => this.s.unlock.run(name, owner));
  }

  // --- upkeep -------------------------------------------------------------------------

  async migrate(): Promise<number> {
    return migrate(this.db, this.location);
  }

  async check(): Promise<string | null> {
    let rows: { quick_check: string }[];
    try {
      rows = this.db.pragma("quick_check") as { quick_check: string }[];
    } catch (err) {
      // Damage bad enough that the check itself stops at it is a finding, not a failure.
      const code = (err as { code?: unknown }).code;
      if (typeof code === "string" && (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB")) return (err as Error).message;
      throw translateError(err, this.location);
    }
    const msgs = rows.map((r) => r.quick_check);
    return msgs.length === 1 && msgs[0] === "ok" ? null : msgs.slice(0, 5).join("; ");
  }

  /** Reads one pragma of this connection (e.g. `synchronous`: 1 NORMAL, 2 FULL). */
  pragma(name: "synchronous" | "journal_mode" | "busy_timeout" | "temp_store" | "user_version"): unknown {
    return this.db.pragma(name, { simple: true });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
    await this.wake.release();
  }
}
