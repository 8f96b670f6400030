/**
 * The PostgreSQL store: Vigil's tables in their own schema (default `vigil`), shared by
 * any number of hosts. Claims lock rows with `FOR UPDATE SKIP LOCKED`, so claimers never
 * wait on each other; batches (claims, renewals, completions with their next-stage jobs)
 * are single statements over arrays. Idle workers are woken by LISTEN/NOTIFY. While the
 * server is down every call fails with STORE_UNREACHABLE, and works again once it is back.
 * Here are opening it and the verbs of `Store`; the pool, the LISTEN subscription and
 * closing are in store-core.ts.
 */
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
import { checkQueueName, encodeJson } from "../common.js";
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
import { parsePostgresUrl, quoteIdent } from "./connection.js";
import * as ctl from "./job-control.js";
import { countRounds, jobReport, jobStats, listJobs, nextDueAt, oldestWaiting, pruneJobs } from "./job-reads.js";
import * as w from "./job-writes.js";
import * as claims from "./job-claim.js";
import * as completions from "./job-complete.js";
import { holdReason } from "../flow.js";
import { holdBack, toQueueState, type QueueRow } from "./flow.js";
import { LATEST_VERSION, migrate, schemaVersion, tooNew } from "./migrations.js";
import { pgUpkeep } from "./upkeep.js";
import { PostgresStoreCore } from "./store-core.js";
import { rowToJob, type JobRow } from "./rows.js";
import * as side from "./side-tables.js";
import { pgJobsAhead, pgRunReads } from "./run-reads.js";
import { getRun, JOBS_AHEAD_CAP, listRuns, rerun, type RunDetail, type RunFilter, type RunPage } from "../runs.js";

/**
 * Opens the store at a `postgres://` URL: connects, and (unless `readOnly`) applies pending
 * migrations under an advisory lock. The schema comes from the URL's `?schema=`, else
 * `opts.schema`, else `vigil`. Throws STORE_UNREACHABLE when the server cannot be reached.
 */
export async function openPostgresStore(url: string, opts: StoreOptions = {}): Promise<Store> {
  const target = parsePostgresUrl(url, opts.schema);
  const store = new PostgresStore(target, opts);
  try {
    if (opts.readOnly) {
      const version = await schemaVersion(store.db, target.schema, quoteIdent(target.schema));
      if (version === 0) {
        throw new VigilError(
          "STORE_UNREACHABLE",
          `store ${target.location} has no Vigil tables yet; run \`vigil migrate\` to create them`,
        );
      }
      if (version > LATEST_VERSION) throw tooNew(target.schema, version);
    } else {
      await store.migrate();
      // Jobs of grouped queues enqueued without their group known get it now (flow.ts).
      await store.fillGroups(opts.queueGroupBy ?? {});
    }
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

/**
 * Jobs a claim should ask for (1000). A round trip with its commit costs a few ms here
 * whatever its size, and each job about 13 µs of server time (claim and completion, both
 * in one statement): measured with 20k no-op jobs and one worker at concurrency 1, 10 and
 * 50, claim-ahead of 10 drained ~4k jobs/s, 500 ~13-20k, 1000 ~31-35k, 2000 ~25-29k.
 */
export const CLAIM_BATCH_HINT = 1000;

/**
 * Transactions of completions and claims a worker keeps in flight at once (2). With one,
 * the worker and the server took turns: a 100k-job drain spent 10.5 ms per transaction in
 * the server (its statement log) and 14.7 ms seen from the worker, which sat idle for half
 * of the drain. With two, one transaction executes while the worker parses the other's
 * rows and runs its jobs. 20k-job drains with one worker process, alternating runs: c10
 * 25.7k and 27.7k jobs/s with one, 31.4k and 35.9k with two; three did no better than two.
 */
export const COMMIT_LANES = 2;

class PostgresStore extends PostgresStoreCore implements Store {
  readonly kind = "postgres" as const;
  readonly caps: StoreCaps = {
    notify: true,
    multiHost: true,
    claimBatchHint: CLAIM_BATCH_HINT,
    commitLanes: COMMIT_LANES,
  };

  // --- jobs ---------------------------------------------------------------------------

  async enqueue(queue: string, payload: unknown, opts: EnqueueOptions = {}): Promise<EnqueueResult> {
    this.writable();
    return w.enqueueOne(this.ctx, w.prepareItem(this.ctx, { ...opts, queue, payload }));
  }

  async enqueueMany(items: EnqueueItem[]): Promise<EnqueueResult[]> {
    this.writable();
    return w.enqueueMany(this.ctx, items.map((it) => w.prepareItem(this.ctx, it)));
  }

  async claim(req: ClaimRequest): Promise<Lease[]> {
    this.writable();
    return claims.claim(this.ctx, req);
  }

  async renew(lease: LeaseRef, leaseMs: number): Promise<number> {
    this.writable();
    const { lost, leaseUntil } = await claims.renewMany(this.ctx, [lease], leaseMs);
    if (lost.length > 0) throw new LeaseLostError(lease.jobId);
    return leaseUntil;
  }

  async renewMany(leases: LeaseRef[], leaseMs: number): Promise<number[]> {
    this.writable();
    return (await claims.renewMany(this.ctx, leases, leaseMs)).lost;
  }

  async complete(lease: LeaseRef, result: unknown, next?: NextJob[]): Promise<Job[]> {
    this.writable();
    const [outcome] = await completions.completeMany(this.ctx, [next ? { lease, result, next } : { lease, result }]);
    if (!outcome!.ok) throw outcome!.error;
    return outcome!.next;
  }

  async completeMany(items: CompleteItem[]): Promise<CompleteOutcome[]> {
    this.writable();
    return completions.completeMany(this.ctx, items);
  }

  async completeAndClaim(items: CompleteItem[], claim: ClaimRequest | null): Promise<CompleteAndClaimResult> {
    this.writable();
    return completions.completeAndClaim(this.ctx, items, claim);
  }

  async fail(lease: LeaseRef, error: JobErrorInfo, opts: FailOptions = {}): Promise<Job> {
    this.writable();
    return ctl.fail(this.ctx, lease, error, opts.retryAt);
  }

  async release(lease: LeaseRef): Promise<void> {
    this.writable();
    await ctl.release(this.ctx, lease);
  }

  async releaseMany(leases: readonly LeaseRef[]): Promise<number[]> {
    this.writable();
    return ctl.releaseMany(this.ctx, leases);
  }

  async cancel(id: number): Promise<Job> {
    this.writable();
    return ctl.cancel(this.ctx, id);
  }

  async retry(id: number): Promise<Job> {
    this.writable();
    return ctl.retry(this.ctx, id);
  }

  async releaseWorker(workerId: string, reason?: string, opts: ReapOptions = {}): Promise<number> {
    this.writable();
    const message = reason ?? `worker ${workerId} stopped while running the job`;
    return ctl.stallWorker(this.ctx, workerId, message, stallLimits(this.opts.queueMaxStalls, opts));
  }

  async reapExpired(opts: ReapOptions = {}): Promise<number> {
    this.writable();
    const message = "the lease expired: the worker stopped renewing it";
    return ctl.stallExpired(this.ctx, message, stallLimits(this.opts.queueMaxStalls, opts));
  }

  async get(id: number): Promise<Job | null> {
    if (!Number.isSafeInteger(id)) return null;
    const s = this.ctx.sql.byId;
    const rows = await this.db.query<JobRow>(s.text, [id], s.name);
    return rows[0] ? rowToJob(rows[0]) : null;
  }

  async list(filter?: JobFilter): Promise<Job[]> {
    return listJobs(this.db, this.S, filter);
  }

  async countRounds(rootId: number, queue: string, atMost: number): Promise<number> {
    return countRounds(this.db, this.S, rootId, queue, atMost);
  }

  async listRuns(filter?: RunFilter): Promise<RunPage> {
    return listRuns(pgRunReads(this.db, this.S), filter);
  }

  async jobsAhead(id: number, cap = JOBS_AHEAD_CAP): Promise<number | null> {
    const job = await this.get(id);
    if (!job || job.state !== "waiting") return null;
    return pgJobsAhead(this.db, this.S, job, cap);
  }

  async getRun(id: number): Promise<RunDetail | null> {
    return getRun(this, id);
  }

  async rerun(id: number, fromQueue: string, payload?: unknown): Promise<Job> {
    return rerun(this, id, fromQueue, payload);
  }

  async stats(): Promise<Record<string, QueueCounts>> {
    return jobStats(this.db, this.S);
  }

  async nextDueAt(queues: string[]): Promise<number | null> {
    return nextDueAt(this.db, this.S, queues);
  }

  async oldestWaiting(): Promise<Record<string, number>> {
    return oldestWaiting(this.db, this.S, this.clock.now());
  }

  async report(since: number): Promise<QueueReport[]> {
    return jobReport(this.db, this.S, since);
  }

  async upkeep(): Promise<StoreUpkeep> {
    return pgUpkeep(this.db, this.target.schema);
  }

  async prune(opts: PruneOptions): Promise<{ completed: number; dead: number }> {
    this.writable();
    return pruneJobs(this.db, this.S, opts);
  }

  /** See flow.ts, fillGroups: run once at open. */
  async fillGroups(groupBy: Record<string, string>): Promise<void> {
    for (const [queue, by] of Object.entries(groupBy)) await this.db.query(this.ctx.flow.fillGroups, [queue, by.split(".")]);
  }

  async announce(queues: string[]): Promise<void> {
    const n = this.ctx.sql.notify;
    for (const q of new Set(queues)) await this.db.query(n.text, [this.ctx.channel, q], n.name);
  }

  async setPaused(queue: string, paused: boolean): Promise<QueueState> {
    this.writable();
    checkQueueName(queue);
    // Resuming notifies the queue in the same statement, so blocked workers claim at once.
    const rows = await this.db.query<QueueRow>(this.ctx.flow.setPaused, [
      queue,
      paused,
      paused ? this.clock.now() : null,
      this.ctx.channel,
    ]);
    return toQueueState(rows[0]!);
  }

  async rateLimited(lease: LeaseRef, ms: number, opts: { group?: string; reason?: string } = {}): Promise<number> {
    this.writable();
    const span = Math.max(0, Math.trunc(ms));
    const reason = (queue: string) => holdReason(queue, opts.group ?? null, span, opts.reason);
    const asked = Date.now();
    const out = await this.db.tx(async (q) => {
      const held = await holdBack(this.ctx.flow, q, { jobId: lease.jobId, token: String(lease.token) }, span, opts.group, reason);
      // Idle workers look again (they poll for due jobs on this store).
      if (held) await q.query(this.ctx.sql.notify.text, [this.ctx.channel, held.queue]);
      return held;
    });
    if (!out) throw new LeaseLostError(lease.jobId);
    return asked + span;
  }

  async queueStates(): Promise<QueueState[]> {
    return (await this.db.query<QueueRow>(this.ctx.flow.states)).map(toQueueState);
  }

  // --- triggers -----------------------------------------------------------------------

  async getCursor(trigger: string): Promise<TriggerCursor | null> {
    return side.readCursor(this.db, this.S, trigger);
  }

  async commitTrigger(c: TriggerCommit): Promise<boolean> {
    this.writable();
    const cursor = encodeJson(c.cursor, this.ctx.maxPayload, "cursor");
    const jobs = c.jobs.map((it) => w.prepareItem(this.ctx, it));
    const rejected = (c.rejected ?? []).map((r) => ({ ...r, trigger: r.trigger || c.trigger }));
    return this.db.tx(async (q) => {
      const now = this.clock.now();
      if (!(await side.advanceCursor(q, this.S, c.trigger, c.expectVersion, cursor, now))) return false;
      if (jobs.length > 0) await w.insertItems(this.ctx, q, jobs, now);
      await side.insertRejected(q, this.S, rejected, now);
      return true;
    });
  }

  async listRejected(trigger?: string, limit?: number): Promise<RejectedRecord[]> {
    return side.listRejected(this.db, this.S, trigger, limit);
  }

  // --- incidents ----------------------------------------------------------------------

  async addIncident(incident: NewIncident): Promise<Incident> {
    this.writable();
    const detail = encodeJson(incident.detail ?? {}, this.ctx.maxPayload, "incident detail");
    return side.addIncident(this.db, this.S, incident, this.clock.now(), detail);
  }

  async resolveIncidents(service: string, opts: ResolveIncidentsOptions = {}): Promise<number> {
    this.writable();
    return side.resolveIncidents(this.db, this.S, service, opts.at ?? this.clock.now(), opts);
  }

  async updateIncident(id: number, detail: Record<string, unknown>): Promise<void> {
    this.writable();
    const encode = (v: unknown) => encodeJson(v, this.ctx.maxPayload, "incident detail");
    await side.mergeIncidentDetail(this.db, this.S, id, detail, encode);
  }

  async listIncidents(opts?: { since?: number; service?: string; limit?: number }): Promise<Incident[]> {
    return side.listIncidents(this.db, this.S, opts);
  }

  // --- leader locks -------------------------------------------------------------------

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    this.writable();
    return side.tryLock(this.db, this.S, name, owner, ttlMs);
  }

  async unlock(name: string, owner: string): Promise<void> {
    this.writable();
    await side.unlock(this.db, this.S, name, owner);
  }

  // --- upkeep -------------------------------------------------------------------------

  async migrate(): Promise<number> {
    this.writable();
    return migrate(this.db, this.target.schema, this.S);
  }

  async check(): Promise<string | null> {
    const version = await schemaVersion(this.db, this.target.schema, this.S);
    if (version !== LATEST_VERSION) {
      return `schema "${this.target.schema}" is at version ${version}, expected ${LATEST_VERSION}; run \`vigil migrate\``;
    }
    const rows = await this.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${this.S}.jobs WHERE state = 'active' AND (token IS NULL OR lease_until IS NULL)`,
    );
    const n = rows[0]?.n ?? 0;
    return n === 0 ? null : `${n} active job(s) have no lease token or lease end`;
  }
}
