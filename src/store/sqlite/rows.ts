/** Rows as SQLite returns them, and their domain forms. */
import type Database from "better-sqlite3";
import type {
  AttemptRecord,
  Incident,
  IncidentCause,
  Job,
  JobSource,
  JobState,
  RejectedRecord,
} from "../../core/types.js";

export interface JobRow {
  id: number;
  queue: string;
  state: string;
  key: string | null;
  payload: string;
  result: string | null;
  error: string | null;
  attempt: number;
  max_attempts: number;
  stalls: number;
  priority: number;
  run_at: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  parent_id: number | null;
  root_id: number | null;
  source: string | null;
  worker_id: string | null;
  token: string | null;
  lease_until: number | null;
  history: string;
}

function parseOrNull(text: string | null): unknown {
  return text === null ? null : JSON.parse(text);
}

export function toJob(r: JobRow): Job {
  return {
    id: r.id,
    queue: r.queue,
    state: r.state as JobState,
    key: r.key,
    payload: JSON.parse(r.payload),
    result: parseOrNull(r.result),
    error: r.error,
    attempt: r.attempt,
    maxAttempts: r.max_attempts,
    stalls: r.stalls,
    priority: r.priority,
    runAt: r.run_at,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    parentId: r.parent_id,
    rootId: r.root_id,
    source: parseOrNull(r.source) as JobSource | null,
    workerId: r.worker_id,
    leaseUntil: r.lease_until,
    // Most jobs never fail: skip the parse on the hot path.
    history: r.history === "[]" ? [] : (JSON.parse(r.history) as AttemptRecord[]),
  };
}

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
    source: parseOrNull(source) as JobSource | null,
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

export interface RejectedRow {
  trigger: string;
  reason: string;
  sample: string;
  path: string | null;
  offset: number | null;
  at: number;
}

export function toRejected(r: RejectedRow): RejectedRecord {
  const out: RejectedRecord = { trigger: r.trigger, reason: r.reason, sample: r.sample, at: r.at };
  if (r.path !== null) out.path = r.path;
  if (r.offset !== null) out.offset = r.offset;
  return out;
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
