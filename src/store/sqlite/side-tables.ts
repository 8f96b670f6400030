/** Trigger cursors, rejected records, incidents and leader locks in the SQLite store. */
import { hostname } from "node:os";
import type Database from "better-sqlite3";
import { NotFoundError } from "../../core/errors.js";
import type { Incident, NewIncident, RejectedRecord } from "../../core/types.js";
import type { TriggerCursor } from "../store.js";
import { REJECTED_SAMPLE_CHARS, toRejected, type RejectedRow } from "../rows.js";
import { toIncident, type IncidentRow, type Prepare } from "./rows.js";

export type Stmt = Database.Statement<unknown[], unknown>;

export type SideStatements = Record<
  "getCursor" | "putCursor" | "addRejected" | "addIncident" | "incident" | "setDetail" | "resolveAll" | "resolveOne" | "tryLock" | "unlock",
  Stmt
>;

export function prepareSideStatements(db: Database.Database): SideStatements {
  const p = (sql: string): Stmt => db.prepare(sql);
  return {
    getCursor: p("SELECT cursor, version FROM trigger_cursors WHERE trigger = ?"),
    putCursor: p(`INSERT INTO trigger_cursors (trigger, cursor, version, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(trigger) DO UPDATE SET cursor = excluded.cursor, version = excluded.version,
        updated_at = excluded.updated_at`),
    addRejected: p(`INSERT INTO rejected_records (trigger, reason, sample, path, offset, at)
      VALUES (@trigger, @reason, @sample, @path, @offset, @at)`),
    addIncident: p(`INSERT INTO incidents (service, host, cause, detected_at, detail)
      VALUES (@service, @host, @cause, @detectedAt, @detail) RETURNING *`),
    incident: p("SELECT * FROM incidents WHERE id = ?"),
    setDetail: p("UPDATE incidents SET detail = ? WHERE id = ?"),
    resolveAll: p("UPDATE incidents SET recovered_at = @at WHERE service = @service AND recovered_at IS NULL AND (@host IS NULL OR host = @host)"),
    resolveOne: p("UPDATE incidents SET recovered_at = @at WHERE service = @service AND id = @id AND recovered_at IS NULL AND (@host IS NULL OR host = @host)"),
    tryLock: p(`INSERT INTO locks (name, owner, expires_at) VALUES (@name, @owner, @expiresAt)
      ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
      WHERE locks.owner = excluded.owner OR locks.expires_at <= @now`),
    unlock: p("DELETE FROM locks WHERE name = ? AND owner = ?"),
  };
}


/** A trigger without a stored cursor is at version 0. */
export function readCursor(sql: SideStatements, trigger: string): TriggerCursor | null {
  const row = sql.getCursor.get(trigger) as { cursor: string; version: number } | undefined;
  return row ? { cursor: JSON.parse(row.cursor), version: row.version } : null;
}

export function insertRejected(sql: SideStatements, r: RejectedRecord, now: number): void {
  sql.addRejected.run({
    trigger: r.trigger,
    reason: String(r.reason).slice(0, REJECTED_SAMPLE_CHARS),
    sample: String(r.sample).slice(0, REJECTED_SAMPLE_CHARS),
    path: r.path ?? null,
    offset: r.offset ?? null,
    at: r.at ?? now,
  });
}

export function listRejected(prep: Prepare, trigger: string | undefined, limit = 50): RejectedRecord[] {
  const lim = limit > 0 ? Math.trunc(limit) : -1; // negative: no limit
  const rows = (
    trigger === undefined
      ? prep("SELECT * FROM rejected_records ORDER BY id DESC LIMIT ?").all(lim)
      : prep("SELECT * FROM rejected_records WHERE trigger = ? ORDER BY id DESC LIMIT ?").all(trigger, lim)
  ) as RejectedRow[];
  return rows.map(toRejected);
}

export function addIncident(sql: SideStatements, i: NewIncident, now: number, detail: string): Incident {
  return toIncident(
    sql.addIncident.get({
      service: i.service,
      host: i.host ?? hostname(),
      cause: i.cause,
      detectedAt: i.detectedAt ?? now,
      detail,
    }) as IncidentRow,
  );
}

/** Merges `detail` into the incident's detail (new members win). */
export function mergeIncidentDetail(sql: SideStatements, id: number, detail: Record<string, unknown>, encode: (v: unknown) => string): void {
  const row = sql.incident.get(id) as IncidentRow | undefined;
  if (!row) throw new NotFoundError(`incident ${id}`);
  sql.setDetail.run(encode({ ...(JSON.parse(row.detail) as Record<string, unknown>), ...detail }), id);
}

export function listIncidents(
  prep: Prepare,
  opts: { since?: number; service?: string; limit?: number } = {},
): Incident[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (opts.since !== undefined) (where.push("detected_at >= ?"), args.push(opts.since));
  // A service's own incidents and its processes' (`workers` → `workers:1`, `workers:2`).
  if (opts.service !== undefined) {
    where.push("(service = ? OR substr(service, 1, length(?)) = ?)");
    args.push(opts.service, `${opts.service}:`, `${opts.service}:`);
  }
  const limit = opts.limit ?? 100;
  args.push(limit > 0 ? Math.trunc(limit) : -1); // negative: no limit
  const sql = `SELECT * FROM incidents${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY detected_at DESC, id DESC LIMIT ?`;
  return (prep(sql).all(...args) as IncidentRow[]).map(toIncident);
}
