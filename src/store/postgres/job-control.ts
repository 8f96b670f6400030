/**
 * Job verbs that end or undo an attempt: fail, release, cancel, retry, and stalls (a dead
 * worker's leases, expired leases). Each is one statement, or a short transaction when the
 * job's current state decides what happens. A death or a cancellation moves the job to
 * job_history and gives its key back; a retry of a dead or cancelled job takes its key
 * again and moves it back (jobs-sql.ts).
 */
import { InvalidStateError, LeaseLostError, NotFoundError } from "../../core/errors.js";
import type { Job, JobErrorInfo, LeaseRef } from "../../core/types.js";
import type { Queryable } from "./db.js";
import { pgText, type JobContext } from "./job-writes.js";
import { rowToJob, type JobRow } from "./rows.js";

export async function fail(ctx: JobContext, lease: LeaseRef, error: JobErrorInfo, retryAt: number | undefined): Promise<Job> {
  const now = ctx.clock.now();
  const s = ctx.sql.fail;
  const rows = await ctx.db.query<JobRow>(
    s.text,
    [
      lease.jobId,
      String(lease.token),
      retryAt === undefined ? null : Math.trunc(retryAt),
      now,
      pgText(String(error.message ?? "")),
      error.stack === undefined ? null : pgText(String(error.stack)),
      error.outcome ?? "error",
    ],
    s.name,
  );
  const row = rows[0];
  if (!row) throw new LeaseLostError(lease.jobId);
  // A retry that is already due wakes idle workers like a new job would.
  if (retryAt !== undefined && retryAt <= now) await notify(ctx, ctx.db, row.queue);
  return rowToJob(row);
}

/** Gives a job back unrun: `waiting`, its attempt not counted. */
export async function release(ctx: JobContext, lease: LeaseRef): Promise<void> {
  if ((await releaseMany(ctx, [lease])).length === 0) throw new LeaseLostError(lease.jobId);
}

/** Gives many jobs back unrun in one statement; returns the ids whose lease still held. */
export async function releaseMany(ctx: JobContext, leases: readonly LeaseRef[]): Promise<number[]> {
  if (leases.length === 0) return [];
  const s = ctx.sql.releaseMany;
  const ids = leases.map((l) => l.jobId);
  const tokens = leases.map((l) => String(l.token));
  const rows = await ctx.db.query<{ ids: (string | number)[] }>(s.text, [ids, tokens, ctx.channel], s.name);
  return (rows[0]?.ids ?? []).map(Number);
}

/**
 * The job, locked until the transaction ends. A job that moved between the tables while
 * the statement waited for its lock is not found by it (its row in the other table is
 * newer than the statement): the next statement finds it.
 */
async function lockJob(ctx: JobContext, q: Queryable, id: number): Promise<JobRow> {
  for (let round = 0; round < 3; round++) {
    const rows = await q.query<JobRow>(ctx.sql.byIdForUpdate.text, [id], ctx.sql.byIdForUpdate.name);
    if (rows[0]) return rows[0];
  }
  throw new NotFoundError(`job ${id}`);
}

export async function cancel(ctx: JobContext, id: number): Promise<Job> {
  return ctx.db.tx(async (q) => {
    const row = await lockJob(ctx, q, id);
    if (row.state === "cancelled") return rowToJob(row);
    if (row.state === "completed" || row.state === "dead") {
      throw new InvalidStateError(`job ${id} is ${row.state}; only a job that has not finished can be cancelled`);
    }
    const now = ctx.clock.now();
    const rows = await q.query<JobRow>(ctx.sql.cancel.text, [id, now], ctx.sql.cancel.name);
    // Cancelling a running job writes a history entry, which the report counts as a failed attempt.
    if (row.state === "active") await q.query(ctx.sql.countFailure.text, [now, row.queue], ctx.sql.countFailure.name);
    return rowToJob(rows[0]!);
  });
}

export async function retry(ctx: JobContext, id: number): Promise<Job> {
  return ctx.db.tx(async (q) => {
    const row = await lockJob(ctx, q, id);
    if (row.state !== "dead" && row.state !== "failed" && row.state !== "cancelled") {
      throw new InvalidStateError(`job ${id} is ${row.state}; only a dead, failed or cancelled job can be retried`);
    }
    if (row.state === "failed") {
      const rows = await q.query<JobRow>(ctx.sql.retry.text, [id, ctx.clock.now()], ctx.sql.retry.name);
      await notify(ctx, q, row.queue);
      return rowToJob(rows[0]!);
    }
    if (row.key !== null) await takeKeyBack(ctx, q, id, row.key);
    const rows = await q.query<JobRow>(ctx.sql.retryFinished.text, [id, ctx.clock.now()], ctx.sql.retryFinished.name);
    await notify(ctx, q, row.queue);
    return rowToJob(rows[0]!);
  });
}

/** Takes `key` back for dead or cancelled job `id`; refused while another job holds it. */
async function takeKeyBack(ctx: JobContext, q: Queryable, id: number, key: string): Promise<void> {
  for (let round = 0; round < 10; round++) {
    if ((await q.query(ctx.sql.takeKey.text, [key, id], ctx.sql.takeKey.name)).length > 0) return;
    // Held: by whom, read by a new statement (the holder may have committed just now).
    const live = await q.query<JobRow>(ctx.sql.byKeys.text, [[key]], ctx.sql.byKeys.name);
    if (live[0]) {
      throw new InvalidStateError(
        `job ${id} has key ${JSON.stringify(key)}, which live job ${live[0].id} now holds; retry that one instead`,
      );
    }
  }
  throw new InvalidStateError(`retry: the job holding key ${JSON.stringify(key)} kept changing; try again`);
}

/** Stalls every job a worker holds (it died); each stall counts. Returns how many. */
export async function stallWorker(ctx: JobContext, workerId: string, message: string, limits: string): Promise<number> {
  const s = ctx.sql.stallWorker;
  const rows = await ctx.db.query<{ n: number }>(
    s.text,
    [pgText(message), ctx.clock.now(), limits, pgText(workerId), ctx.channel],
    s.name,
  );
  return rows[0]?.n ?? 0;
}

/** Stalls every job whose lease ran out. Returns how many. */
export async function stallExpired(ctx: JobContext, message: string, limits: string): Promise<number> {
  const s = ctx.sql.stallExpired;
  const rows = await ctx.db.query<{ n: number }>(s.text, [message, ctx.clock.now(), limits, ctx.channel], s.name);
  return rows[0]?.n ?? 0;
}

async function notify(ctx: JobContext, q: Queryable, queue: string): Promise<void> {
  await q.query(ctx.sql.notify.text, [ctx.channel, queue], ctx.sql.notify.name);
}
