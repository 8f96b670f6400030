/**
 * Leasing: claims (one statement for every requested queue; queues under flow control in
 * flow.ts and flow-rate.ts) and lease renewals. A job's token is the claim's random
 * prefix and its id, so a stale copy of a lease never matches the current one.
 */
import type { Lease } from "../../core/types.js";
import { newToken } from "../common.js";
import type { ClaimRequest } from "../store.js";
import type { Queryable } from "./db.js";
import { flowClaim } from "./flow.js";
import { rateClaim, rateOnlyClaim } from "./flow-rate.js";
import { pgText, type JobContext } from "./job-writes.js";
import type { Stmt } from "./jobs-sql.js";
import { rowToJob, type JobRow } from "./rows.js";

/** A claim's arguments: the queues asked for (in request order) and what the rows get. */
export interface ClaimArgs {
  names: string[];
  counts: number[];
  /**
   * The claim's time, its jobs' `started_at`: read again by `stamp` once the claim holds
   * its connection, so a wait for the pool does not age it (see `stamped`).
   */
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
  /** Reads the clock into `now` and `leaseUntil` (see `stamped`). */
  stamp(): void;
}

/** The claim's arguments, or null when no queue has room. */
export function claimArgs(ctx: JobContext, req: ClaimRequest): ClaimArgs | null {
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
  const clock = ctx.clock;
  return {
    names,
    counts,
    now,
    leaseMs,
    leaseUntil: now + leaseMs,
    workerId: pgText(req.workerId),
    prefix: `${newToken()}:`,
    stamp() {
      this.now = clock.now();
      this.leaseUntil = this.now + this.leaseMs;
    },
  };
}

/**
 * The claim's values, its time read when they are built: passed to `Queryable.query` as a
 * function, which builds them once the statement holds its connection (db.ts).
 *
 * A worker gives back a rate-limited job it could not start within START_SLACK_MS of this
 * time (worker.ts). Read before a wait for a pooled connection, the wait alone (a busy pool,
 * under load) made whole claims late, given back unrun. Read after it, and before the
 * statement is sent, it is still no later than the time the database counts the claim's
 * starts at (the same clock), so a job that starts within the slack of it also starts
 * within the slack of its counted start, and the rate window holds.
 */
export function stamped(a: ClaimArgs, values: (a: ClaimArgs) => unknown[]): () => unknown[] {
  return () => {
    a.stamp();
    return values(a);
  };
}

/** Leased rows as leases, in claim order (priority, then due time, then id). */
export function toLeases(rows: JobRow[], a: ClaimArgs, workerId: string): Lease[] {
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
    let rows: JobRow[] = [];
    let locked = a;
    if (rateOnlyClaim(req, a.names)) {
      // Queues with only a rate, and those without flow control: one statement (flow-rate.ts).
      const r = await rateClaim(q, ctx.flow, req, a, !own);
      rows = r.rows;
      if (r.rest.length === 0) return toLeases(rows, a, req.workerId);
      locked = pick(a, (n) => r.rest.includes(n));
    }
    // The others are claimed in a transaction holding their queues' rows (flow.ts), its
    // time read inside it: after the wait for its connection, before the first statement.
    const run = (t: Queryable) => {
      locked.stamp();
      const plain = (names: string[], counts: number[]) =>
        t.query<JobRow>(d.text, [names, counts, locked.now, locked.workerId, locked.leaseMs, locked.prefix], d.name);
      return flowClaim(ctx.flow, t, req, locked, plain, !own);
    };
    rows.push(...(own ? await ctx.db.tx(run) : await run(q)));
    // Every lease told the earlier deadline when the claim took two steps: still no later than the server's.
    return toLeases(rows, a, req.workerId);
  }
  const rows = await q.query<JobRow>(s.text, stamped(a, (b) => [b.names, b.counts, b.now, b.workerId, b.leaseMs, b.prefix]), s.name);
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
export function hasFlow(req: ClaimRequest): boolean {
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
