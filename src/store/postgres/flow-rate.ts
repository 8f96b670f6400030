/**
 * The claim of queues whose only flow control is their own `rate`, in one statement (see
 * ../flow.ts for the arithmetic, flow.ts for queues with a `limit` or a `group`).
 *
 * The queue's recent starts are kept in its row of `queues` (`start_at`, `start_n`), so the
 * statement that leases the jobs can also spend the window: its UPDATE of that row waits
 * for any other claimer holding it and then sees the row's newest version, starts
 * included (a read of another table in the same statement would still see the snapshot
 * taken before the wait). The jobs are picked and locked first (`SKIP LOCKED`, up to the
 * number asked), the row then takes `least(picked, room)` and records it, and only that
 * many of the picked jobs are leased. The row's lock is held from that UPDATE to the
 * commit, inside the server: no round trip of the client's is spent holding it.
 *
 * A claim's time is never earlier than the newest start in the row, so the order the row's
 * lock grants claims in is also their order in time, and the pruning of one claim never
 * drops a start a later claim still counts.
 */
import { allowance, longestInterval, START_SLACK_MS } from "../flow.js";
import type { ClaimRequest, QueueFlow } from "../store.js";
import type { Queryable } from "./db.js";
import { type ClaimParams, completionCtes, COMPLETIONS, DB_NOW, missedIds, rowsAndOneAggregate, SERVER_MS, stmt, type Stmt } from "./jobs-sql.js";
import { jobColumns, type JobRow } from "./rows.js";

/** Where the rate claim finds its arguments: a claim's (jobs-sql.ts), and the windows. */
interface RateParams extends ClaimParams {
  /** Per queue: the rate's count, its window (interval and start slack), the longest window kept; null without flow control. */
  cap: number;
  span: number;
  keep: number;
}

/**
 * The CTEs of the rate claim; the last, `claimed`, returns the leased rows, and `spent`
 * each rate-limited queue's row after the claim. A queue of the claim without flow control
 * (its cap null) is claimed as by the plain claim (jobs-sql.ts), its row left alone.
 * `commitMode` is a condition on each request row, as there.
 */
function rateClaimCtes(S: string, p: RateParams, commitMode: string): string {
  const due = "state IN ('waiting', 'scheduled', 'failed')";
  // The window's starts after this claim, and how many it takes: at most the jobs picked,
  // at most the room the window has (none while paused). Starts older than `keep` are pruned.
  const spend = `SELECT CASE WHEN k.take > 0 THEN k.ats || k.now ELSE k.ats END,
        CASE WHEN k.take > 0 THEN k.ns || k.take ELSE k.ns END, k.take
      FROM (SELECT w.now,
          coalesce(array_agg(u.a ORDER BY u.a) FILTER (WHERE u.a > w.now - r.keep), '{}') AS ats,
          coalesce(array_agg(u.n ORDER BY u.a) FILTER (WHERE u.a > w.now - r.keep), '{}') AS ns,
          CASE WHEN q.paused THEN 0 ELSE least((SELECT count(*) FROM picked p WHERE p.queue = q.name),
            greatest(0, r.cap - coalesce(sum(u.n) FILTER (WHERE u.a > w.now - r.span), 0)))::int END AS take
        FROM (SELECT greatest(${DB_NOW}, coalesce((SELECT max(x) FROM unnest(q.start_at) x), 0)) AS now) w
        LEFT JOIN unnest(q.start_at, q.start_n) AS u(a, n) ON true
        GROUP BY w.now) k`;
  // A paused queue without flow control is left out here; a rate-limited one reads paused
  // from its row, which it locks. One a handler's ctx.rateLimited holds is left out.
  return `req AS (
      SELECT * FROM unnest($${p.queues}::text[], $${p.counts}::int[], $${p.cap}::int[], $${p.span}::bigint[], $${p.keep}::bigint[])
        AS r(queue, n, cap, span, keep)
      WHERE ${commitMode}
        AND NOT EXISTS (SELECT 1 FROM ${S}.queue_holds h WHERE h.queue = r.queue AND h.grp = '' AND h.until > ${DB_NOW})
        AND (r.cap IS NOT NULL OR NOT EXISTS (SELECT 1 FROM ${S}.queues qs WHERE qs.name = r.queue AND qs.paused))
    ), picked AS (
      SELECT c.ctid, req.queue, row_number() OVER (PARTITION BY req.queue ORDER BY c.priority DESC, c.run_at, c.id) AS rn
      FROM req CROSS JOIN LATERAL (
        SELECT ctid, priority, run_at, id FROM ${S}.jobs
        WHERE queue = req.queue AND ${due} AND run_at <= $${p.now}::bigint
        ORDER BY priority DESC, run_at, id
        LIMIT req.n
        FOR UPDATE SKIP LOCKED
      ) c
    ), spent AS (
      UPDATE ${S}.queues q SET (start_at, start_n, took) = (${spend})
      FROM req r WHERE q.name = r.queue AND r.cap IS NOT NULL
      RETURNING q.name, q.paused, q.took, q.start_at, q.start_n, ${DB_NOW} AS now
    ), claimed AS (
      UPDATE ${S}.jobs j SET state = 'active', token = $${p.prefix}::text || j.id, worker_id = $${p.worker}::text,
        attempt = j.attempt + 1, started_at = $${p.now}::bigint, lease_until = ${SERVER_MS} + $${p.leaseMs}::bigint
      WHERE j.ctid = ANY (ARRAY(SELECT p.ctid FROM picked p JOIN req r ON r.queue = p.queue LEFT JOIN spent s ON s.name = p.queue
        WHERE r.cap IS NULL OR p.rn <= s.took))
      RETURNING ${jobColumns("j")}
    )`;
}

const SPENT_AGG = "coalesce(json_agg(json_build_array(name, paused, took, start_at, start_n, now)), '[]')";

/** The rate claim alone: $1-$6 as the plain claim, $7-$9 the windows, $10 synchronous_commit. */
function rateClaimSql(S: string): string {
  const p: RateParams = { queues: 1, counts: 2, now: 3, worker: 4, leaseMs: 5, prefix: 6, cap: 7, span: 8, keep: 9 };
  return `WITH ${rateClaimCtes(S, p, "set_config('synchronous_commit', $10::text, true) IS NOT NULL")}
    ${rowsAndOneAggregate("claimed", "spent", { spent: SPENT_AGG })}`;
}

/**
 * Completions and the rate claim in one statement (as `completeAndClaim` in jobs-sql.ts
 * for queues without flow control): one round trip and one commit, which waits for the
 * disk for the completions' sake. $1-$4 the completions, $5-$12 the claim. The queue's row
 * stays locked until that commit, the disk's wait included; claimers of the queue take
 * their turns through it, as they do through the row alone.
 */
function completeAndRateClaimSql(S: string): string {
  const p: RateParams = { queues: 5, counts: 6, now: 4, worker: 7, leaseMs: 8, prefix: 9, cap: 10, span: 11, keep: 12 };
  // The completions first (missed_ids reads them), then the queue's row (spent): the row is
  // locked for the claim and the commit only, not for the completions too.
  return `WITH ${completionCtes(S, COMPLETIONS)}, ${rateClaimCtes(S, p, "true")}
    ${rowsAndOneAggregate("claimed", "(SELECT 1) AS one", { missed_ids: missedIds(COMPLETIONS), spent: `(SELECT ${SPENT_AGG} FROM spent)` })}`;
}

export function rateStatements(S: string): { rateClaim: Stmt; completeAndRateClaim: Stmt } {
  return { rateClaim: stmt(rateClaimSql(S)), completeAndRateClaim: stmt(completeAndRateClaimSql(S)) };
}

/** Whether every flow-controlled queue of a claim has only a rate (the one-statement claim). */
export function rateOnlyClaim(req: ClaimRequest, names: string[]): boolean {
  return names.every((n) => {
    const f = req.flow?.[n];
    return f === undefined || (f.rate !== undefined && f.limit === undefined && f.group === undefined);
  });
}

type SpentRow = [name: string, paused: boolean, took: number, at: number[], n: number[], now: number];

/** Completions to send ahead of the claim, as the arrays of `completionCtes` (jobs-sql.ts). */
export interface RateCompletions {
  ids: number[];
  tokens: string[];
  results: string[];
}

/**
 * Leases due jobs of rate-only queues, and of queues without flow control asked for with
 * them, in one statement (see the file comment); with `done`, that statement also
 * completes those jobs first, and its commit waits for the disk. Returns the rows, the
 * ids of `done` not completed (their lease was lost), and the rate-limited queues it could
 * not serve: no row in `queues` yet, or held by a handler's `ctx.rateLimited`; the caller
 * claims those under their row's lock (flow.ts), which also makes the row and reports the
 * hold. Holds by the rate itself go to `req.onHold`, and `heldState` records the last one.
 */
export async function rateClaim(
  q: Queryable,
  statements: { rateClaim: Stmt; completeAndRateClaim: Stmt; heldState: string },
  req: ClaimRequest,
  a: { names: string[]; counts: number[]; now: number; leaseMs: number; workerId: string; prefix: string; stamp(): void },
  durable: boolean,
  done?: RateCompletions,
): Promise<{ rows: JobRow[]; rest: string[]; missed: number[] }> {
  const flows = a.names.map((n) => req.flow?.[n]);
  const windows = [
    flows.map((f) => f?.rate?.count ?? null),
    flows.map((f) => (f?.rate ? f.rate.intervalMs + START_SLACK_MS : null)),
    flows.map((f) => (f ? longestInterval(f) : null)),
  ];
  const claim = [a.names, a.counts, a.workerId, a.leaseMs, a.prefix, ...windows];
  const s = done ? statements.completeAndRateClaim : statements.rateClaim;
  // The claim's time is read once the statement holds its connection (job-claim.ts, stamped).
  const rows = await q.query<JobRow & { spent: SpentRow[] | null; missed_ids?: number[] | null }>(
    s.text,
    () => {
      a.stamp();
      return done
        ? [done.ids, done.tokens, done.results, a.now, ...claim]
        : [a.names, a.counts, a.now, ...claim.slice(2), durable ? "on" : "off"];
    },
    s.name,
  );
  const agg = rows.find((r) => r.spent !== null);
  const served = new Set<string>();
  for (const [name, paused, took, at, n, rowNow] of agg?.spent ?? []) {
    served.add(name);
    if (paused) continue;
    const i = a.names.indexOf(name);
    // The starts before this claim, and its time (its own start's, when it took any).
    const count = took > 0 ? at.length - 1 : at.length;
    const now = took > 0 ? Number(at[count]) : Number(rowNow);
    const before = at.slice(0, count).map((t, k) => ({ at: Number(t), n: n[k]! }));
    const { hold } = allowance(`queue ${name}`, a.counts[i]!, flows[i] as QueueFlow, { active: 0, starts: before }, now);
    if (hold) {
      req.onHold?.(name, hold.until === null ? null : hold.until - Number(rowNow) + Date.now(), hold.reason);
      await q.query(statements.heldState, [name, Number(rowNow), hold.reason]);
    }
  }
  return {
    rows: rows.filter((r) => r.id !== null),
    rest: a.names.filter((n) => flows[a.names.indexOf(n)] !== undefined && !served.has(n)),
    // No aggregate row would mean nothing is known to have completed.
    missed: agg ? (agg.missed_ids ?? []) : (done?.ids ?? []),
  };
}
