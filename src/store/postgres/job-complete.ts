/**
 * Completions: group commit of a batch of completions with their next-stage jobs in one
 * statement, each item checked on its own (a stale token fails that item only), and
 * `completeAndClaim`, completions and the next claim in one commit. A completed job moves
 * from `jobs` to `job_history` in that statement, keeping its key (jobs-sql.ts).
 */
import { LeaseLostError } from "../../core/errors.js";
import type { Job } from "../../core/types.js";
import { encodeJson, prepareNext, type PreparedItem } from "../common.js";
import type { CompleteAndClaimResult, CompleteItem, CompleteOutcome, ClaimRequest } from "../store.js";
import type { Queryable } from "./db.js";
import { rateClaim, rateOnlyClaim } from "./flow-rate.js";
import { claim, claimArgs, hasFlow, stamped, toLeases } from "./job-claim.js";
import { insertItems, isRowOf, pgText, placement, type JobContext } from "./job-writes.js";
import type { Stmt } from "./jobs-sql.js";
import { rowToJob, type JobRow } from "./rows.js";

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
  const args = a ?? { names: [], counts: [], now: ctx.clock.now(), leaseMs: 0, leaseUntil: 0, workerId: "", prefix: "", stamp: () => {} };
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
      stamped(args, (b) => [sent.ids, sent.tokens, sent.results, b.now, b.names, b.counts, b.workerId, b.leaseMs, b.prefix]),
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
  const s: Stmt = next.some((n) => n.it.key !== null) ? ctx.sql.completeMany : ctx.sql.completeManyPlain;
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
