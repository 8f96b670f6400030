/** What the store-upkeep health checks read from a SQLite store: its file, its WAL, its jobs. */
import { statSync } from "node:fs";
import type { StoreUpkeep } from "../store.js";
import type { Prepare } from "./rows.js";

const bytes = (path: string): number => statSync(path, { throwIfNoEntry: false })?.size ?? 0;

export function sqliteUpkeep(prep: Prepare, file: string): StoreUpkeep {
  const walBytes = bytes(`${file}-wal`);
  // The span of ids, not a count (which reads every row): pruning removes the oldest jobs,
  // so what is held is close to one run of ids. Two sub-selects: SQLite reads min() or
  // max() from the end of the primary key only when it is the query's one aggregate; both
  // in one SELECT scanned every row (5 s at ten million jobs).
  const span = prep("SELECT coalesce((SELECT max(id) FROM jobs) - (SELECT min(id) FROM jobs) + 1, 0)").pluck().get() as number;
  return { engine: "sqlite", sizeBytes: bytes(file) + walBytes, walBytes, jobsHeld: span };
}
