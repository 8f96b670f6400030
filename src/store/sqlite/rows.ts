/** Rows as SQLite returns them, and their domain forms. */
import type Database from "better-sqlite3";
import type { AttemptRecord, Incident, IncidentCause, Job, JobSource } from "../../core/types.js";
import { JOB_COLUMNS, jobFromRow, parseJsonOrNull, type JobRowOf } from "../rows.js";

/** A jobs-table row as SQLite returns it: `history` is JSON text. */
export type JobRow = JobRowOf<string>;

export function toJob(r: JobRow): Job {
  // Most jobs never fail: skip the parse on the hot path.
  return jobFromRow(r, r.history === "[]" ? [] : (JSON.parse(r.history) as AttemptRecord[]));
}

/**
 * Every column of a job row, named, in the order both `jobs` and `job_history` have them
 * (migration 10): a row moves between the two with `INSERT INTO … (ROW_COLUMNS) SELECT
 * ROW_COLUMNS`, and a read over both is a UNION ALL of the same list.
 */
export const ROW_COLUMNS = [...JOB_COLUMNS, "max_stalls", "grp"].join(", ");

/** The columns a claim reads, in this order, as a raw array (see `leasedJob`). */
export const CLAIM_COLUMNS = [
  "id", "queue", "key", "payload", "error", "attempt", "max_attempts", "stalls", "priority",
  "run_at", "created_at", "parent_id", "root_id", "source", "history",
] as const;

type ClaimRow = [
  number, string, string | null, string, string | null, number, number, number, number,
  number, number, number | null, number | null, string | null, string,
];

/** The job a claim just leased, from its raw row (read before the update) and the lease. */
export function leasedJob(raw: unknown[], workerId: string, now: number, leaseUntil: number): Job {
  const [id, queue, key, payload, error, attempt, maxAttempts, stalls, priority, runAt, createdAt, parentId, rootId, source, history] =
    raw as ClaimRow;
  return {
    id,
    queue,
    state: "active",
    key,
    payload: JSON.parse(payload),
    result: null,
    error,
    attempt: attempt + 1,
    maxAttempts,
    stalls,
    priority,
    runAt,
    createdAt,
    startedAt: now,
    finishedAt: null,
    parentId,
    rootId,
    source: parseJsonOrNull(source) as JobSource | null,
    workerId,
    leaseUntil,
    history: history === "[]" ? [] : (JSON.parse(history) as AttemptRecord[]),
  };
}

export interface IncidentRow {
  id: number;
  service: string;
  host: string;
  cause: string;
  detected_at: number;
  recovered_at: number | null;
  detail: string;
}

export function toIncident(r: IncidentRow): Incident {
  return {
    id: r.id,
    service: r.service,
    host: r.host,
    cause: r.cause as IncidentCause,
    detectedAt: r.detected_at,
    recoveredAt: r.recovered_at,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
  };
}

/** Prepares a statement once per connection and hands back the cached one after that. */
export type Prepare = (sql: string) => Database.Statement<unknown[], unknown>;

export function statementCache(db: Database.Database): Prepare {
  const cache = new Map<string, Database.Statement<unknown[], unknown>>();
  return (sql) => {
    let stmt = cache.get(sql);
    if (!stmt) cache.set(sql, (stmt = db.prepare(sql)));
    return stmt;
  };
}
