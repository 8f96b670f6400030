/**
 * Flow control in the PostgreSQL store: paused queues and the budget of a queue with
 * `rate`, `limit` or `group` (see ../flow.ts). The fast claim (one statement, `SKIP
 * LOCKED`) cannot count what other claimers are taking at the same moment, so a claim for
 * a flow-controlled queue runs in a transaction that first locks the queue's row in
 * `queues`: claimers of that queue, on every host, take its budget one at a time, and each
 * sees the leases and starts of the one before. Windows are measured on the database's
 * clock, the one clock every host shares.
 */
import { allowance, byGroup, earlier, saturatedGroups, type StartRow, GROUP_PREFIX, GROUP_SCAN_FACTOR, GROUP_SCAN_MIN, groupStarts, longestInterval, pickGrouped, type Allowance } from "../flow.js";
import type { ClaimRequest, QueueFlow, QueueState } from "../store.js";
import type { Queryable } from "./db.js";
import { SERVER_MS } from "./jobs-sql.js";
import { rateStatements } from "./flow-rate.js";
import { jobColumns, type JobRow } from "./rows.js";

export function flowStatements(S: string) {
  const due = "state IN ('waiting', 'scheduled', 'failed')";
  return {
    // Takes the row lock of each queue (made if missing), in name order, and reads the clock
    // once it holds them: a window is measured from when this claimer may spend the budget.
    lock: `INSERT INTO ${S}.queues (name) SELECT n FROM unnest($1::text[]) AS u(n)
      WHERE set_config('synchronous_commit', $2::text, true) IS NOT NULL ORDER BY n
      ON CONFLICT (name) DO UPDATE SET name = excluded.name
      RETURNING name, paused, start_at, start_n, (extract(epoch from clock_timestamp()) * 1000)::bigint AS now`,
    now: `SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now`,
    // Everything a budget needs, for every queue of the claim, in one round trip.
    // Active jobs are counted only for a queue with a limit ($4): with a large claim-ahead
    // there are many, and each costs a visit to its row.
    facts: `SELECT u.name,
        CASE WHEN u.counted THEN (SELECT count(*)::int FROM ${S}.jobs j WHERE j.state = 'active' AND j.queue = u.name)
          ELSE 0 END AS active,
        (SELECT coalesce(json_agg(json_build_array(s.grp, s.at, s.n)), '[]'::json) FROM ${S}.queue_starts s
          WHERE s.queue = u.name AND s.at > $2) AS starts,
        (SELECT coalesce(json_agg(json_build_array(h.grp, h.until, h.reason)), '[]'::json) FROM ${S}.queue_holds h
          WHERE h.queue = u.name AND h.until > $3) AS holds
      FROM unnest($1::text[], $4::boolean[]) AS u(name, counted)`,
    // What the claim spent and why it held back, in one round trip. A queue's own starts
    // are in its row (see flow-rate.ts), its groups' in queue_starts. $7: for each queue,
    // [name, at[] or null, n[] or null, why it held back or null]: one UPDATE of its row (two
    // UPDATEs of one row in one statement would keep only one of them).
    record: `WITH ins AS (
        INSERT INTO ${S}.queue_starts (queue, grp, at, n) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[])
      ), del AS (
        DELETE FROM ${S}.queue_starts s USING unnest($5::text[], $6::bigint[]) AS p(queue, before)
        WHERE s.queue = p.queue AND s.at <= p.before
      ), own AS (
        UPDATE ${S}.queues q SET
          start_at = CASE WHEN json_typeof(e->1) = 'array' THEN ARRAY(SELECT json_array_elements_text(e->1)::bigint) ELSE q.start_at END,
          start_n = CASE WHEN json_typeof(e->2) = 'array' THEN ARRAY(SELECT json_array_elements_text(e->2)::int) ELSE q.start_n END,
          held_at = CASE WHEN e->>3 IS NULL THEN q.held_at ELSE $8::bigint END,
          held_reason = coalesce(e->>3, q.held_reason)
        FROM json_array_elements($7::json) e WHERE q.name = e->>0
      ) SELECT 1`,
    // A job's group is its grp column (set at enqueue); the payload is read only for a job
    // enqueued without its queue's group known. Full groups ($5) are left out of the scan.
    candidates: `SELECT id, g FROM (SELECT id, priority, run_at, coalesce(grp, payload::jsonb #>> $2::text[], '') AS g FROM ${S}.jobs
      WHERE queue = $1 AND ${due} AND run_at <= $3) c WHERE g <> ALL ($5::text[]) ORDER BY priority DESC, run_at, id LIMIT $4`,
    groupActive: `SELECT coalesce(grp, payload::jsonb #>> $2::text[], '') AS g, count(*)::int AS n FROM ${S}.jobs
      WHERE state = 'active' AND queue = $1 GROUP BY 1`,
    fillGroups: `UPDATE ${S}.jobs SET grp = coalesce(payload::jsonb #>> $2::text[], '')
      WHERE queue = $1 AND grp IS NULL AND state IN ('waiting', 'scheduled', 'failed', 'active')`,
    lease: `UPDATE ${S}.jobs j SET state = 'active', token = $2::text || j.id, worker_id = $3::text,
        attempt = j.attempt + 1, started_at = $4::bigint, lease_until = ${SERVER_MS} + $5::bigint
      WHERE j.id = ANY ($1::bigint[]) AND j.${due} RETURNING ${jobColumns("j")}`,
    setPaused: `INSERT INTO ${S}.queues (name, paused, paused_at) VALUES ($1, $2, $3)
      ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, paused_at = excluded.paused_at
      RETURNING *, (CASE WHEN $2::boolean THEN NULL ELSE pg_notify($4::text, $1::text) END) IS NULL AS notified`,
    states: `SELECT * FROM ${S}.queues ORDER BY name`,
    // Back unrun, the attempt not counted, in its place in the queue (the hold keeps it there).
    holdJob: `UPDATE ${S}.jobs SET state = 'waiting', attempt = greatest(attempt - 1, 0),
        token = NULL, worker_id = NULL, lease_until = NULL
      WHERE id = $1 AND token = $2 AND state = 'active' RETURNING queue`,
    dropHolds: `DELETE FROM ${S}.queue_holds WHERE until <= $1`,
    addHold: `INSERT INTO ${S}.queue_holds (queue, grp, until, reason) VALUES ($1, $2, $3, $4)
      ON CONFLICT (queue, grp) DO UPDATE SET until = greatest(${S}.queue_holds.until, excluded.until), reason = excluded.reason`,
    // `onDuplicate: replace`: only a job that has not started takes the new payload.
    replacePayload: `UPDATE ${S}.jobs SET payload = $2, grp = $3 WHERE id = $1 AND state IN ('waiting', 'scheduled') RETURNING ${jobColumns()}`,
    ...rateStatements(S),
    heldState: `INSERT INTO ${S}.queues (name, held_at, held_reason) VALUES ($1, $2, $3)
      ON CONFLICT (name) DO UPDATE SET held_at = excluded.held_at, held_reason = excluded.held_reason`,
  };
}

export type FlowStatements = ReturnType<typeof flowStatements>;

export interface QueueRow {
  name: string;
  paused: boolean;
  paused_at: number | null;
  held_at: number | null;
  held_reason: string | null;
}

export function toQueueState(r: QueueRow): QueueState {
  return { name: r.name, paused: r.paused, pausedAt: r.paused_at, heldAt: r.held_at, heldReason: r.held_reason };
}

/** What a flow claim needs of the claim's arguments (see job-claim.ts, ClaimArgs). */
export interface FlowClaimArgs {
  names: string[];
  counts: number[];
  now: number;
  /** The lease's length: the server sets each deadline by its own clock (SERVER_MS). */
  leaseMs: number;
  workerId: string;
  prefix: string;
}

/**
 * Leases due jobs of the flow-controlled queues of a claim, inside the caller's
 * transaction `q`; other queues of the claim, and flow-controlled ones without a group once
 * their budget is known, go through `plain` (the usual statement). Round trips: the lock,
 * the facts, a lease per queue, the record (a grouped queue reads its candidates too).
 */
export async function flowClaim(
  sql: FlowStatements,
  q: Queryable,
  req: ClaimRequest,
  a: FlowClaimArgs,
  plain: (names: string[], counts: number[]) => Promise<JobRow[]>,
  durable = true,
): Promise<JobRow[]> {
  const flowed: { name: string; n: number; flow: QueueFlow }[] = [];
  const rest: { names: string[]; counts: number[] } = { names: [], counts: [] };
  a.names.forEach((name, i) => {
    const flow = req.flow?.[name];
    if (flow) flowed.push({ name, n: a.counts[i]!, flow });
    else {
      rest.names.push(name);
      rest.counts.push(a.counts[i]!);
    }
  });
  const out = rest.names.length > 0 ? await plain(rest.names, rest.counts) : [];
  if (flowed.length === 0) return out;
  const names = flowed.map((f) => f.name).sort();
  // Locked in name order by every claimer, so two claims never deadlock.
  // A claim in a transaction of its own commits without waiting for the disk, as the fast
  // claim does (jobs-sql.ts, NO_FSYNC_WAIT): that wait was half of its time (1,000 jobs:
  // 16 ms of 33). What a server crash can lose: the claim, its jobs back to waiting as if
  // never claimed, and the starts it recorded, so a window may then hold the starts of
  // handlers that ran anyway beside new ones. Any later durable commit flushes it too.
  const locked = await q.query<LockedRow>(sql.lock, [names, durable ? "on" : "off"]);
  const paused = new Set(locked.filter((r) => r.paused).map((r) => r.name));
  // Never earlier than a start already recorded (see flow-rate.ts: claims' times follow the lock's order).
  const dbNow = Math.max(...locked.map((r) => Math.max(Number(r.now), ...r.start_at.map(Number))));
  const own = new Map(locked.map((r) => [r.name, r.start_at.map((at, k) => ({ at: Number(at), n: r.start_n[k]! }))]));
  const toLocal = (t: number | null) => (t === null ? null : t - dbNow + Date.now());
  const keep = Math.max(...flowed.map((f) => longestInterval(f.flow)));
  const facts = new Map(
    (
      await q.query<FactsRow>(sql.facts, [
        names,
        dbNow - keep,
        dbNow,
        names.map((n) => flowed.find((f) => f.name === n)!.flow.limit !== undefined),
      ])
    ).map((r) => [r.name, r]),
  );
  const rec: Spent = { grps: [], queues: [], ns: [], pruneQueues: [], before: [], rows: new Map() };
  for (const f of flowed) {
    if (paused.has(f.name)) continue;
    const fact = facts.get(f.name)!;
    const held = fact.holds.find(([grp]) => grp === "");
    if (held) {
      req.onHold?.(f.name, toLocal(Number(held[1])), held[2]);
      continue;
    }
    const { rows, hold } = await queueClaim(sql, q, f.name, f.n, f.flow, a, dbNow, { ...fact, own: own.get(f.name)! }, rec, plain);
    out.push(...rows);
    if (hold) {
      req.onHold?.(f.name, toLocal(hold.until), hold.reason);
      rowOf(rec, f.name).reason = hold.reason;
    }
  }
  if (rec.queues.length + rec.pruneQueues.length + rec.rows.size > 0) {
    await q.query(sql.record, [
      rec.queues, rec.grps, rec.queues.map(() => dbNow), rec.ns,
      rec.pruneQueues, rec.before,
      JSON.stringify([...rec.rows].map(([name, r]) => [name, r.at ?? null, r.n ?? null, r.reason ?? null])),
      dbNow,
    ]);
  }
  return out;
}

interface LockedRow {
  name: string;
  paused: boolean;
  start_at: number[];
  start_n: number[];
  now: number;
}

interface FactsRow {
  name: string;
  active: number;
  starts: [string, number, number][];
  holds: [string, number, string][];
}

/** What one claim writes back, as the arrays of the `record` statement. */
interface Spent {
  queues: string[];
  grps: string[];
  ns: number[];
  pruneQueues: string[];
  before: number[];
  /** What goes in each queue's row: its own starts after the claim, why it held back. */
  rows: Map<string, { at?: number[]; n?: number[]; reason?: string }>;
}

function rowOf(rec: Spent, queue: string): { at?: number[]; n?: number[]; reason?: string } {
  let r = rec.rows.get(queue);
  if (!r) rec.rows.set(queue, (r = {}));
  return r;
}

async function queueClaim(
  sql: FlowStatements,
  q: Queryable,
  queue: string,
  max: number,
  flow: QueueFlow,
  a: FlowClaimArgs,
  now: number,
  fact: FactsRow & { own: StartRow[] },
  rec: Spent,
  plain: (names: string[], counts: number[]) => Promise<JobRow[]>,
): Promise<{ rows: JobRow[]; hold?: Allowance["hold"] }> {
  const keep = longestInterval(flow);
  const starts = byGroup(fact.starts.filter(([, at]) => at > now - keep).map(([grp, at, n]) => ({ grp, at: Number(at), n })));
  const ownStarts = fact.own.filter((st) => st.at > now - keep);
  const allowed = allowance(`queue ${queue}`, max, flow, { active: fact.active, starts: ownStarts }, now);
  let hold = allowed.hold;
  let rows: JobRow[] = [];
  const group = flow.group;
  if (allowed.take > 0 && !group) {
    rows = await plain([queue], [allowed.take]);
  } else if (allowed.take > 0 && group) {
    const scan = Math.max(GROUP_SCAN_MIN, allowed.take * GROUP_SCAN_FACTOR);
    const path = group.by.split(".");
    const groupActive = new Map<string, number>();
    if (group.limit !== undefined) {
      for (const r of await q.query<{ g: string; n: number }>(sql.groupActive, [queue, path])) groupActive.set(r.g, r.n);
    }
    const held = new Map<string, { until: number; reason: string }>();
    for (const [grp, until, reason] of fact.holds) {
      if (grp.startsWith(GROUP_PREFIX)) held.set(grp.slice(GROUP_PREFIX.length), { until: Number(until), reason });
    }
    const facts = { active: groupActive, starts: groupStarts(starts), held };
    const full = saturatedGroups(queue, flow, facts, now);
    const candidates = (await q.query<{ id: number; g: string }>(sql.candidates, [queue, path, a.now, scan, full.groups])).map((c) => ({
      id: Number(c.id),
      group: c.g,
    }));
    const pick = pickGrouped(queue, flow, candidates, allowed.take, facts, now);
    hold = earlier(earlier(hold, full.hold), pick.hold);
    if (pick.ids.length > 0) rows = await q.query<JobRow>(sql.lease, [pick.ids, a.prefix, a.workerId, a.now, a.leaseMs]);
    // As picked: a candidate taken meanwhile by a claimer without flow control (a host
    // whose config lacks it) still counts, which errs on the side of fewer starts.
    if (rows.length > 0 && group.rate) {
      for (const [g, n] of pick.perGroup) {
        rec.queues.push(queue);
        rec.grps.push(GROUP_PREFIX + g);
        rec.ns.push(n);
      }
    }
  }
  if (keep > 0) {
    const after = rows.length > 0 && flow.rate ? [...ownStarts, { at: now, n: rows.length }] : ownStarts;
    const r = rowOf(rec, queue);
    r.at = after.map((st) => st.at);
    r.n = after.map((st) => st.n);
    rec.pruneQueues.push(queue);
    rec.before.push(now - keep);
  }
  return hold ? { rows, hold } : { rows };
}

/**
 * `ctx.rateLimited` inside the caller's transaction: the job back unrun, due at the hold's
 * end; its queue or group held until then. Times on the database's clock, as the windows.
 * Returns the queue and the hold's end, or null when the lease is no longer the job's.
 */
export async function holdBack(
  sql: FlowStatements,
  q: Queryable,
  lease: { jobId: number; token: string },
  ms: number,
  group: string | undefined,
  reason: (queue: string) => string,
): Promise<{ queue: string; until: number } | null> {
  const now = Number((await q.query<{ now: number }>(sql.now))[0]!.now);
  const until = now + ms;
  const rows = await q.query<{ queue: string }>(sql.holdJob, [lease.jobId, lease.token]);
  if (rows.length === 0) return null;
  const queue = rows[0]!.queue;
  const why = reason(queue);
  await q.query(sql.dropHolds, [now]);
  await q.query(sql.addHold, [queue, group === undefined ? "" : GROUP_PREFIX + group, until, why]);
  await q.query(sql.heldState, [queue, now, why]);
  return { queue, until };
}
