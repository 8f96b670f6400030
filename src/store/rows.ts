/**
 * Row → domain mapping the SQL adapters share: the jobs table's columns (snake_case, the
 * same in both schemas) to a `Job`, and `rejected` rows to a `RejectedRecord`. What differs
 * per engine stays in the adapter: how `history` arrives (JSON text in SQLite, already
 * parsed jsonb in PostgreSQL) and the incidents' `detail` column likewise.
 */
import type { AttemptRecord, Job, JobSource, JobState, RejectedRecord } from "../core/types.js";

/** A jobs-table row; `History` is how the engine returns the `history` column. */
export interface JobRowOf<History> {
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
  history: History;
  /** Set (true or 1) by a preview read when `payload` / `result` holds only the start. */
  payload_cut?: boolean | number;
  result_cut?: boolean | number;
}

/** The jobs-table columns a `Job` is made from. */
export const JOB_COLUMNS = [
  "id", "queue", "state", "key", "payload", "result", "error", "attempt", "max_attempts", "stalls",
  "priority", "run_at", "created_at", "started_at", "finished_at", "parent_id", "root_id", "source",
  "worker_id", "token", "lease_until", "history",
] as const;

/**
 * The job columns for a preview read: `payload` and `result` as `cut` makes them, and
 * whether each was longer than `chars` (an SQL expression) as `payload_cut` / `result_cut`.
 */
export function jobSelectList(preview: { chars: string; cut: (col: string) => string }): string {
  return JOB_COLUMNS.map((c) => (c === "payload" || c === "result" ? preview.cut(c) : c))
    .concat([`length(payload) > ${preview.chars} AS payload_cut`, `length(result) > ${preview.chars} AS result_cut`])
    .join(", ");
}

/** JSON text as a value; SQL NULL as null. */
export function parseJsonOrNull(text: string | null): unknown {
  return text === null ? null : JSON.parse(text);
}

/** A jobs-table row as a `Job`, with its `history` already decoded by the adapter. */
export function jobFromRow(r: JobRowOf<unknown>, history: AttemptRecord[]): Job {
  const job = jobFields(r, history);
  if (r.payload_cut) (job.payload = r.payload), (job.payloadTruncated = true);
  if (r.result_cut) (job.result = r.result), (job.resultTruncated = true);
  return job;
}

function jobFields(r: JobRowOf<unknown>, history: AttemptRecord[]): Job {
  return {
    id: r.id,
    queue: r.queue,
    state: r.state as JobState,
    key: r.key,
    payload: r.payload_cut ? null : JSON.parse(r.payload),
    result: r.result_cut ? null : parseJsonOrNull(r.result),
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
    source: parseJsonOrNull(r.source) as JobSource | null,
    workerId: r.worker_id,
    leaseUntil: r.lease_until,
    history,
  };
}

/** A rejected record keeps this much of its reason and sample: enough to find it, never a whole file. */
export const REJECTED_SAMPLE_CHARS = 1024;

/** A `rejected` row (a trigger line that did not become a job). */
export interface RejectedRow {
  trigger: string;
  reason: string;
  sample: string;
  path: string | null;
  offset: number | null;
  at: number;
}

/** A `rejected` row as a `RejectedRecord`; `path` and `offset` only when set. */
export function toRejected(r: RejectedRow): RejectedRecord {
  const out: RejectedRecord = { trigger: r.trigger, reason: r.reason, sample: r.sample, at: r.at };
  if (r.path !== null) out.path = r.path;
  if (r.offset !== null) out.offset = r.offset;
  return out;
}
