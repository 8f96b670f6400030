/** Trigger cursors, rejected records, incidents and leader locks in the PostgreSQL store. */
import { hostname } from "node:os";
import { NotFoundError } from "../../core/errors.js";
import type { Incident, NewIncident, RejectedRecord } from "../../core/types.js";
import type { TriggerCursor } from "../store.js";
import type { Db, Queryable } from "./db.js";
import { pgText } from "./job-writes.js";
import { SERVER_MS } from "./jobs-sql.js";
import { REJECTED_SAMPLE_CHARS, toRejected, type RejectedRow } from "../rows.js";
import { rowToIncident, type IncidentRow } from "./rows.js";

const INCIDENT_COLUMNS = "id, service, host, cause, detected_at, recovered_at, detail";

export async function readCursor(q: Queryable, S: string, trigger: string): Promise<TriggerCursor | null> {
  const rows = await q.query<{ cursor: string; version: number }>(
    `SELECT cursor, version FROM ${S}.cursors WHERE trigger = $1`,
    [pgText(trigger)],
  );
  const row = rows[0];
  return row ? { cursor: JSON.parse(row.cursor), version: row.version } : null;
}

/**
 * Moves a trigger's cursor from `expect` to `expect + 1`, inside the caller's transaction.
 * False (nothing written) when another runner moved it first; the row lock taken here makes
 * a concurrent commit wait, then see the new version and fail.
 */
export async function advanceCursor(
  q: Queryable,
  S: string,
  trigger: string,
  expect: number,
  cursor: string,
  now: number,
): Promise<boolean> {
  const rows =
    expect === 0
      ? await q.query(
          `INSERT INTO ${S}.cursors (trigger, cursor, version, updated_at) VALUES ($1, $2, 1, $3)
           ON CONFLICT (trigger) DO NOTHING RETURNING version`,
          [pgText(trigger), cursor, now],
        )
      : await q.query(
          `UPDATE ${S}.cursors SET cursor = $2, version = version + 1, updated_at = $4
           WHERE trigger = $1 AND version = $3 RETURNING version`,
          [pgText(trigger), cursor, expect, now],
        );
  return rows.length === 1;
}

export async function insertRejected(q: Queryable, S: string, records: RejectedRecord[], now: number): Promise<void> {
  if (records.length === 0) return;
  const clip = (s: unknown) => pgText(String(s).slice(0, REJECTED_SAMPLE_CHARS));
  await q.query(
    `INSERT INTO ${S}.rejected (trigger, reason, sample, path, "offset", at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])`,
    [
      records.map((r) => pgText(r.trigger)),
      records.map((r) => clip(r.reason)),
      records.map((r) => clip(r.sample)),
      records.map((r) => (r.path === undefined ? null : pgText(r.path))),
      records.map((r) => (r.offset === undefined ? null : Math.trunc(r.offset))),
      records.map((r) => Math.trunc(r.at ?? now)),
    ],
  );
}

export async function listRejected(db: Db, S: string, trigger: string | undefined, limit = 50): Promise<RejectedRecord[]> {
  const lim = limit > 0 ? ` LIMIT ${Math.trunc(limit)}` : "";
  const cols = `trigger, reason, sample, path, "offset", at`;
  const rows =
    trigger === undefined
      ? await db.query<RejectedRow>(`SELECT ${cols} FROM ${S}.rejected ORDER BY id DESC${lim}`)
      : await db.query<RejectedRow>(`SELECT ${cols} FROM ${S}.rejected WHERE trigger = $1 ORDER BY id DESC${lim}`, [
          pgText(trigger),
        ]);
  return rows.map(toRejected);
}

interface IncidentTextRow extends Omit<IncidentRow, "detail"> {
  detail: string;
}

function toIncident(r: IncidentTextRow): Incident {
  return rowToIncident({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> });
}

/** `detail` is JSON text (kept as text: jsonb cannot hold a NUL character, a stack may). */
export async function addIncident(db: Db, S: string, i: NewIncident, now: number, detail: string): Promise<Incident> {
  const rows = await db.query<IncidentTextRow>(
    `INSERT INTO ${S}.incidents (service, host, cause, detected_at, detail) VALUES ($1, $2, $3, $4, $5)
     RETURNING ${INCIDENT_COLUMNS}`,
    [pgText(i.service), pgText(i.host ?? hostname()), i.cause, Math.trunc(i.detectedAt ?? now), detail],
  );
  return toIncident(rows[0]!);
}

export async function resolveIncidents(db: Db, S: string, service: string, at: number, opts: { id?: number; host?: string }): Promise<number> {
  const rows = await db.query(
    `UPDATE ${S}.incidents SET recovered_at = $1
      WHERE service = $2 AND recovered_at IS NULL AND ($3::bigint IS NULL OR id = $3) AND ($4::text IS NULL OR host = $4)
      RETURNING id`,
    [Math.trunc(at), pgText(service), opts.id ?? null, opts.host === undefined ? null : pgText(opts.host)],
  );
  return rows.length;
}

/** Merges `detail` into the incident's detail (new members win). */
export async function mergeIncidentDetail(
  db: Db,
  S: string,
  id: number,
  detail: Record<string, unknown>,
  encode: (v: unknown) => string,
): Promise<void> {
  await db.tx(async (q) => {
    const rows = await q.query<{ detail: string }>(`SELECT detail FROM ${S}.incidents WHERE id = $1 FOR UPDATE`, [id]);
    if (!rows[0]) throw new NotFoundError(`incident ${id}`);
    const merged = encode({ ...(JSON.parse(rows[0].detail) as Record<string, unknown>), ...detail });
    await q.query(`UPDATE ${S}.incidents SET detail = $1 WHERE id = $2`, [merged, id]);
  });
}

export async function listIncidents(
  db: Db,
  S: string,
  opts: { since?: number; service?: string; limit?: number } = {},
): Promise<Incident[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (opts.since !== undefined) (args.push(Math.trunc(opts.since)), where.push(`detected_at >= $${args.length}`));
  // A service's own incidents and its processes' (`workers` → `workers:1`, `workers:2`).
  if (opts.service !== undefined) {
    args.push(pgText(opts.service));
    where.push(`(service = $${args.length} OR left(service, length($${args.length}) + 1) = $${args.length} || ':')`);
  }
  const limit = opts.limit ?? 100;
  const sql =
    `SELECT ${INCIDENT_COLUMNS} FROM ${S}.incidents${where.length ? ` WHERE ${where.join(" AND ")}` : ""}` +
    ` ORDER BY detected_at DESC, id DESC` +
    (limit > 0 ? ` LIMIT ${Math.trunc(limit)}` : "");
  return (await db.query<IncidentTextRow>(sql, args)).map(toIncident);
}

/**
 * Takes the lock if free, expired, or already ours, for `ttlMs`. Like a job's lease, its
 * expiry is set and judged by the server's clock (SERVER_MS), so a host whose clock runs
 * ahead cannot take a lock its holder is still renewing.
 */
export async function tryLock(db: Db, S: string, name: string, owner: string, ttlMs: number): Promise<boolean> {
  const rows = await db.query(
    `INSERT INTO ${S}.locks (name, owner, expires_at) VALUES ($1, $2, ${SERVER_MS} + $3::bigint)
     ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
     WHERE ${S}.locks.owner = EXCLUDED.owner OR ${S}.locks.expires_at <= ${SERVER_MS}
     RETURNING name`,
    [pgText(name), pgText(owner), Math.max(0, Math.trunc(ttlMs))],
  );
  return rows.length === 1;
}

export async function unlock(db: Db, S: string, name: string, owner: string): Promise<void> {
  await db.query(`DELETE FROM ${S}.locks WHERE name = $1 AND owner = $2`, [pgText(name), pgText(owner)]);
}
