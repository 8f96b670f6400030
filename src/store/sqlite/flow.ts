/**
 * Flow control in the SQLite store: paused queues, and the budget of a queue with `rate`,
 * `limit` or `group` (see ../flow.ts), read and spent inside the claim's IMMEDIATE
 * transaction, which already makes claimers of every process take turns.
 */
import type Database from "better-sqlite3";
import { allowance, byGroup, earlier, GROUP_PREFIX, GROUP_SCAN_FACTOR, GROUP_SCAN_MIN, groupStarts, longestInterval, pickGrouped, type Allowance } from "../flow.js";
import type { QueueFlow, QueueState } from "../store.js";
import { CLAIM_COLUMNS } from "./rows.js";

type Stmt = Database.Statement<unknown[], unknown>;

export type FlowStatements = Record<
  "paused" | "setPaused" | "state" | "states" | "held" | "active" | "starts" | "addStart" | "prune" | "candidates" | "groupActive" | "claimRow",
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
    candidates: p(`SELECT id, coalesce(json_extract(payload, ?), '') AS g FROM jobs
      WHERE state = 'waiting' AND queue = ? ORDER BY priority DESC, run_at, id LIMIT ?`),
    groupActive: p(`SELECT coalesce(json_extract(payload, ?), '') AS g, count(*) AS n FROM jobs
      WHERE state = 'active' AND lease_until IS NOT NULL AND queue = ? GROUP BY g`),
    claimRow: p(`SELECT ${CLAIM_COLUMNS.join(", ")} FROM jobs WHERE id = ? AND state = 'waiting'`).raw(),
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
    const candidates = (sql.candidates.all(path, queue, scan) as { id: number; g: unknown }[]).map((c) => ({ id: c.id, group: String(c.g) }));
    const groupActive = new Map<string, number>();
    if (group.limit !== undefined) {
      for (const r of sql.groupActive.all(path, queue) as { g: unknown; n: number }[]) groupActive.set(String(r.g), r.n);
    }
    const pick = pickGrouped(queue, flow, candidates, a.take, { active: groupActive, starts: groupStarts(starts) }, now);
    hold = earlier(hold, pick.hold);
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
