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
import { DB_NOW, rowsAndOneAggregate, SERVER_MS } from "./jobs-sql.js";
import { jobColumns, type JobRow } from "./rows.js";

export function rateClaimSql(S: string): string {
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
  const claimed = `WITH req AS (
      SELECT * FROM unnest($1::text[], $2::int[], $7::int[], $8::bigint[], $9::bigint[]) AS r(queue, n, cap, span, keep)
      WHERE set_config('synchronous_commit', $10::text, true) IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM ${S}.queue_holds h WHERE h.queue = r.queue AND h.grp = '' AND h.until > ${DB_NOW})
    ), picked AS (
      SELECT c.ctid, req.queue, row_number() OVER (PARTITION BY req.queue ORDER BY c.priority DESC, c.run_at, c.id) AS rn
      FROM req CROSS JOIN LATERAL (
        SELECT ctid, priority, run_at, id FROM ${S}.jobs
        WHERE queue = req.queue AND ${due} AND run_at <= $3::bigint
        ORDER BY priority DESC, run_at, id
        LIMIT req.n
        FOR UPDATE SKIP LOCKED
      ) c
    ), spent AS (
      UPDATE ${S}.queues q SET (start_at, start_n, took) = (${spend})
      FROM req r WHERE q.name = r.queue
      RETURNING q.name, q.paused, q.took, q.start_at, q.start_n, ${DB_NOW} AS now
    ), claimed AS (
      UPDATE ${S}.jobs j SET state = 'active', token = $6::text || j.id, worker_id = $4::text,
        attempt = j.attempt + 1, started_at = $3::bigint, lease_until = ${SERVER_MS} + $5::bigint
      WHERE j.ctid = ANY (ARRAY(SELECT p.ctid FROM picked p JOIN spent s ON s.name = p.queue WHERE p.rn <= s.took))
      RETURNING ${jobColumns("j")}
    )`;
  return `${claimed} ${rowsAndOneAggregate("claimed", "spent", {
    spent: "coalesce(json_agg(json_build_array(name, paused, took, start_at, start_n, now)), '[]')",
  })}`;
}

/** Whether every flow-controlled queue of a claim has only a rate (the one-statement claim). */
export function rateOnlyClaim(req: ClaimRequest, names: string[]): boolean {
  return names.every((n) => {
    const f = req.flow?.[n];
    return f === undefined || (f.rate !== undefined && f.limit === undefined && f.group === undefined);
  });
}

type SpentRow = [name: string, paused: boolean, took: number, at: number[], n: number[], now: number];

/**
 * Leases due jobs of rate-only queues in one statement (see the file comment). Returns the
 * rows and the queues it could not serve: no row in `queues` yet, or held by a handler's
 * `ctx.rateLimited`; the caller claims those under their row's lock (flow.ts), which also
 * makes the row and reports the hold. Holds by the rate itself go to `req.onHold`, and
 * `heldState` records the last one.
 */
export async function rateClaim(
  q: Queryable,
  statements: { rateClaim: string; heldState: string },
  req: ClaimRequest,
  a: { names: string[]; counts: number[]; now: number; leaseMs: number; workerId: string; prefix: string },
  durable: boolean,
): Promise<{ rows: JobRow[]; rest: string[] }> {
  const flows = a.names.map((n) => req.flow![n]!);
  const rows = await q.query<JobRow & { spent: SpentRow[] | null }>(statements.rateClaim, [
    a.names, a.counts, a.now, a.workerId, a.leaseMs, a.prefix,
    flows.map((f) => f.rate!.count),
    flows.map((f) => f.rate!.intervalMs + START_SLACK_MS),
    flows.map((f) => longestInterval(f)),
    durable ? "on" : "off",
  ]);
  const spent = rows.find((r) => r.spent !== null)?.spent ?? [];
  const served = new Set<string>();
  for (const [name, paused, took, at, n, rowNow] of spent) {
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
  return { rows: rows.filter((r) => r.id !== null), rest: a.names.filter((n) => !served.has(n)) };
}
