/**
 * Flow control in the SQLite store: paused queues, and the budget of a queue with `rate`,
 * `limit` or `group` (see ../flow.ts), read and spent inside the claim's IMMEDIATE
 * transaction, which already makes claimers of every process take turns.
 */
import type Database from "better-sqlite3";
import { allowance, byGroup, earlier, GROUP_PREFIX, holdReason, saturatedGroups, GROUP_SCAN_FACTOR, GROUP_SCAN_MIN, groupStarts, longestInterval, pickGrouped, type Allowance } from "../flow.js";
import type { LeaseRef } from "../../core/types.js";
import type { QueueFlow, QueueState } from "../store.js";
import { CLAIM_COLUMNS } from "./rows.js";

type Stmt = Database.Statement<unknown[], unknown>;

export type FlowStatements = Record<
  | "paused" | "setPaused" | "state" | "states" | "held" | "active" | "starts" | "addStart" | "prune" | "candidates" | "groupActive" | "claimRow"
  | "heldQueues" | "groupHolds" | "holdJob" | "addHold" | "dropHolds" | "replacePayload" | "fillGroups",
  Stmt
>;

export function prepareFlowStatements(db: Database.Database): FlowStatements {
  const p = (sql: string): Stmt => db.prepare(sql);
  return {
    paused: p("SELECT name FROM queues WHERE paused = 1").pluck(),
    setPaused: p(`INSERT INTO queues (name, paused, paused_at) VALUES (@name, @paused, @at)
      ON CONFLICT(name) DO UPDATE SET paused = excluded.paused, paused_at = excluded.paused_at`),
    state: p("SELECT * FROM queues WHERE name = ?"),
    states: p("SELECT * FROM queues ORDER BY name"),
    held: p(`INSERT INTO queues (name, held_at, held_reason) VALUES (?, ?, ?)
      ON CONFLICT(name) DO UPDATE SET held_at = excluded.held_at, held_reason = excluded.held_reason`),
    // Active jobs are few: counted from the partial index of active jobs (jobs_lease).
    active: p("SELECT count(*) FROM jobs WHERE state = 'active' AND lease_until IS NOT NULL AND queue = ?").pluck(),
    starts: p("SELECT grp, at, n FROM queue_starts WHERE queue = ? AND at > ?"),
    addStart: p("INSERT INTO queue_starts (queue, grp, at, n) VALUES (?, ?, ?, ?)"),
    prune: p("DELETE FROM queue_starts WHERE queue = ? AND at <= ?"),
    // A job's group is its grp column (set at enqueue); the payload is read only for a job
    // enqueued without its queue's group known. Full groups ($4, a JSON array) are left out.
    candidates: p(`SELECT id, coalesce(grp, json_extract(payload, ?), '') AS g FROM jobs
      WHERE state = 'waiting' AND queue = ? AND g NOT IN (SELECT value FROM json_each(?))
      ORDER BY priority DESC, run_at, id LIMIT ?`),
    groupActive: p(`SELECT coalesce(grp, json_extract(payload, ?), '') AS g, count(*) AS n FROM jobs
      WHERE state = 'active' AND queue = ? GROUP BY g`),
    fillGroups: p(`UPDATE jobs SET grp = coalesce(json_extract(payload, ?), '')
      WHERE queue = ? AND grp IS NULL AND state IN ('waiting', 'scheduled', 'failed', 'active')`),
    claimRow: p(`SELECT ${CLAIM_COLUMNS.join(", ")} FROM jobs WHERE id = ? AND state = 'waiting'`).raw(),
    heldQueues: p("SELECT queue, until, reason FROM queue_holds WHERE grp = '' AND until > ?"),
    groupHolds: p("SELECT grp, until, reason FROM queue_holds WHERE queue = ? AND grp <> '' AND until > ?"),
    // Back unrun, the attempt not counted, in its place in the queue (the hold keeps it there).
    holdJob: p(`UPDATE jobs SET state = 'waiting', attempt = max(attempt - 1, 0),
        token = NULL, worker_id = NULL, lease_until = NULL
      WHERE id = @id AND token = @token AND state = 'active' RETURNING queue`),
    addHold: p(`INSERT INTO queue_holds (queue, grp, until, reason) VALUES (?, ?, ?, ?)
      ON CONFLICT(queue, grp) DO UPDATE SET until = max(until, excluded.until), reason = excluded.reason`),
    dropHolds: p("DELETE FROM queue_holds WHERE until <= ?"),
    // `onDuplicate: replace`: only a job that has not started takes the new payload.
    replacePayload: p("UPDATE jobs SET payload = ?, grp = ? WHERE id = ? AND state IN ('waiting', 'scheduled') RETURNING *"),
  };
}

export interface QueueRow {
  name: string;
  paused: number;
  paused_at: number | null;
  held_at: number | null;
  held_reason: string | null;
}

export function toQueueState(r: QueueRow): QueueState {
  return { name: r.name, paused: r.paused === 1, pausedAt: r.paused_at, heldAt: r.held_at, heldReason: r.held_reason };
}

/** The JSON path of a group's field for json_extract (`customer.id` → `$.customer.id`). */
function jsonPath(by: string): string {
  return `$.${by}`;
}

/**
 * The claim rows (CLAIM_COLUMNS, raw) of up to `max` due jobs of a flow-controlled queue,
 * with their starts recorded; a hold, if the flow control held the claim back.
 */
export function flowRows(
  sql: FlowStatements,
  nextJobs: Stmt,
  queue: string,
  max: number,
  flow: QueueFlow,
  now: number,
): { rows: unknown[][]; hold?: Allowance["hold"] } {
  const keep = longestInterval(flow);
  const starts = keep > 0 ? byGroup(sql.starts.all(queue, now - keep) as { grp: string; at: number; n: number }[]) : new Map();
  const active = flow.limit !== undefined ? (sql.active.get(queue) as number) : 0;
  const a = allowance(`queue ${queue}`, max, flow, { active, starts: starts.get("") ?? [] }, now);
  let rows: unknown[][] = [];
  let hold = a.hold;
  const perGroup = new Map<string, number>();
  const group = flow.group;
  if (a.take > 0 && !group) {
    rows = nextJobs.all(queue, a.take) as unknown[][];
  } else if (a.take > 0 && group) {
    const path = jsonPath(group.by);
    const scan = Math.max(GROUP_SCAN_MIN, a.take * GROUP_SCAN_FACTOR);
    const groupActive = new Map<string, number>();
    if (group.limit !== undefined) {
      for (const r of sql.groupActive.all(path, queue) as { g: unknown; n: number }[]) groupActive.set(String(r.g), r.n);
    }
    const held = new Map<string, { until: number; reason: string }>();
    for (const h of sql.groupHolds.all(queue, now) as { grp: string; until: number; reason: string }[]) {
      held.set(h.grp.slice(GROUP_PREFIX.length), { until: h.until, reason: h.reason });
    }
    const facts = { active: groupActive, starts: groupStarts(starts), held };
    const full = saturatedGroups(queue, flow, facts, now);
    const candidates = (sql.candidates.all(path, queue, JSON.stringify(full.groups), scan) as { id: number; g: unknown }[]).map((c) => ({
      id: c.id,
      group: String(c.g),
    }));
    const pick = pickGrouped(queue, flow, candidates, a.take, facts, now);
    hold = earlier(earlier(hold, full.hold), pick.hold);
    for (const id of pick.ids) {
      const row = sql.claimRow.get(id) as unknown[] | undefined;
      if (row) rows.push(row);
    }
    for (const [g, n] of pick.perGroup) perGroup.set(g, n);
  }
  if (rows.length > 0) {
    if (flow.rate) sql.addStart.run(queue, "", now, rows.length);
    if (flow.group?.rate) for (const [g, n] of perGroup) sql.addStart.run(queue, GROUP_PREFIX + g, now, n);
  }
  if (keep > 0) sql.prune.run(queue, now - keep);
  if (hold) sql.held.run(queue, now, hold.reason);
  return hold ? { rows, hold } : { rows };
}

/**
 * Gives the unfinished jobs of grouped queues that have no group value yet (enqueued by a
 * process that did not know the queue's group, or before migration 9) their value.
 */
export function fillGroups(sql: FlowStatements, groupBy: Record<string, string>): void {
  for (const [queue, by] of Object.entries(groupBy)) sql.fillGroups.run(jsonPath(by), queue);
}

/** Pauses or resumes a queue; resuming wakes the workers blocked on it. */
export function setPaused(ctx: { flow: FlowStatements; woke: Set<string> }, queue: string, paused: boolean, now: number): QueueState {
  ctx.flow.setPaused.run({ name: queue, paused: paused ? 1 : 0, at: paused ? now : null });
  if (!paused) ctx.woke.add(queue);
  return toQueueState(ctx.flow.state.get(queue) as QueueRow);
}

/**
 * `ctx.rateLimited`: the job back unrun (attempt not counted), due when the hold ends; its
 * queue, or its group, held until then. Returns the hold's end, or null for a stale token.
 */
export function holdBack(
  ctx: { flow: FlowStatements; woke: Set<string> },
  lease: LeaseRef,
  ms: number,
  opts: { group?: string; reason?: string },
  now: number,
): number | null {
  const sql = ctx.flow;
  const until = now + Math.max(0, Math.trunc(ms));
  const row = sql.holdJob.get({ id: lease.jobId, token: lease.token }) as { queue: string } | undefined;
  if (!row) return null;
  sql.dropHolds.run(now);
  const why = holdReason(row.queue, opts.group ?? null, ms, opts.reason);
  sql.addHold.run(row.queue, opts.group === undefined ? "" : GROUP_PREFIX + opts.group, until, why);
  sql.held.run(row.queue, now, why);
  // Idle workers ask when the job comes due and set a timer for the hold's end.
  ctx.woke.add(row.queue);
  return until;
}
