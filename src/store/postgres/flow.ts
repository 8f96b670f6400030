/**
 * Flow control in the PostgreSQL store: paused queues and the budget of a queue with
 * `rate`, `limit` or `group` (see ../flow.ts). The fast claim (one statement, `SKIP
 * LOCKED`) cannot count what other claimers are taking at the same moment, so a claim for
 * a flow-controlled queue runs in a transaction that first locks the queue's row in
 * `queues`: claimers of that queue, on every host, take its budget one at a time, and each
 * sees the leases and starts of the one before. Windows are measured on the database's
 * clock, the one clock every host shares.
 */
import { allowance, byGroup, earlier, GROUP_PREFIX, GROUP_SCAN_FACTOR, GROUP_SCAN_MIN, groupStarts, longestInterval, pickGrouped, type Allowance } from "../flow.js";
import type { ClaimRequest, QueueFlow, QueueState } from "../store.js";
import type { Queryable } from "./db.js";
import { jobColumns, type JobRow } from "./rows.js";

export function flowStatements(S: string) {
  const due = "state IN ('waiting', 'scheduled', 'failed')";
  return {
    ensure: `INSERT INTO ${S}.queues (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING`,
    lock: `SELECT name, paused FROM ${S}.queues WHERE name = ANY ($1::text[]) ORDER BY name FOR UPDATE`,
    now: `SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now`,
    active: `SELECT count(*)::int AS n FROM ${S}.jobs WHERE state = 'active' AND queue = $1`,
    starts: `SELECT grp, at, n FROM ${S}.queue_starts WHERE queue = $1 AND at > $2`,
    candidates: `SELECT id, coalesce(payload::jsonb #>> $2::text[], '') AS g FROM ${S}.jobs
      WHERE queue = $1 AND ${due} AND run_at <= $3 ORDER BY priority DESC, run_at, id LIMIT $4`,
    groupActive: `SELECT coalesce(payload::jsonb #>> $2::text[], '') AS g, count(*)::int AS n FROM ${S}.jobs
      WHERE state = 'active' AND queue = $1 GROUP BY 1`,
    lease: `UPDATE ${S}.jobs j SET state = 'active', token = $2::text || j.id, worker_id = $3::text,
        attempt = j.attempt + 1, started_at = $4::bigint, lease_until = $5::bigint
      WHERE j.id = ANY ($1::bigint[]) AND j.${due} RETURNING ${jobColumns("j")}`,
    addStarts: `INSERT INTO ${S}.queue_starts (queue, grp, at, n)
      SELECT $1, g, $3, n FROM unnest($2::text[], $4::int[]) AS s(g, n)`,
    prune: `DELETE FROM ${S}.queue_starts WHERE queue = $1 AND at <= $2`,
    held: `UPDATE ${S}.queues SET held_at = $2, held_reason = $3 WHERE name = $1`,
    setPaused: `INSERT INTO ${S}.queues (name, paused, paused_at) VALUES ($1, $2, $3)
      ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, paused_at = excluded.paused_at
      RETURNING *, (CASE WHEN $2::boolean THEN NULL ELSE pg_notify($4::text, $1::text) END) IS NULL AS notified`,
    states: `SELECT * FROM ${S}.queues ORDER BY name`,
    heldQueues: `SELECT queue, until, reason FROM ${S}.queue_holds WHERE queue = ANY ($1::text[]) AND grp = '' AND until > $2`,
    groupHolds: `SELECT grp, until, reason FROM ${S}.queue_holds WHERE queue = $1 AND grp <> '' AND until > $2`,
    // Back unrun, the attempt not counted, due when the hold ends.
    holdJob: `UPDATE ${S}.jobs SET state = 'scheduled', run_at = $3::bigint, attempt = greatest(attempt - 1, 0),
        token = NULL, worker_id = NULL, lease_until = NULL
      WHERE id = $1 AND token = $2 AND state = 'active' RETURNING queue`,
    dropHolds: `DELETE FROM ${S}.queue_holds WHERE until <= $1`,
    addHold: `INSERT INTO ${S}.queue_holds (queue, grp, until, reason) VALUES ($1, $2, $3, $4)
      ON CONFLICT (queue, grp) DO UPDATE SET until = greatest(${S}.queue_holds.until, excluded.until), reason = excluded.reason`,
    // `onDuplicate: replace`: only a job that has not started takes the new payload.
    replacePayload: `UPDATE ${S}.jobs SET payload = $2 WHERE id = $1 AND state IN ('waiting', 'scheduled') RETURNING ${jobColumns()}`,
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

/** What a flow claim needs of the claim's arguments (see job-writes.ts, ClaimArgs). */
export interface FlowClaimArgs {
  names: string[];
  counts: number[];
  now: number;
  leaseUntil: number;
  workerId: string;
  prefix: string;
}

/**
 * Leases due jobs of the flow-controlled queues of a claim, inside the caller's
 * transaction `q`; other queues of the claim are left to `plain` (the usual statement).
 */
export async function flowClaim(
  sql: FlowStatements,
  q: Queryable,
  req: ClaimRequest,
  a: FlowClaimArgs,
  plain: (names: string[], counts: number[]) => Promise<JobRow[]>,
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
  await q.query(sql.ensure, [names]);
  // Locked in name order by every claimer, so two claims never deadlock.
  const locked = await q.query<{ name: string; paused: boolean }>(sql.lock, [names]);
  const paused = new Set(locked.filter((r) => r.paused).map((r) => r.name));
  // The clock is read after the lock: a window is measured from the moment this claimer
  // may spend the budget, never from before it waited for the previous one.
  const dbNow = Number((await q.query<{ now: number }>(sql.now))[0]!.now);
  const toLocal = (t: number | null) => (t === null ? null : t - dbNow + Date.now());
  const holds = new Map(
    (await q.query<{ queue: string; until: number; reason: string }>(sql.heldQueues, [names, dbNow])).map((h) => [h.queue, h]),
  );
  for (const f of flowed) {
    if (paused.has(f.name)) continue;
    const held = holds.get(f.name);
    if (held) {
      req.onHold?.(f.name, toLocal(Number(held.until)), held.reason);
      continue;
    }
    const { rows, hold } = await queueClaim(sql, q, f.name, f.n, f.flow, a, dbNow);
    out.push(...rows);
    if (hold) req.onHold?.(f.name, toLocal(hold.until), hold.reason);
  }
  return out;
}

async function queueClaim(
  sql: FlowStatements,
  q: Queryable,
  queue: string,
  max: number,
  flow: QueueFlow,
  a: FlowClaimArgs,
  now: number,
): Promise<{ rows: JobRow[]; hold?: Allowance["hold"] }> {
  const keep = longestInterval(flow);
  const starts = keep > 0 ? byGroup(await q.query<{ grp: string; at: number; n: number }>(sql.starts, [queue, now - keep])) : new Map();
  const active = flow.limit !== undefined ? (await q.query<{ n: number }>(sql.active, [queue]))[0]!.n : 0;
  const allowed = allowance(`queue ${queue}`, max, flow, { active, starts: starts.get("") ?? [] }, now);
  let hold = allowed.hold;
  let ids: number[] = [];
  const perGroup = new Map<string, number>();
  const group = flow.group;
  if (allowed.take > 0) {
    const scan = group ? Math.max(GROUP_SCAN_MIN, allowed.take * GROUP_SCAN_FACTOR) : allowed.take;
    const path = group ? group.by.split(".") : [];
    const candidates = (
      await q.query<{ id: number; g: string }>(sql.candidates, [queue, path, a.now, scan])
    ).map((c) => ({ id: Number(c.id), group: c.g }));
    if (!group) ids = candidates.map((c) => c.id);
    else {
      const groupActive = new Map<string, number>();
      if (group.limit !== undefined) {
        for (const r of await q.query<{ g: string; n: number }>(sql.groupActive, [queue, path])) groupActive.set(r.g, r.n);
      }
      const held = new Map<string, { until: number; reason: string }>();
      for (const h of await q.query<{ grp: string; until: number; reason: string }>(sql.groupHolds, [queue, now])) {
        held.set(h.grp.slice(GROUP_PREFIX.length), { until: Number(h.until), reason: h.reason });
      }
      const pick = pickGrouped(queue, flow, candidates, allowed.take, { active: groupActive, starts: groupStarts(starts), held }, now);
      hold = earlier(hold, pick.hold);
      ids = pick.ids;
      for (const [g, n] of pick.perGroup) perGroup.set(g, n);
    }
  }
  const rows =
    ids.length > 0 ? await q.query<JobRow>(sql.lease, [ids, a.prefix, a.workerId, a.now, a.leaseUntil]) : [];
  if (rows.length > 0) {
    const grps: string[] = [];
    const ns: number[] = [];
    if (flow.rate) {
      grps.push("");
      ns.push(rows.length);
    }
    if (group?.rate) {
      // As picked: a candidate taken meanwhile by a claimer without flow control (a host
      // whose config lacks it) still counts, which errs on the side of fewer starts.
      for (const [g, n] of perGroup) {
        grps.push(GROUP_PREFIX + g);
        ns.push(n);
      }
    }
    if (grps.length > 0) await q.query(sql.addStarts, [queue, grps, now, ns]);
  }
  if (keep > 0) await q.query(sql.prune, [queue, now - keep]);
  if (hold) await q.query(sql.held, [queue, now, hold.reason]);
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
  runAt: number,
): Promise<{ queue: string; until: number } | null> {
  const now = Number((await q.query<{ now: number }>(sql.now))[0]!.now);
  const until = now + ms;
  // The job's due time on the store's clock, as every run_at; the hold on the database's.
  const rows = await q.query<{ queue: string }>(sql.holdJob, [lease.jobId, lease.token, runAt]);
  if (rows.length === 0) return null;
  const queue = rows[0]!.queue;
  const why = reason(queue);
  await q.query(sql.dropHolds, [now]);
  await q.query(sql.addHold, [queue, group === undefined ? "" : GROUP_PREFIX + group, until, why]);
  await q.query(sql.heldState, [queue, now, why]);
  return { queue, until };
}
