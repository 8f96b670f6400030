/** What the store-upkeep health checks read from a SQLite store: its file, its WAL, its jobs. */
import { statSync } from "node:fs";
import type { StoreUpkeep } from "../store.js";
import type { Prepare } from "./rows.js";

const bytes = (path: string): number => statSync(path, { throwIfNoEntry: false })?.size ?? 0;

export function sqliteUpkeep(prep: Prepare, file: string): StoreUpkeep {
  const walBytes = bytes(`${file}-wal`);
  // The span of ids, not a count (which reads every row): pruning removes the oldest jobs,
  // so what is held is close to one run of ids, over `jobs` and `job_history` together.
  // One sub-select per end of each table: SQLite reads min() or max() from the end of the
  // primary key only when it is the query's one aggregate; both in one SELECT scanned every
  // row (5 s at ten million jobs). (The scalar max() and min() of a NULL are NULL, hence
  // the coalesces: either table may be empty.)
  const span = prep(
    `SELECT coalesce(max(coalesce(hj, hh), coalesce(hh, hj)) - min(coalesce(lj, lh), coalesce(lh, lj)) + 1, 0) FROM (SELECT
       (SELECT max(id) FROM jobs) AS hj, (SELECT max(id) FROM job_history) AS hh,
       (SELECT min(id) FROM jobs) AS lj, (SELECT min(id) FROM job_history) AS lh)`,
  )
    .pluck()
    .get() as number;
  return { engine: "sqlite", sizeBytes: bytes(file) + walBytes, walBytes, jobsHeld: span };
}
