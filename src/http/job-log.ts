/**
 * A job's own log lines, for the Runs page: what its handler wrote with `ctx.log` (and a
 * command's stderr, which the command handler logs the same way), found in the worker
 * processes' log files under `.vigil/logs/`. Each of those lines is JSON carrying the
 * job's id (the job's child logger adds `jobId`). Reading is bounded: only the end of
 * each file (the live one and its newest rotation; `tailLines` reads at most 4 MB) is
 * searched, so a job's lines are found while they are recent, and a request costs
 * milliseconds however large the logs have grown. The files are read asynchronously: the
 * HTTP server shares its process, and event loop, with the supervisor.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { tailLines } from "../project/logs.js";
import type { JobLog, JobLogLine } from "../core/job-log.js";

/** At most this many lines are returned (the newest). */
export const MAX_JOB_LOG_LINES = 200;

const LEVELS: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };
/** Fields every line of a job's logger carries: shown as columns, not repeated in `fields`. */
const OWN = new Set(["level", "time", "msg", "pid", "hostname", "jobId", "queue", "attempt", "workerId", "service", "name", "v"]);

/** The lines job `id` logged, oldest first; `files` is how many log files were searched. */
export async function readJobLog(logsDir: string, id: number): Promise<Omit<JobLog, "id" | "available">> {
  let names: string[];
  try {
    names = (await readdir(logsDir)).filter((n) => /\.log(\.1)?$/.test(n));
  } catch {
    return { lines: [], files: 0, truncated: false };
  }
  // A cheap test before parsing: the logger writes `"jobId":ID` followed by , or }.
  const mark = `"jobId":${id}`;
  const lines: JobLogLine[] = [];
  for (const name of names) {
    for (const raw of await tailLines(join(logsDir, name))) {
      const at = raw.indexOf(mark);
      if (at < 0 || !/[,}]/.test(raw[at + mark.length] ?? "")) continue;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (o["jobId"] !== id) continue;
      const fields: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(o)) if (!OWN.has(k)) fields[k] = v;
      lines.push({
        at: typeof o["time"] === "number" ? o["time"] : null,
        level: LEVELS[o["level"] as number] ?? String(o["level"] ?? ""),
        attempt: typeof o["attempt"] === "number" ? o["attempt"] : null,
        worker: typeof o["workerId"] === "string" ? o["workerId"] : null,
        msg: typeof o["msg"] === "string" ? o["msg"] : "",
        fields,
        file: name,
      });
    }
  }
  lines.sort((a, b) => (a.at ?? 0) - (b.at ?? 0));
  const truncated = lines.length > MAX_JOB_LOG_LINES;
  return { lines: truncated ? lines.slice(-MAX_JOB_LOG_LINES) : lines, files: names.length, truncated };
}
