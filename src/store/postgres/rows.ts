/** Rows as PostgreSQL returns them, and their domain shapes. */
import type { AttemptRecord, Incident, IncidentCause, Job, JobSource, JobState, RejectedRecord } from "../../core/types.js";

export interface JobRow {
  id: number;
  queue: string;
  state: JobState;
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
  history: AttemptRecord[];
}

/** The job columns, qualified by `alias` when given (for statements that join). */
export function jobColumns(alias?: string): string {
  const p = alias ? `${alias}.` : "";
  return [
    "id", "queue", "state", "key", "payload", "result", "error", "attempt", "max_attempts", "stalls",
    "priority", "run_at", "created_at", "started_at", "finished_at", "parent_id", "root_id", "source",
    "worker_id", "token", "lease_until", "history",
  ]
    .map((c) => p + c)
    .join(", ");
}

function parseJson(text: string | null): unknown {
  return text === null ? null : JSON.parse(text);
}

export function rowToJob(r: JobRow): Job {
  return {
    id: r.id,
    queue: r.queue,
    state: r.state,
    key: r.key,
    payload: parseJson(r.payload),
    result: parseJson(r.result),
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
    source: parseJson(r.source) as JobSource | null,
    workerId: r.worker_id,
    leaseUntil: r.lease_until,
    history: r.history,
  };
}

export interface IncidentRow {
  id: number;
  service: string;
  host: string;
  cause: IncidentCause;
  detected_at: number;
  recovered_at: number | null;
  detail: Record<string, unknown>;
}

export function rowToIncident(r: IncidentRow): Incident {
  return {
    id: r.id,
    service: r.service,
    host: r.host,
    cause: r.cause,
    detectedAt: r.detected_at,
    recoveredAt: r.recovered_at,
    detail: r.detail,
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

export function rowToRejected(r: RejectedRow): RejectedRecord {
  const out: RejectedRecord = { trigger: r.trigger, reason: r.reason, sample: r.sample, at: r.at };
  if (r.path !== null) out.path = r.path;
  if (r.offset !== null) out.offset = r.offset;
  return out;
}
