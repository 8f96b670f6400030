/**
 * The job model shared by every part of Vigil. No I/O here.
 *
 * Glossary
 * - **job**: one unit of work on a named **queue**, with a JSON **payload**. Its **result**
 *   (JSON) is stored when it completes, and becomes the payload of the next stage's job.
 * - **attempt**: one run of a handler for a job. `attempt` counts from 1; a claim starts
 *   an attempt, a graceful give-back (`release`) takes it back.
 * - **lease**: the right of one worker to run one active job until `leaseUntil` (ms since
 *   the epoch). Each claim mints a fresh random **token**; renewals and completions that
 *   carry an older token are refused (**fencing**), so a worker that wakes from SIGSTOP
 *   cannot overwrite the work of the worker that took its job over.
 * - **stall**: a lease that ran out, or was released because its worker died. The job goes
 *   back to `waiting` (the attempt counts) or to `dead` after `maxStalls` stalls.
 * - **key**: an idempotency key; enqueueing twice with one key, while the first job is not
 *   dead or cancelled, returns the first job.
 * - **root**: the first job of a pipeline run (the original idea); every job made from it by
 *   a stage hand-off carries its `rootId` and its `parentId`.
 * - **source**: where a trigger found the record that became the job (trigger, file, offset).
 * - **cursor**: a trigger's persisted position, advanced in the same transaction as the
 *   jobs it enqueues.
 * - **incident**: a recorded fault of a supervised service (crash, stall, ...), with the
 *   time it was detected and the time the service was healthy again.
 */

/** Where a job is in its life. See DESIGN.md, "Job lifecycle". */
export type JobState =
  | "scheduled" // run_at is in the future
  | "waiting" // ready to be claimed
  | "active" // leased to a worker
  | "completed"
  | "failed" // the last attempt failed; it is retried at run_at
  | "dead" // attempts exhausted, stalled too often, or a non-retryable error
  | "cancelled";

export const JOB_STATES: readonly JobState[] = [
  "scheduled",
  "waiting",
  "active",
  "completed",
  "failed",
  "dead",
  "cancelled",
];

/** States from which a job will never run again by itself. */
export const FINAL_STATES: readonly JobState[] = ["completed", "dead", "cancelled"];

/** Where a trigger found the record that became this job. */
export interface JobSource {
  trigger: string;
  path?: string;
  offset?: number;
  [extra: string]: unknown;
}

/** What happened in one attempt that did not complete. */
export interface AttemptRecord {
  attempt: number;
  /** `error` (the handler threw), `stall` (lease expired or worker died), `timeout`. */
  outcome: "error" | "stall" | "timeout" | "cancelled";
  message: string;
  stack?: string;
  workerId?: string | null;
  /** ms since the epoch */
  at: number;
}

export interface Job {
  id: number;
  queue: string;
  state: JobState;
  key: string | null;
  payload: unknown;
  result: unknown;
  /** The last error message, if the last attempt failed. */
  error: string | null;
  /** The current (or last) attempt, from 1; 0 before the first claim. */
  attempt: number;
  maxAttempts: number;
  stalls: number;
  /** Higher runs first (default 0). */
  priority: number;
  /** ms since the epoch: not before this. */
  runAt: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  parentId: number | null;
  rootId: number | null;
  source: JobSource | null;
  /** The worker that holds the lease, while active; once completed, the one that completed it. */
  workerId: string | null;
  leaseUntil: number | null;
  /** Failed and stalled attempts, oldest first. */
  history: AttemptRecord[];
  /** Set by a `preview` read: `payload` is only the start of its JSON text. */
  payloadTruncated?: true;
  /** Set by a `preview` read: `result` is only the start of its JSON text. */
  resultTruncated?: true;
}

export interface EnqueueOptions {
  /** Idempotency key: a second enqueue with the same key returns the existing job. */
  key?: string;
  /** Run no earlier than this many ms from now. */
  delayMs?: number;
  /** Run no earlier than this time (ms since the epoch). Overrides `delayMs`. */
  runAt?: number;
  /** Higher runs first (default 0). */
  priority?: number;
  /** Attempts before the job is dead (default 5). */
  maxAttempts?: number;
  /**
   * Stalls before the job is dead; kept with the job, so whichever process frees it judges
   * it by this. Default: its queue's `maxStalls` as the enqueuing store knows it
   * (`queueMaxStalls`), else the freeing process's.
   */
  maxStalls?: number;
  parentId?: number | null;
  rootId?: number | null;
  source?: JobSource | null;
}

export interface EnqueueItem extends EnqueueOptions {
  queue: string;
  payload: unknown;
}

/** Result of an enqueue: the job, and whether this call created it (false: key existed). */
export interface EnqueueResult {
  job: Job;
  created: boolean;
}

/** A worker's right to run one job; what `claim` hands out. */
export interface Lease {
  jobId: number;
  token: string;
  workerId: string;
  leaseUntil: number;
  job: Job;
}

/** The part of a lease the store needs to check fencing. */
export type LeaseRef = Pick<Lease, "jobId" | "token">;

/** A job a stage hands on: created in the same transaction as the completion. */
export interface NextJob {
  queue: string;
  payload: unknown;
  key?: string;
  priority?: number;
  delayMs?: number;
  maxAttempts?: number;
}

export interface JobErrorInfo {
  message: string;
  stack?: string;
  outcome?: "error" | "timeout";
}

export type QueueCounts = Record<JobState, number>;

export interface JobFilter {
  queue?: string;
  state?: JobState;
  /** Newest first; default 50; 0 means all. */
  limit?: number;
  /** Only jobs with id below this (paging). */
  beforeId?: number;
  rootId?: number;
  /**
   * Read at most this many characters of each payload's and result's JSON text: a longer
   * one comes back as that much of its text (a string) with `payloadTruncated` or
   * `resultTruncated` set, and the rest never leaves the store. Absent: whole.
   */
  preview?: number;
}

/**
 * `store-refused`: the store refused one job's completion for what it carried (a server-side
 * error, not an outage); the job is dead and the rest of its worker's batch committed.
 */
export type IncidentCause = "crash" | "stall" | "job-timeout" | "memory" | "probe" | "stop" | "store-refused";

export interface Incident {
  id: number;
  service: string;
  host: string;
  cause: IncidentCause;
  /** ms since the epoch */
  detectedAt: number;
  recoveredAt: number | null;
  detail: Record<string, unknown>;
}

export interface NewIncident {
  service: string;
  host?: string;
  cause: IncidentCause;
  detectedAt?: number;
  detail?: Record<string, unknown>;
}

/** A record a trigger could not turn into a job (malformed, too long); kept for people. */
export interface RejectedRecord {
  trigger: string;
  reason: string;
  /** The start of the record, bounded. */
  sample: string;
  path?: string;
  offset?: number;
  at?: number;
}

/** Per-queue durations and throughput over a window, from completed jobs. */
export interface QueueReport {
  queue: string;
  completed: number;
  dead: number;
  failedAttempts: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

export function emptyCounts(): QueueCounts {
  return { scheduled: 0, waiting: 0, active: 0, completed: 0, failed: 0, dead: 0, cancelled: 0 };
}
