/**
 * The job verbs that write. Inputs are validated and encoded before anything is sent, so a
 * bad payload or queue name is refused with nothing written. The hot paths are single
 * statements over arrays (one round trip for a whole batch); statements that may need a
 * second look (a key already held) run in a transaction.
 */
import type { Clock } from "../../core/clock.js";
import { InvalidStateError, LeaseLostError } from "../../core/errors.js";
import type { EnqueueItem, EnqueueResult, Job, Lease, NextJob } from "../../core/types.js";
import { dueAt, encodeJson, newToken, prepareItem as prepare, prepareNext, type PreparedItem } from "../common.js";
import type { ClaimRequest, CompleteAndClaimResult, CompleteItem, CompleteOutcome } from "../store.js";
import type { Db, Queryable } from "./db.js";
import { flowClaim, type FlowStatements } from "./flow.js";
import { rateClaim, rateOnlyClaim } from "./flow-rate.js";
import type { JobStatements, Stmt } from "./jobs-sql.js";
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

function placement(it: PreparedItem, now: number): { state: "scheduled" | "waiting"; runAt: number } {
  const runAt = dueAt({ runAt: it.runAt, delayMs: it.delayMs }, now);
  return { state: runAt > now ? "scheduled" : "waiting", runAt };
}

/** One job: a single statement; a lost race on its key (zero rows) is simply tried again. */
export async function enqueueOne(ctx: JobContext, it: PreparedItem): Promise<EnqueueResult> {
  for (let round = 0; ; round++) {
    if (round > 10) throw keysChurning();
    const now = ctx.clock.now();
    const { state, runAt } = placement(it, now);
    const rows = await ctx.db.query<JobRow & { created: boolean }>(
      ctx.sql.enqueueOne.text,
      [it.queue, state, it.key, it.payload, it.maxAttempts, it.priority, runAt, it.parentId, it.rootId, it.source, now, it.maxStalls, it.grp],
      ctx.sql.enqueueOne.name,
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
function isRowOf(row: JobRow | undefined, it: PreparedItem): boolean {
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
    const rows = await q.query<JobRow>(
      ctx.sql.insertMany.text,
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
      ctx.sql.insertMany.name,
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

/** A claim's arguments: the queues asked for (in request order) and what the rows get. */
interface ClaimArgs {
  names: string[];
  counts: number[];
  now: number;
  /** Sent: the server sets each deadline by its own clock (SERVER_MS in jobs-sql.ts). */
  leaseMs: number;
  /**
   * The deadline the claimer is told, by its own clock read before sending: no later than
   * the server's, clocks agreeing (the server's runs from when the statement arrived).
   */
  leaseUntil: number;
  workerId: string;
  /** One random prefix per claim; a job's token is the prefix and its id. */
  prefix: string;
}

/** The claim's arguments, or null when no queue has room. */
function claimArgs(ctx: JobContext, req: ClaimRequest): ClaimArgs | null {
  const names: string[] = [];
  const counts: number[] = [];
  for (const [queue, max] of Object.entries(req.queues)) {
    if (!(max > 0)) continue;
    names.push(queue);
    counts.push(Math.trunc(Math.min(max, 1_000_000)));
  }
  if (names.length === 0) return null;
  const now = ctx.clock.now();
  // Still unguessable (122 random bits), and unique per attempt: a claim's prefix is new.
  const leaseMs = Math.max(0, Math.trunc(req.leaseMs));
  return { names, counts, now, leaseMs, leaseUntil: now + leaseMs, workerId: pgText(req.workerId), prefix: `${newToken()}:` };
}

/** Leased rows as leases, in claim order (priority, then due time, then id). */
function toLeases(rows: JobRow[], a: ClaimArgs, workerId: string): Lease[] {
  const order = (x: JobRow, y: JobRow) => y.priority - x.priority || x.run_at - y.run_at || x.id - y.id;
  // Rows usually come back in claim order already (a fresh table's physical order is its
  // id order): checking costs one pass, sorting a thousand rows ten thousand calls.
  let sorted = true;
  for (let i = 1; i < rows.length && sorted; i++) sorted = order(rows[i - 1]!, rows[i]!) <= 0;
  if (!sorted) rows.sort(order);
  return rows.map((r) => ({ jobId: r.id, token: r.token!, workerId, leaseUntil: a.leaseUntil, job: rowToJob(r) }));
}

/**
 * Leases due jobs for every requested queue in one statement: on its own (`claim`, which
 * commits without waiting for the disk), or inside a caller's transaction (`claimDurable`).
 */
export async function claim(
  ctx: JobContext,
  req: ClaimRequest,
  q: Queryable = ctx.db,
  s: Stmt = ctx.sql.claim,
): Promise<Lease[]> {
  const a = claimArgs(ctx, req);
  if (!a) return [];
  if (hasFlow(req)) {
    const own = q === ctx.db;
    const d = ctx.sql.claimDurable;
    const plain = (t: Queryable) => (names: string[], counts: number[]) =>
      t.query<JobRow>(d.text, [names, counts, a.now, a.workerId, a.leaseMs, a.prefix], d.name);
    let rows: JobRow[] = [];
    let locked = a;
    if (rateOnlyClaim(req, a.names)) {
      // Queues with only a rate, and those without flow control: one statement (flow-rate.ts).
      const r = await rateClaim(q, ctx.flow, req, a, !own);
      rows = r.rows;
      if (r.rest.length === 0) return toLeases(rows, a, req.workerId);
      locked = pick(a, (n) => r.rest.includes(n));
    }
    // The others are claimed in a transaction holding their queues' rows (flow.ts).
    const run = (t: Queryable) => flowClaim(ctx.flow, t, req, locked, plain(t), !own);
    rows.push(...(own ? await ctx.db.tx(run) : await run(q)));
    return toLeases(rows, a, req.workerId);
  }
  const rows = await q.query<JobRow>(s.text, [a.names, a.counts, a.now, a.workerId, a.leaseMs, a.prefix], s.name);
  return toLeases(rows, a, req.workerId);
}

/** The claim's arguments for only the queues `keep` accepts. */
function pick(a: ClaimArgs, keep: (name: string) => boolean): ClaimArgs {
  const names: string[] = [];
  const counts: number[] = [];
  a.names.forEach((n, i) => {
    if (!keep(n)) return;
    names.push(n);
    counts.push(a.counts[i]!);
  });
  return { ...a, names, counts };
}

/** Whether a claim asks for a queue under flow control. */
function hasFlow(req: ClaimRequest): boolean {
  if (!req.flow) return false;
  for (const name in req.queues) if (req.flow[name] && req.queues[name]! > 0) return true;
  return false;
}

/**
 * Extends leases by `leaseMs` from the server's time; returns the ids whose token no
 * longer holds, and the new deadline by this client's clock read before sending.
 */
export async function renewMany(
  ctx: JobContext,
  leases: { jobId: number; token: string }[],
  leaseMs: number,
): Promise<{ lost: number[]; leaseUntil: number }> {
  leaseMs = Math.max(0, Math.trunc(leaseMs));
  const leaseUntil = ctx.clock.now() + leaseMs;
  if (leases.length === 0) return { lost: [], leaseUntil };
  // Rows are locked in id order by every batch statement, so two batches never deadlock.
  leases = [...leases].sort((a, b) => a.jobId - b.jobId);
  const rows = await ctx.db.query<{ id: number; token: string }>(
    ctx.sql.renewMany.text,
    [leases.map((l) => l.jobId), leases.map((l) => String(l.token)), leaseMs],
    ctx.sql.renewMany.name,
  );
  // By id and token: a stale copy of a lease is lost even when the current one renewed.
  const kept = new Set(rows.map((r) => `${r.id}:${r.token}`));
  return { lost: leases.filter((l) => !kept.has(`${l.jobId}:${l.token}`)).map((l) => l.jobId), leaseUntil };
}

type PreparedCompletion = { result: string; next: PreparedItem[] } | { error: Error };

/**
 * Group commit: every completion and every next-stage job in one statement. Each item is
 * checked on its own (a stale token fails that item only). Next jobs with a key need a
 * second look when the key is already held, so such batches run in a transaction.
 */
export async function completeMany(ctx: JobContext, items: CompleteItem[]): Promise<CompleteOutcome[]> {
  const { prepared, send, keyed } = planCompletions(ctx, items);
  const run = (q: Queryable) => runCompletions(ctx, q, items, prepared, send);
  const result = send.length === 0 ? NOTHING_DONE : keyed ? await ctx.db.tx(run) : await run(ctx.db);
  return outcomesOf(items, prepared, result);
}

/**
 * `completeMany` then a claim, in one transaction and so one commit (which waits for the
 * disk, for the completions' sake). The claim sees the next-stage jobs just created.
 */
export async function completeAndClaim(
  ctx: JobContext,
  items: CompleteItem[],
  req: ClaimRequest | null,
): Promise<CompleteAndClaimResult> {
  const { prepared, send } = planCompletions(ctx, items);
  const hasNext = send.some((i) => (prepared[i] as { next: PreparedItem[] }).next.length > 0);
  if (req && send.length > 0 && !hasNext && (!hasFlow(req) || rateOnlyClaim(req, Object.keys(req.queues)))) {
    return completeAndClaimAtOnce(ctx, items, prepared, send, req);
  }
  if (!hasNext) {
    // One half is empty: the other alone is one statement already.
    const result = send.length === 0 ? NOTHING_DONE : await runCompletions(ctx, ctx.db, items, prepared, send);
    const leases = req ? await claim(ctx, req) : [];
    return { outcomes: outcomesOf(items, prepared, result), leases };
  }
  return ctx.db.tx(async (q) => {
    const result = await runCompletions(ctx, q, items, prepared, send);
    const leases = req ? await claim(ctx, req, q, ctx.sql.claimDurable) : [];
    return { outcomes: outcomesOf(items, prepared, result), leases };
  });
}

/**
 * Completions (none with next-stage jobs) and a claim in one statement: one round trip.
 * With flow control (only rates, see flow-rate.ts) a queue that statement could not serve
 * is claimed after it.
 */
async function completeAndClaimAtOnce(
  ctx: JobContext,
  items: CompleteItem[],
  prepared: PreparedCompletion[],
  send: number[],
  req: ClaimRequest,
): Promise<CompleteAndClaimResult> {
  const a = claimArgs(ctx, req);
  // No queue with room: the claim is empty and the completions go alone.
  const args = a ?? { names: [], counts: [], now: ctx.clock.now(), leaseMs: 0, leaseUntil: 0, workerId: "", prefix: "" };
  const sent = {
    ids: send.map((i) => items[i]!.lease.jobId),
    tokens: send.map((i) => String(items[i]!.lease.token)),
    results: send.map((i) => (prepared[i] as { result: string }).result),
  };
  let run: { rows: JobRow[]; rest: string[]; missed: number[] };
  if (a && hasFlow(req)) run = await rateClaim(ctx.db, ctx.flow, req, a, true, sent);
  else {
    const s = ctx.sql.completeAndClaim;
    const rows = await ctx.db.query<JobRow & { missed_ids: number[] | null }>(
      s.text,
      [sent.ids, sent.tokens, sent.results, args.now, args.names, args.counts, args.workerId, args.leaseMs, args.prefix],
      s.name,
    );
    const agg = rows.find((r) => r.missed_ids !== null);
    // No aggregate row would mean nothing is known to have completed.
    run = { rows: rows.filter((r) => r.id !== null), rest: [], missed: agg ? agg.missed_ids! : sent.ids };
  }
  const missed = new Set(run.missed);
  const done = new Set(send.filter((i) => !missed.has(items[i]!.lease.jobId)));
  const leases = toLeases(run.rows, args, req.workerId);
  if (run.rest.length > 0) {
    leases.push(...(await claim(ctx, { ...req, queues: Object.fromEntries(run.rest.map((n) => [n, req.queues[n]!])) })));
  }
  return { outcomes: outcomesOf(items, prepared, { done, nextJobs: new Map() }), leases };
}

interface CompletionRun {
  done: Set<number>;
  nextJobs: Map<number, Job[]>;
}

const NOTHING_DONE: CompletionRun = { done: new Set(), nextJobs: new Map() };

function outcomesOf(items: CompleteItem[], prepared: PreparedCompletion[], run: CompletionRun): CompleteOutcome[] {
  return items.map((it, i): CompleteOutcome => {
    const p = prepared[i]!;
    if ("error" in p) return { ok: false, error: p.error };
    if (!run.done.has(i)) return { ok: false, error: new LeaseLostError(it.lease.jobId) };
    return { ok: true, next: run.nextJobs.get(i) ?? [] };
  });
}

/** Encodes each item (a bad one fails alone) and picks, in id order, the items to send. */
function planCompletions(ctx: JobContext, items: CompleteItem[]) {
  const prepared = items.map((it): PreparedCompletion => {
    try {
      return {
        result: encodeJson(it.result, ctx.maxPayload, "result"),
        next: prepareNext(it.next, ctx, pgText),
      };
    } catch (error) {
      return { error: error as Error };
    }
  });
  // The same job twice in one batch: only its first completion can win.
  const seen = new Set<number>();
  const send: number[] = [];
  prepared.forEach((p, i) => {
    const id = items[i]!.lease.jobId;
    if ("error" in p || seen.has(id)) return;
    seen.add(id);
    send.push(i);
  });
  // Rows are locked in id order by every batch statement, so two batches never deadlock.
  send.sort((a, b) => items[a]!.lease.jobId - items[b]!.lease.jobId);
  const keyed = send.some((i) => (prepared[i] as { next: PreparedItem[] }).next.some((n) => n.key !== null));
  return { prepared, send, keyed };
}

async function runCompletions(
  ctx: JobContext,
  q: Queryable,
  items: CompleteItem[],
  prepared: PreparedCompletion[],
  send: number[],
): Promise<CompletionRun> {
  const now = ctx.clock.now();
  const flat: { item: number; parentId: number; it: PreparedItem }[] = [];
  for (const i of send) {
    for (const it of (prepared[i] as { next: PreparedItem[] }).next) flat.push({ item: i, parentId: items[i]!.lease.jobId, it });
  }
  const next = flat.map((f) => ({ ...f, ...placement(f.it, now) }));
  const s: Stmt = ctx.sql.completeMany;
  const rows = await q.query<JobRow & { done_ids: number[] | null; done_roots: number[] }>(
    s.text,
    [
      send.map((i) => items[i]!.lease.jobId),
      send.map((i) => String(items[i]!.lease.token)),
      send.map((i) => (prepared[i] as { result: string }).result),
      now,
      next.map((n) => n.parentId),
      next.map((n) => n.it.queue),
      next.map((n) => n.state),
      next.map((n) => n.it.key),
      next.map((n) => n.it.priority),
      next.map((n) => n.it.maxAttempts),
      next.map((n) => n.runAt),
      next.map((n) => n.it.payload),
      next.map((n) => n.it.maxStalls),
      next.map((n) => n.it.grp),
    ],
    s.name,
  );
  const agg = rows.find((r) => r.done_ids !== null);
  const roots = new Map((agg?.done_ids ?? []).map((id, j) => [id, agg!.done_roots[j]!]));
  const done = new Set(send.filter((i) => roots.has(items[i]!.lease.jobId)));
  // Created rows come back in the order their specs were given (ids ascend with it).
  const created = rows.filter((r) => r.id !== null).sort((a, b) => a.id - b.id);
  const wanted = next.filter((n) => done.has(n.item));
  const jobs: (Job | undefined)[] = new Array(wanted.length);
  const skipped: number[] = [];
  let k = 0;
  wanted.forEach((n, w) => {
    if (isRowOf(created[k], n.it)) jobs[w] = rowToJob(created[k++]!);
    else skipped.push(w);
  });
  if (skipped.length > 0) {
    // Keys already held: the live holders are the next jobs, as a plain enqueue returns them.
    const rest = await insertItems(
      ctx,
      q,
      skipped.map((w) => {
        const n = wanted[w]!;
        return { ...n.it, runAt: n.runAt, delayMs: undefined, parentId: n.parentId, rootId: roots.get(n.parentId)! };
      }),
      now,
    );
    skipped.forEach((w, j) => (jobs[w] = rest[j]!.job));
  }
  const nextJobs = new Map<number, Job[]>();
  wanted.forEach((n, w) => {
    const list = nextJobs.get(n.item);
    if (list) list.push(jobs[w]!);
    else nextJobs.set(n.item, [jobs[w]!]);
  });
  return { done, nextJobs };
}
