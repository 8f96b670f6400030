/**
 * The job verbs that write, as synchronous steps run inside one IMMEDIATE transaction by
 * the store. Inputs are validated and encoded before the transaction starts, so a bad
 * payload or queue name is refused with nothing written.
 *
 * A step that finishes a job (completes it, or makes it dead or cancelled) moves its row
 * from `jobs` into `job_history` before the transaction ends (`moveOut`; a completion
 * writes its row there directly), and a retry moves it back (`moveBack`), so `jobs` never
 * holds a finished job once a write commits.
 *
 * Idempotency keys: a key is held by an unfinished job (in `jobs`, unique there) or by a
 * completed one (in `job_history`). `byKey` looks in both inside the write transaction,
 * and SQLite lets one writer in at a time (every write here is BEGIN IMMEDIATE), so no
 * enqueue can take a key between another's look and insert, nor a completion move it
 * meanwhile: no table of keys is needed beside the two indexes.
 */
import type Database from "better-sqlite3";
import type { Clock } from "../../core/clock.js";
import { InvalidStateError, LeaseLostError, NotFoundError } from "../../core/errors.js";
import type { EnqueueItem, EnqueueResult, Job, JobErrorInfo, JobSource, Lease, LeaseRef, NextJob } from "../../core/types.js";
import { dueAt, encodeJson, newToken, prepareItem as prepare, prepareNext, type PreparedItem } from "../common.js";
import type { ClaimRequest, CompleteItem, CompleteOutcome } from "../store.js";
import { flowRows, type FlowStatements } from "./flow.js";
import type { JobStatements } from "./jobs-sql.js";
import { leasedJob, toJob, type JobRow } from "./rows.js";

/** What the job steps need from the store. */
export interface JobContext {
  db: Database.Database;
  sql: JobStatements;
  clock: Clock;
  maxPayload: number;
  defaultAttempts: number;
  /** Each queue's maxStalls, stamped on the jobs enqueued to it. */
  queueMaxStalls?: Record<string, number>;
  /** Each queue's onDuplicate (StoreOptions). */
  queueOnDuplicate?: Record<string, "keep" | "replace">;
  /** Each queue's group.by (StoreOptions). */
  queueGroupBy?: Record<string, string>;
  /** Queues that got available jobs in this transaction; announced after it commits. */
  woke: Set<string>;
  flow: FlowStatements;
}

/** Validates and encodes an enqueue item (throws before anything is written). */
export function prepareItem(ctx: JobContext, item: EnqueueItem | (NextJob & { parentId?: number })): PreparedItem {
  return prepare(item, ctx);
}

/** Inserts one prepared item, or returns the live job that already has its key. */
export function insertItem(ctx: JobContext, it: PreparedItem, now: number): EnqueueResult {
  if (it.key !== null) {
    const existing = ctx.sql.byKey.get({ key: it.key }) as JobRow | undefined;
    if (existing) {
      const replaced = it.replace ? (ctx.flow.replacePayload.get(it.payload, it.grp, existing.id) as JobRow | undefined) : undefined;
      return replaced ? { job: toJob(replaced), created: false, replaced: true } : { job: toJob(existing), created: false };
    }
  }
  const runAt = dueAt({ runAt: it.runAt ?? undefined, delayMs: it.delayMs ?? undefined }, now);
  const state = runAt > now ? "scheduled" : "waiting";
  // No RETURNING: every field is known here, and RETURNING * made bulk inserts ~2.5× slower.
  const info = ctx.sql.insert.run({ ...it, state, runAt, now });
  // A scheduled job wakes idle workers too: they ask the store when it comes due
  // (`nextDueAt`) and set a timer for it, instead of polling for it.
  ctx.woke.add(it.queue);
  const job: Job = {
    id: Number(info.lastInsertRowid),
    queue: it.queue,
    state,
    key: it.key,
    payload: JSON.parse(it.payload),
    result: null,
    error: null,
    attempt: 0,
    maxAttempts: it.maxAttempts,
    stalls: 0,
    priority: it.priority,
    runAt,
    createdAt: now,
    startedAt: null,
    finishedAt: null,
    parentId: it.parentId,
    rootId: it.rootId,
    source: it.source === null ? null : (JSON.parse(it.source) as JobSource),
    workerId: null,
    leaseUntil: null,
    history: [],
  };
  return { job, created: true };
}

/**
 * Leases due jobs: promote what came due, then per queue read the next rows from the claim
 * index and update each by id (never `UPDATE … WHERE id IN (SELECT … LIMIT k)`).
 */
export function claimJobs(ctx: JobContext, req: ClaimRequest, now: number): Lease[] {
  ctx.sql.promoteDue.run(now);
  const leaseUntil = now + req.leaseMs;
  const workerId = req.workerId;
  const out: Lease[] = [];
  // One random prefix per claim, the job id appended: still unguessable (122 random bits)
  // and unique per claim, for one random draw per batch instead of one per job.
  let prefix: string | undefined;
  // Paused queues are skipped (a tiny table; resuming one wakes the workers).
  const paused = ctx.flow.paused.all() as string[];
  // Queues a handler's ctx.rateLimited holds (a tiny table too).
  const holds = ctx.flow.heldQueues.all(now) as { queue: string; until: number; reason: string }[];
  for (const queue in req.queues) {
    const max = req.queues[queue]!;
    if (!(max > 0) || (paused.length > 0 && paused.includes(queue))) continue;
    const held = holds.length > 0 ? holds.find((h) => h.queue === queue) : undefined;
    if (held) {
      req.onHold?.(queue, held.until, held.reason);
      continue;
    }
    const flow = req.flow?.[queue];
    let rows: unknown[][];
    if (flow) {
      const f = flowRows(ctx.flow, ctx.sql.nextJobs, queue, Math.trunc(max), flow, now);
      if (f.hold) req.onHold?.(queue, f.hold.until, f.hold.reason);
      rows = f.rows;
    } else {
      rows = ctx.sql.nextJobs.all(queue, Math.trunc(max)) as unknown[][];
    }
    for (const raw of rows) {
      const id = raw[0] as number;
      prefix ??= `${newToken()}:`;
      // Inside the IMMEDIATE transaction nobody else can take the row; `changes` is a guard.
      if (ctx.sql.lease.run(prefix, workerId, now, leaseUntil, id).changes === 0) continue;
      out.push({ jobId: id, token: prefix + id, workerId, leaseUntil, job: leasedJob(raw, workerId, now, leaseUntil) });
    }
  }
  return out;
}

/** An item of a group commit, encoded before the transaction (or the reason it cannot be). */
export type PreparedCompletion = { result: string; next: PreparedItem[] } | { error: Error };

/** Encodes the results of a group commit; an item with a bad result fails alone. */
export function prepareCompletions(ctx: JobContext, items: CompleteItem[]): PreparedCompletion[] {
  return items.map((it): PreparedCompletion => {
    try {
      const next = prepareNext(it.next, ctx);
      return { result: encodeJson(it.result, ctx.maxPayload, "result"), next };
    } catch (error) {
      return { error: error as Error };
    }
  });
}

/** Completes each item on its own (inside the caller's transaction) and counts them. */
export function completeItems(ctx: JobContext, items: CompleteItem[], prepared: PreparedCompletion[], now: number): CompleteOutcome[] {
  const done: number[] = [];
  const out = items.map((it, i): CompleteOutcome => {
    const p = prepared[i]!;
    if ("error" in p) return { ok: false, error: p.error };
    try {
      // A savepoint per item with next-stage jobs, so a refused item leaves nothing.
      const run = () => completeJob(ctx, it.lease, p.result, p.next, now);
      const made = p.next.length ? ctx.db.transaction(run)() : run();
      done.push(it.lease.jobId);
      return { ok: true, next: made };
    } catch (error) {
      return { ok: false, error: error as Error };
    }
  });
  countCompleted(ctx, done, now);
  return out;
}

/** When the earliest scheduled or failed job of `queues` comes due; null when none. */
export function nextDueAt(ctx: JobContext, queues: string[]): number | null {
  return (ctx.sql.nextDue.get(JSON.stringify(queues)) as number | undefined) ?? null;
}

export function renewLease(ctx: JobContext, lease: LeaseRef, leaseUntil: number): boolean {
  return ctx.sql.renew.run({ id: lease.jobId, token: lease.token, leaseUntil }).changes > 0;
}

/**
 * Completes one job and creates its next-stage jobs (already prepared). Throws
 * `LeaseLostError` on a stale token; the caller's transaction then writes nothing of it.
 * The caller counts the completion (`countCompleted`) in the same transaction.
 */
export function completeJob(
  ctx: JobContext,
  lease: LeaseRef,
  result: string,
  next: PreparedItem[],
  now: number,
): Job[] {
  if (ctx.sql.complete.run(result, now, lease.jobId, lease.token).changes === 0) {
    throw new LeaseLostError(lease.jobId);
  }
  ctx.sql.dropLive.run(lease.jobId);
  if (next.length === 0) return [];
  const root = ctx.sql.rootOf.get(lease.jobId) as number;
  return next.map((it) => insertItem(ctx, { ...it, parentId: lease.jobId, rootId: root }, now).job);
}

/** One minute of `job_minutes`, for a time in ms. */
export const minuteOf = (ms: number): number => Math.floor(ms / 60_000);

/**
 * Adds jobs completed at `now` to `queue_totals` and to their minute in `job_minutes`;
 * call inside the completing transaction.
 */
export function countCompleted(ctx: JobContext, ids: number[], now: number): void {
  if (ids.length === 0) return;
  const list = JSON.stringify(ids);
  ctx.sql.countCompleted.run(list);
  ctx.sql.countMinute.run(minuteOf(now), list);
}

export function failJob(ctx: JobContext, lease: LeaseRef, error: JobErrorInfo, retryAt: number | undefined, now: number): Job {
  const row = ctx.sql.fail.get({
    id: lease.jobId,
    token: lease.token,
    now,
    retryAt: retryAt ?? null,
    message: String(error.message ?? ""),
    stack: error.stack ?? null,
    outcome: error.outcome ?? "error",
  }) as JobRow | undefined;
  if (!row) throw new LeaseLostError(lease.jobId);
  ctx.sql.countFailure.run(now, row.queue);
  if (row.state === "dead") {
    ctx.sql.countDead.run(minuteOf(now), row.queue, 1);
    moveOut(ctx, row.id);
  }
  // Announced even when the retry is later: idle workers then set a timer for it, so it
  // runs on time even if the worker that failed it is gone by then.
  if (retryAt !== undefined) ctx.woke.add(row.queue);
  return toJob(row);
}

/** Gives one job back unrun; a lease that no longer holds is a LeaseLostError. */
export function releaseJob(ctx: JobContext, lease: LeaseRef): void {
  if (releaseJobs(ctx, [lease]).length === 0) throw new LeaseLostError(lease.jobId);
}

/** Gives many jobs back unrun (one transaction); returns the ids whose lease still held. */
export function releaseJobs(ctx: JobContext, leases: readonly LeaseRef[]): number[] {
  const released: number[] = [];
  for (const lease of leases) {
    const row = ctx.sql.release.get({ id: lease.jobId, token: lease.token }) as { queue: string } | undefined;
    if (!row) continue;
    released.push(lease.jobId);
    ctx.woke.add(row.queue);
  }
  return released;
}

/** Moves a job just finished (dead or cancelled by an UPDATE of `jobs`) into `job_history`. */
function moveOut(ctx: JobContext, id: number): void {
  ctx.sql.moveOut.run(id);
  ctx.sql.dropLive.run(id);
}

/** Moves a finished job back into `jobs` (a retry), where the caller then updates it. */
function moveBack(ctx: JobContext, id: number): void {
  ctx.sql.moveBack.run(id);
  ctx.sql.dropFinished.run(id);
}

function mustGet(ctx: JobContext, id: number): JobRow {
  const row = ctx.sql.byId.get({ id }) as JobRow | undefined;
  if (!row) throw new NotFoundError(`job ${id}`);
  return row;
}

export function cancelJob(ctx: JobContext, id: number, now: number): Job {
  const row = mustGet(ctx, id);
  if (row.state === "cancelled") return toJob(row);
  if (row.state === "completed" || row.state === "dead") {
    throw new InvalidStateError(`job ${id} is ${row.state}; only a job that has not finished can be cancelled`);
  }
  // Cancelling a running job writes a history entry, which the report counts as a failed attempt.
  if (row.state === "active") ctx.sql.countFailure.run(now, row.queue);
  const out = ctx.sql.cancel.get({ id, now }) as JobRow;
  moveOut(ctx, id);
  return toJob(out);
}

export function retryJob(ctx: JobContext, id: number, now: number): Job {
  const row = mustGet(ctx, id);
  if (row.state !== "dead" && row.state !== "failed" && row.state !== "cancelled") {
    throw new InvalidStateError(`job ${id} is ${row.state}; only a dead, failed or cancelled job can be retried`);
  }
  if (row.key !== null && row.state !== "failed") {
    const live = ctx.sql.byKey.get({ key: row.key }) as JobRow | undefined;
    if (live) {
      throw new InvalidStateError(`job ${id} has key ${JSON.stringify(row.key)}, which live job ${live.id} now holds; retry that one instead`);
    }
  }
  // Dead and cancelled jobs are in job_history; a failed one (retry pending) is still in jobs.
  if (row.state !== "failed") moveBack(ctx, id);
  const out = ctx.sql.retry.get({ id, now }) as JobRow;
  ctx.woke.add(out.queue);
  return toJob(out);
}

/** Applies a stall to every job the statement selects; returns how many. */
export function stallJobs(
  ctx: JobContext,
  stmt: Database.Statement,
  params: Record<string, unknown>,
): number {
  const rows = stmt.all(params) as { id: number; queue: string; state: string }[];
  // Every stall is a failed attempt (a history entry); some are deaths.
  const now = params["now"] as number;
  const dead = new Map<string, number>();
  for (const r of rows) {
    ctx.sql.countFailure.run(now, r.queue);
    if (r.state === "waiting") ctx.woke.add(r.queue);
    else if (r.state === "dead") {
      dead.set(r.queue, (dead.get(r.queue) ?? 0) + 1);
      moveOut(ctx, r.id);
    }
  }
  for (const [queue, n] of dead) ctx.sql.countDead.run(minuteOf(now), queue, n);
  return rows.length;
}
