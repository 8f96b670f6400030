/**
 * The job verbs that enqueue, and what every job verb shares (`JobContext`, `pgText`,
 * `prepareItem`). Inputs are validated and encoded before anything is sent, so a bad
 * payload or queue name is refused with nothing written. A batch is one statement over
 * arrays (one round trip); a batch whose keys may need a second look (a key already held)
 * runs in a transaction. Claims and renewals are in job-claim.ts, completions in
 * job-complete.ts.
 */
import type { Clock } from "../../core/clock.js";
import { InvalidStateError } from "../../core/errors.js";
import type { EnqueueItem, EnqueueResult, NextJob } from "../../core/types.js";
import { dueAt, prepareItem as prepare, type PreparedItem } from "../common.js";
import type { Db, Queryable } from "./db.js";
import type { FlowStatements } from "./flow.js";
import type { JobStatements } from "./jobs-sql.js";
import { rowToJob, type JobRow } from "./rows.js";

/** What the job verbs need from the store. */
export interface JobContext {
  db: Db;
  sql: JobStatements;
  clock: Clock;
  /** The NOTIFY channel of this schema. */
  channel: string;
  maxPayload: number;
  defaultAttempts: number;
  /** Each queue's maxStalls, stamped on the jobs enqueued to it. */
  queueMaxStalls?: Record<string, number>;
  /** Each queue's onDuplicate (StoreOptions). */
  queueOnDuplicate?: Record<string, "keep" | "replace">;
  /** Each queue's group.by (StoreOptions). */
  queueGroupBy?: Record<string, string>;
  flow: FlowStatements;
}

/**
 * PostgreSQL text cannot hold NUL characters; they become U+FFFD rather than failing the
 * whole write (an error message or a rejected line from a binary file may carry one).
 */
export function pgText(s: string): string;
export function pgText(s: string | null): string | null;
export function pgText(s: string | null): string | null {
  return s === null || !s.includes("\0") ? s : s.replace(/\0/g, "\uFFFD");
}

/** Validates and encodes an enqueue item (throws before anything is written). */
export function prepareItem(ctx: JobContext, item: EnqueueItem | NextJob): PreparedItem {
  return prepare(item, ctx, pgText);
}

/** Where a new job goes: waiting when due now, else scheduled for its run time. */
export function placement(it: PreparedItem, now: number): { state: "scheduled" | "waiting"; runAt: number } {
  const runAt = dueAt({ runAt: it.runAt, delayMs: it.delayMs }, now);
  return { state: runAt > now ? "scheduled" : "waiting", runAt };
}

/** One job: a single statement; a lost race on its key (zero rows) is simply tried again. */
export async function enqueueOne(ctx: JobContext, it: PreparedItem): Promise<EnqueueResult> {
  for (let round = 0; ; round++) {
    if (round > 10) throw keysChurning();
    const now = ctx.clock.now();
    const { state, runAt } = placement(it, now);
    const s = it.key === null ? ctx.sql.enqueuePlain : ctx.sql.enqueueOne;
    const rows = await ctx.db.query<JobRow & { created: boolean }>(
      s.text,
      [it.queue, state, it.key, it.payload, it.maxAttempts, it.priority, runAt, it.parentId, it.rootId, it.source, now, it.maxStalls, it.grp],
      s.name,
    );
    const row = rows[0];
    if (row) return row.created || !it.replace ? { job: rowToJob(row), created: row.created } : replacePayload(ctx, ctx.db, row, it);
  }
}

/** `onDuplicate: replace`: the live job holding the key takes the payload if it has not started. */
async function replacePayload(ctx: JobContext, q: Queryable, row: JobRow, it: PreparedItem): Promise<EnqueueResult> {
  const updated = await q.query<JobRow>(ctx.flow.replacePayload, [row.id, it.payload, it.grp]);
  return updated[0] ? { job: rowToJob(updated[0]), created: false, replaced: true } : { job: rowToJob(row), created: false };
}

function keysChurning(): Error {
  return new InvalidStateError("enqueue: the live job holding this idempotency key kept changing; try again");
}

/** Whether an inserted row is the one made for `it` (rows come back in item order). */
export function isRowOf(row: JobRow | undefined, it: PreparedItem): boolean {
  return row !== undefined && row.key === it.key && row.queue === it.queue;
}

/**
 * Inserts items in order inside the caller's transaction; an item whose key a live job
 * holds (already, or from earlier in this batch) gets that job with `created: false`.
 */
export async function insertItems(
  ctx: JobContext,
  q: Queryable,
  items: PreparedItem[],
  now: number,
): Promise<EnqueueResult[]> {
  const out: (EnqueueResult | undefined)[] = new Array(items.length);
  let pending = items.map((_, i) => i);
  // Each round settles every item unless a key holder died between two statements.
  for (let round = 0; pending.length > 0; round++) {
    if (round > 10) throw keysChurning();
    const batch = pending.map((i) => items[i]!);
    const cols = batch.map((it) => ({ ...it, ...placement(it, now) }));
    const s = batch.every((it) => it.key === null) ? ctx.sql.insertPlain : ctx.sql.insertMany;
    const rows = await q.query<JobRow>(
      s.text,
      [
        cols.map((c) => c.queue),
        cols.map((c) => c.state),
        cols.map((c) => c.key),
        cols.map((c) => c.payload),
        cols.map((c) => c.maxAttempts),
        cols.map((c) => c.priority),
        cols.map((c) => c.runAt),
        cols.map((c) => c.parentId),
        cols.map((c) => c.rootId),
        cols.map((c) => c.source),
        now,
        cols.map((c) => c.maxStalls),
        cols.map((c) => c.grp),
      ],
      s.name,
    );
    rows.sort((a, b) => a.id - b.id);
    const skipped: number[] = [];
    let k = 0;
    for (const i of pending) {
      if (isRowOf(rows[k], items[i]!)) out[i] = { job: rowToJob(rows[k++]!), created: true };
      else skipped.push(i);
    }
    if (skipped.length === 0) break;
    const keys = [...new Set(skipped.map((i) => items[i]!.key!))];
    const live = new Map(
      (await q.query<JobRow>(ctx.sql.byKeys.text, [keys], ctx.sql.byKeys.name)).map((r) => [r.key!, r]),
    );
    pending = [];
    for (const i of skipped) {
      const row = live.get(items[i]!.key!);
      if (row) out[i] = items[i]!.replace ? await replacePayload(ctx, q, row, items[i]!) : { job: rowToJob(row), created: false };
      else pending.push(i);
    }
  }
  return out as EnqueueResult[];
}

/** Many jobs, all or none: one statement when no item has a key, else a short transaction. */
export async function enqueueMany(ctx: JobContext, items: PreparedItem[]): Promise<EnqueueResult[]> {
  if (items.length === 0) return [];
  const now = ctx.clock.now();
  if (items.every((it) => it.key === null)) return insertItems(ctx, ctx.db, items, now);
  return ctx.db.tx((q) => insertItems(ctx, q, items, now));
}
