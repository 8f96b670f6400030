/** Rows as PostgreSQL returns them, and their domain shapes. */
import type { AttemptRecord, Incident, IncidentCause, Job } from "../../core/types.js";
import { JOB_COLUMNS, jobFromRow, type JobRowOf } from "../rows.js";

/** A jobs row as PostgreSQL returns it: `history` is jsonb, already decoded. */
export type JobRow = JobRowOf<AttemptRecord[]>;

/**
 * Every column a job row stores, in one order for `jobs` and `job_history` (migration 12):
 * a job moving between them is written with this list.
 */
export const STORED_COLUMNS: readonly string[] = [...JOB_COLUMNS, "max_stalls", "grp"];

/** The job columns, qualified by `alias` when given (for statements that join). */
export function jobColumns(alias?: string): string {
  const p = alias ? `${alias}.` : "";
  return JOB_COLUMNS.map((c) => p + c).join(", ");
}

export function rowToJob(r: JobRow): Job {
  return jobFromRow(r, r.history);
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
