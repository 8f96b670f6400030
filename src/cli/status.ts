/**
 * `vigil status [--json]`: the live supervisor's view through its control socket when one
 * runs; else, while the pid file names a live supervisor that did not answer, its
 * `.vigil/status.json` if fresh; else the store's counts and incidents, with the status
 * file's services shown stopped. The JSON is a StatusSnapshot (`{ services, queues,
 * triggers, incidents, ... }`), times in ms.
 */
import type { Command } from "commander";
import { formatDuration } from "../core/duration.js";
import type { StatusSnapshot } from "../core/status.js";
import { fmtTime, printJson, printTable } from "./output.js";
import { projectDir } from "./context.js";
import { summary } from "./incidents.js";

/** A status file older than this is not shown as current (several missed rewrites). */
const STATUS_FILE_FRESH_MS = 10_000;

export function register(program: Command): void {
  program
    .command("status")
    .description("services, queues, triggers and the last incidents")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const snap = await readSnapshot(cmd);
      if (flags.json) return printJson(snap);
      printSnapshot(snap);
    });
}

export async function readSnapshot(cmd: Command): Promise<StatusSnapshot> {
  const [{ askSupervisor }, { vigilPaths }, { readPidFile }, { readStatusFile }] = await Promise.all([
    import("../supervisor/supervisor.js"),
    import("../project/paths.js"),
    import("../project/pid-file.js"),
    import("../project/status-file.js"),
  ]);
  const dir = projectDir(cmd);
  const live = await askSupervisor(dir, { op: "status" });
  if (live?.ok && live.snapshot) return live.snapshot as StatusSnapshot;
  const stateDir = vigilPaths(dir).root;
  // A supervisor that runs but did not answer (busy, or its socket is gone): its last file.
  // None runs (stopped, or killed): the file is history, and the store has the counts.
  if (readPidFile(stateDir).alive) {
    const file = readStatusFile(stateDir);
    if (file && file.ageMs <= STATUS_FILE_FRESH_MS) return file.snapshot;
  }
  const [{ withStore }, { storeSnapshot }] = await Promise.all([import("./context.js"), import("../health/snapshot.js")]);
  return withStore(cmd, (store, project) => storeSnapshot(store, { stateDir, queues: Object.keys(project.config?.queues ?? {}) }));
}

function printSnapshot(s: StatusSnapshot): void {
  const now = Date.now();
  const from = s.source === "supervisor" ? `supervisor pid ${s.supervisor?.pid} on ${s.supervisor?.host}, up ${formatDuration(now - (s.supervisor?.startedAt ?? now))}` : s.source === "status-file" ? `status file from ${fmtTime(s.at)}` : "no supervisor running; counts from the store";
  process.stdout.write(`vigil status (${from})\n\nservices\n`);
  printTable(
    ["HOST", "NAME", "STATE", "PID", "RESTARTS", "HEARTBEAT", "ACTIVE", "RSS", "UP"],
    s.services.map((r) => [r.host ?? s.supervisor?.host ?? "-", r.name, r.state, r.pid, r.restarts, r.heartbeatAgeMs === null ? "-" : formatDuration(r.heartbeatAgeMs) + " ago", r.activeJobs ?? 0, r.rssBytes ? `${Math.round(r.rssBytes / 1048576)} MB` : "-", r.startedAt ? formatDuration(now - r.startedAt) : "-"]),
  );
  process.stdout.write("\nqueues\n");
  const paused = new Set(s.paused ?? []);
  printTable(
    ["QUEUE", "SCHEDULED", "WAITING", "ACTIVE", "COMPLETED", "FAILED", "DEAD", "CANCELLED", "STATE"],
    Object.entries(s.queues).map(([q, c]) => [q, c.scheduled, c.waiting, c.active, c.completed, c.failed, c.dead, c.cancelled, paused.has(q) ? "paused" : "running"]),
  );
  if (s.triggers.length > 0) {
    process.stdout.write("\ntriggers\n");
    printTable(
      ["NAME", "KIND", "QUEUE", "HOST", "LEADER", "LAST POLL", "LAG", "SEEN", "REJECTED", "LAST TICK", "NEXT TICK", "ERROR"],
      s.triggers.map((t) => [t.name, t.kind, t.queue, t.host ?? "any", t.leader === undefined ? "-" : t.leader ? "here" : "elsewhere", t.lastPollAt ? formatDuration(now - t.lastPollAt) + " ago" : "-", formatDuration(t.lag), t.seen, t.rejected, t.lastTickAt ? fmtTime(t.lastTickAt) : "-", t.nextTickAt ? fmtTime(t.nextTickAt) : "-", t.error]),
    );
  }
  process.stdout.write("\nlast incidents\n");
  printTable(
    ["DETECTED", "HOST", "SERVICE", "CAUSE", "RECOVERED IN", "WHAT"],
    s.incidents.slice(0, 5).map((i) => [fmtTime(i.detectedAt), i.host || "-", i.service, i.cause, i.recoveredAt ? formatDuration(i.recoveredAt - i.detectedAt) : "open", summary(i)]),
  );
}
