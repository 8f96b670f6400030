/**
 * The SQLite store: one file, WAL, one connection per process. Here are opening it
 * (inspecting, migrating, filling groups) and the verbs of `Store`; better-sqlite3 is
 * synchronous, so each verb runs its statements as one transaction (connection.ts, which
 * also retries a transaction that meets another process's write lock) wrapped in an async
 * method to fit the interface.
 */
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
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
import { checkQueueName, encodeJson, prepareNext, type PreparedItem } from "../common.js";
import {
  stallLimits,
  type ClaimRequest,
  type CompleteAndClaimResult,
  type CompleteItem,
  type CompleteOutcome,
  type FailOptions,
  type PruneOptions,
  type QueueState,
  type ReapOptions,
  type Store,
  type StoreCaps,
  type ResolveIncidentsOptions,
  type StoreOptions,
  type StoreUpkeep,
  type TriggerCommit,
  type TriggerCursor,
} from "../store.js";
import { BUSY_TIMEOUT_MS, LOCK_WAIT_MS, whenUnlocked } from "./busy.js";
import { SqliteConnection, unlocked } from "./connection.js";
import { translateError } from "./errors.js";
import { countRounds, jobReport, jobStats, listJobs, oldestWaiting, pruneJobs } from "./job-reads.js";
import * as w from "./job-writes.js";
import { fillGroups, holdBack, setPaused, toQueueState, type QueueRow } from "./flow.js";
import { migrate, SCHEMA_VERSION } from "./migrations.js";
import { inspectFile } from "./open-check.js";
import { ROW_COLUMNS, toJob, type JobRow } from "./rows.js";
import * as side from "./side-tables.js";
import { sqliteJobsAhead, sqliteRunReads } from "./run-reads.js";
import { getRun, JOBS_AHEAD_CAP, listRuns, rerun, type RunDetail, type RunFilter, type RunPage } from "../runs.js";
import { sqliteUpkeep } from "./upkeep.js";

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
  const waitMs = opts.lockWaitMs ?? LOCK_WAIT_MS;
  const state = await unlocked(() => inspectFile(abs), waitMs, abs);
  if (opts.readOnly) {
    if (state === "behind") {
      throw new VigilError(
        "STORE_UNREACHABLE",
        `store ${abs} has an older schema than this Vigil reads (version ${SCHEMA_VERSION}); run \`vigil migrate\` (or \`vigil start\`, which migrates it) first`,
      );
    }
    if (state !== "vigil") {
      throw new VigilError("STORE_UNREACHABLE", `store ${abs} does not exist yet; run \`vigil migrate\` to create it`);
    }
    const db = new Database(abs, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    return new SqliteStore(db, abs, opts);
  }
  mkdirSync(dirname(abs), { recursive: true });
  // `timeout` is the connection's busy_timeout: a short synchronous wait (see busy.ts).
  const db = new Database(abs, { timeout: BUSY_TIMEOUT_MS });
  let migrated = 0;
  try {
    // While another process is creating or converting the same fresh file, SQLite can
    // answer SQLITE_BUSY for this pragma at once; several workers starting together on a
    // new store would then fail. So it is retried like any write.
    await unlocked(() => db.pragma("journal_mode = WAL"), waitMs, abs);
    db.pragma(`synchronous = ${opts.durability === "full" ? "FULL" : "NORMAL"}`);
    // Sorting or grouping never spills to a temp file (that once made claims 3× slower).
    db.pragma("temp_store = MEMORY");
    migrated = await unlocked(() => migrate(db, abs), waitMs, abs);
  } catch (err) {
    db.close();
    throw err;
  }
  const store = new SqliteStore(db, abs, opts);
  store.migratedOnOpen = migrated;
  if (!opts.readOnly && opts.queueGroupBy && Object.keys(opts.queueGroupBy).length > 0) {
    try {
      await store.fillGroups(opts.queueGroupBy);
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}

/** The SQLite store; beyond `Store` it lets `vigil doctor` and tests read its settings. */
export class SqliteStore extends SqliteConnection implements Store {
  readonly kind = "sqlite" as const;
  readonly caps: StoreCaps = { notify: true, multiHost: false, notifyScheduled: true, claimBatchHint: CLAIM_BATCH_HINT };

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
    return prepareNext(next, this.ctx);
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
    return this.read(() => w.nextDueAt(this.ctx, queues));
  }

  async fail(lease: LeaseRef, error: JobErrorInfo, opts: FailOptions = {}): Promise<Job> {
    return this.write((now) => w.failJob(this.ctx, lease, error, opts.retryAt, now));
  }

  async release(lease: LeaseRef): Promise<void> {
    await this.write(() => w.releaseJob(this.ctx, lease));
  }

  async releaseMany(leases: readonly LeaseRef[]): Promise<number[]> {
    if (leases.length === 0) return [];
    return this.write(() => w.releaseJobs(this.ctx, leases));
  }

  async cancel(id: number): Promise<Job> {
    return this.write((now) => w.cancelJob(this.ctx, id, now));
  }

  async retry(id: number): Promise<Job> {
    return this.write((now) => w.retryJob(this.ctx, id, now));
  }

  async releaseWorker(workerId: string, reason?: string, opts: ReapOptions = {}): Promise<number> {
    const message = reason ?? `worker ${workerId} stopped while running the job`;
    const limits = stallLimits(this.queueMaxStalls, opts);
    return this.write((now) =>
      w.stallJobs(this.ctx, this.ctx.sql.stallWorker, { workerId, message, limits, now }),
    );
  }

  async reapExpired(opts: ReapOptions = {}): Promise<number> {
    const limits = stallLimits(this.queueMaxStalls, opts);
    const message = "the lease expired: the worker stopped renewing it";
    const latest = () => (this.prep("SELECT max(lease_until) AS m FROM jobs WHERE state = 'active'").get() as { m: number | null }).m;
    return this.write((now) => {
      const before = this.steps.cutoff(now, latest);
      return w.stallJobs(this.ctx, this.ctx.sql.stallExpired, { message, limits, now, before });
    });
  }

  async get(id: number): Promise<Job | null> {
    return this.read(() => {
      // Unfinished jobs are in `jobs`, finished ones in `job_history` (migration 10).
      const row = this.prep(`SELECT ${ROW_COLUMNS} FROM jobs WHERE id = @id UNION ALL SELECT ${ROW_COLUMNS} FROM job_history WHERE id = @id`).get({ id }) as
        | JobRow
        | undefined;
      return row ? toJob(row) : null;
    });
  }

  async list(filter?: JobFilter): Promise<Job[]> {
    return this.read(() => listJobs(this.prep, filter));
  }

  async countRounds(rootId: number, queue: string, atMost: number): Promise<number> {
    return this.read(() => countRounds(this.prep, rootId, queue, atMost));
  }

  async listRuns(filter?: RunFilter): Promise<RunPage> {
    return listRuns(sqliteRunReads(this.prep, async (fn) => this.read(fn)), filter);
  }

  async jobsAhead(id: number, cap = JOBS_AHEAD_CAP): Promise<number | null> {
    const job = await this.get(id);
    if (!job || job.state !== "waiting") return null;
    return this.read(() => sqliteJobsAhead(this.prep, job, cap));
  }

  async getRun(id: number): Promise<RunDetail | null> {
    return getRun(this, id);
  }

  async rerun(id: number, fromQueue: string, payload?: unknown): Promise<Job> {
    return rerun(this, id, fromQueue, payload);
  }

  async stats(): Promise<Record<string, QueueCounts>> {
    return this.read(() => this.db.transaction(() => jobStats(this.prep))());
  }

  async oldestWaiting(): Promise<Record<string, number>> {
    return this.read(() => oldestWaiting(this.prep, this.clock.now()));
  }

  async report(since: number): Promise<QueueReport[]> {
    return this.read(() => this.db.transaction(() => jobReport(this.prep, since))());
  }

  async upkeep(): Promise<StoreUpkeep> {
    return this.read(() => sqliteUpkeep(this.prep, this.location));
  }

  async prune(opts: PruneOptions): Promise<{ completed: number; dead: number }> {
    return pruneJobs(this.prep, opts, (step) => this.write(step));
  }

  /** See flow.ts, fillGroups: run once at open. */
  async fillGroups(groupBy: Record<string, string>): Promise<void> {
    await this.write(() => fillGroups(this.ctx.flow, groupBy));
  }

  async announce(queues: string[]): Promise<void> {
    this.wake.notify(queues);
  }

  async setPaused(queue: string, paused: boolean): Promise<QueueState> {
    checkQueueName(queue);
    return this.write((now) => setPaused(this.ctx, queue, paused, now));
  }

  async rateLimited(lease: LeaseRef, ms: number, opts: { group?: string; reason?: string } = {}): Promise<number> {
    return this.write((now) => {
      const until = holdBack(this.ctx, lease, ms, opts, now);
      if (until === null) throw new LeaseLostError(lease.jobId);
      return until;
    });
  }

  async queueStates(): Promise<QueueState[]> {
    return (this.prep("SELECT * FROM queues ORDER BY name").all() as QueueRow[]).map(toQueueState);
  }

  subscribe(listener: (queue: string) => void): () => void {
    return this.wake.subscribe(listener);
  }

  // --- triggers -----------------------------------------------------------------------

  async getCursor(trigger: string): Promise<TriggerCursor | null> {
    return this.read(() => side.readCursor(this.s, trigger));
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
    return this.read(() => side.listRejected(this.prep, trigger, limit));
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
    await this.write(() => side.mergeIncidentDetail(this.s, id, detail, encode));
  }

  async listIncidents(opts?: { since?: number; service?: string; limit?: number }): Promise<Incident[]> {
    return this.read(() => side.listIncidents(this.prep, opts));
  }

  // --- leader locks -------------------------------------------------------------------

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.write((now) => this.s.tryLock.run({ name, owner, expiresAt: now + ttlMs, now }).changes > 0);
  }

  async unlock(name: string, owner: string): Promise<void> {
    await this.write(() => this.s.unlock.run(name, owner));
  }

  // --- upkeep -------------------------------------------------------------------------

  async migrate(): Promise<number> {
    return this.unlocked(() => migrate(this.db, this.location));
  }

  async check(): Promise<string | null> {
    let rows: { quick_check: string }[];
    try {
      rows = (await whenUnlocked(() => this.db.pragma("quick_check"), this.lockWaitMs)) as { quick_check: string }[];
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
}
