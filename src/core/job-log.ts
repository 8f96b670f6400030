/** What `GET /api/jobs/:id/log` answers (src/http/job-log.ts); plain types, shared with the dashboard. */
export interface JobLogLine {
  /** ms since the epoch, as the logger stamped it. */
  at: number | null;
  level: string;
  attempt: number | null;
  /** The worker that ran the attempt (`host:service:n:pid.k`). */
  worker: string | null;
  msg: string;
  /** The line's other fields (the command's `stderr`, a handler's own fields). */
  fields: Record<string, unknown>;
  /** The log file it came from (`workers:1.log`). */
  file: string;
}

export interface JobLog {
  id: number;
  /** False on a server given no log folder (then `lines` is empty). */
  available: boolean;
  /** Oldest first, at most the newest MAX_JOB_LOG_LINES. */
  lines: JobLogLine[];
  /** How many log files were searched. */
  files: number;
  /** More lines were found than are returned. */
  truncated: boolean;
}
