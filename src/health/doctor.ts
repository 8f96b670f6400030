/**
 * `vigil doctor`: a diagnosis a person can act on. Each finding names what was looked at,
 * what was found, and one sentence saying what to do. Read-only: it changes nothing (the
 * fixes it suggests — `vigil start`, `vigil jobs retry` — are for the person to run).
 */
import { hostname } from "node:os";
import { formatDuration } from "../core/duration.js";
import type { Incident, Job } from "../core/types.js";
import { groupMembers, isAlive } from "../os/process.js";
import type { Store } from "../store/store.js";
import { readChildren } from "../project/children-file.js";
import { vigilPaths } from "../project/paths.js";
import { readPidFile } from "../project/pid-file.js";
import { readStatusFile } from "../project/status-file.js";

/** `ok`: nothing to do; `warning`: worth a look; `problem`: act now (`vigil doctor` exits 1 / 2). */
export type FindingSeverity = "ok" | "warning" | "problem";

/** One thing `vigil doctor` looked at, what it found and what to do. */
export interface Finding {
  /** integrity, supervisor, orphans, leases, queues, dead-jobs, incidents */
  area: string;
  severity: FindingSeverity;
  /** What was found, one sentence. */
  summary: string;
  /** What to do about it, one sentence. */
  advice: string;
  /** Supporting facts (job ids, stacks, figures) for `--json` and the detailed print. */
  detail?: Record<string, unknown>;
}

/** What the diagnosis reads. */
export interface DoctorInput {
  store: Store | null;
  storeError?: string;
  /** The project folder (holds `.vigil/`). */
  dir: string;
  /** This host's name as workers put it in their ids (default: the OS host name). */
  host?: string;
  /** How many recent incidents to show (default 5). */
  incidents?: number;
  now?: number;
}

/** Runs every look of `vigil doctor` and returns the findings in print order. */
export async function diagnose(input: DoctorInput): Promise<Finding[]> {
  const now = input.now ?? Date.now();
  const paths = vigilPaths(input.dir);
  const out: Finding[] = [];
  /** What the integrity check found; the looks that read jobs skip a damaged store. */
  let problem: string | null = null;
  const pid = readPidFile(paths.root);
  const status = readStatusFile(paths.root, now);

  if (!input.store) {
    out.push({
      area: "integrity",
      severity: "problem",
      summary: `The store cannot be opened: ${input.storeError ?? "unknown error"}.`,
      advice: "If the file is damaged, stop Vigil and restore the last backup (docs/troubleshooting.md, \"Corrupted store\").",
    });
  } else {
    problem = await input.store.check();
    out.push(
      problem
        ? {
            area: "integrity",
            severity: "problem",
            summary: `The store ${input.store.location} failed its integrity check: ${problem}.`,
            advice: "Stop Vigil, copy the damaged file aside, and restore the last `vigil backup` (docs/troubleshooting.md).",
          }
        : { area: "integrity", severity: "ok", summary: `The store ${input.store.location} passed its integrity check.`, advice: "Nothing to do." },
    );
  }

  // Supervisor and what a dead one left behind.
  const children = readChildren(paths.childrenFile);
  if (pid.pid !== null && !pid.alive) {
    out.push({
      area: "supervisor",
      severity: "warning",
      summary: `${pid.path} names pid ${pid.pid}, which is not a running supervisor (it died without cleaning up).`,
      advice: "Run `vigil start --detach`: it takes over the stale pid file, ends orphans and frees their jobs.",
    });
  } else if (pid.pid === null) {
    out.push({ area: "supervisor", severity: "warning", summary: "No supervisor is running for this project.", advice: "Start it with `vigil start --detach`." });
  } else {
    out.push({ area: "supervisor", severity: "ok", summary: `The supervisor runs as pid ${pid.pid}.`, advice: "Nothing to do." });
  }
  if (!pid.alive) {
    const orphans = children
      .map((c) => ({ ...c, members: groupMembers(c.pid) }))
      .filter((c) => c.members.length > 0);
    out.push(
      orphans.length > 0
        ? {
            area: "orphans",
            severity: "problem",
            summary: `${orphans.length} process group(s) of the dead supervisor still run: ${orphans.map((o) => `${o.name} (pgid ${o.pid})`).join(", ")}.`,
            advice: `Run \`vigil start --detach\` (it ends them and frees their jobs), or end them by hand with \`kill -TERM -${orphans[0]!.pid}\`.`,
            detail: { orphans: orphans.map((o) => ({ name: o.name, pgid: o.pid, pids: o.members, workerId: o.workerId })) },
          }
        : { area: "orphans", severity: "ok", summary: "No orphaned worker processes.", advice: "Nothing to do." },
    );
  }

  if (input.store && problem === null) {
    out.push(await leaseFinding(input.store, now, input.host ?? hostname(), pid.alive, status?.snapshot.services ?? [], children));
    out.push(...(await queueFindings(input.store, now)));
    out.push(...(await incidentFindings(input.store, input.incidents ?? 5)));
  }
  return out;
}

async function leaseFinding(
  store: Store,
  now: number,
  host: string,
  supervisorAlive: boolean,
  rows: { workerId?: string | null; state: string }[],
  children: { workerId: string | null; pid: number }[],
): Promise<Finding> {
  const active = await store.list({ state: "active", limit: 0 });
  const live = new Set(rows.filter((r) => r.state !== "stopped").map((r) => r.workerId).filter(Boolean));
  const stuck: { job: Job; why: string }[] = [];
  for (const job of active) {
    if (job.leaseUntil !== null && job.leaseUntil < now) {
      stuck.push({ job, why: `lease expired ${formatDuration(now - job.leaseUntil)} ago` });
      continue;
    }
    const w = job.workerId ?? "";
    const child = children.find((c) => c.workerId === w);
    if (child && !isAlive(child.pid)) stuck.push({ job, why: `worker ${w} (pid ${child.pid}) is gone` });
    else if (supervisorAlive && w.startsWith(`${host}:`) && live.size > 0 && !live.has(w)) {
      stuck.push({ job, why: `worker ${w} is not among the running processes` });
    }
  }
  if (stuck.length === 0) {
    return { area: "leases", severity: "ok", summary: `${active.length} active job(s), each held by a live worker.`, advice: "Nothing to do." };
  }
  return {
    area: "leases",
    severity: "warning",
    summary: `${stuck.length} active job(s) are held by dead workers (e.g. job ${stuck[0]!.job.id}: ${stuck[0]!.why}).`,
    advice: "They return to waiting at the next poll of any worker once their lease runs out; `vigil start` frees a dead supervisor's at once.",
    detail: { jobs: stuck.slice(0, 20).map((s) => ({ id: s.job.id, queue: s.job.queue, workerId: s.job.workerId, why: s.why })) },
  };
}

async function queueFindings(store: Store, now: number): Promise<Finding[]> {
  const [report, waiting, stats] = await Promise.all([store.report(now - 86_400_000), store.oldestWaiting(), store.stats()]);
  const out: Finding[] = [];
  const slow = report.filter((r) => r.p95Ms !== null).sort((a, b) => b.p95Ms! - a.p95Ms!).slice(0, 3);
  out.push({
    area: "queues",
    severity: "ok",
    summary:
      slow.length > 0
        ? `Slowest queues over 24 h (p95): ${slow.map((r) => `${r.queue} ${formatDuration(r.p95Ms)}`).join(", ")}.`
        : "No job finished in the last 24 h.",
    advice: slow.length > 0 ? `If ${slow[0]!.queue} is slower than it should be, raise its concurrency or look at its handler.` : "Nothing to do.",
    detail: { slowest: slow },
  });
  const [oldQueue, oldAge] = Object.entries(waiting).sort((a, b) => b[1] - a[1])[0] ?? [null, 0];
  if (oldQueue !== null && oldAge > 60_000) {
    out.push({
      area: "queues",
      severity: "warning",
      summary: `Queue ${oldQueue} has a job waiting for ${formatDuration(oldAge)}.`,
      advice: `Check that a service lists ${oldQueue} under \`queues:\` and is running (\`vigil status\`).`,
    });
  }
  const dead = Object.entries(stats).filter(([, c]) => c.dead > 0);
  if (dead.length > 0) {
    const top = dead.sort((a, b) => b[1].dead - a[1].dead)[0]!;
    out.push({
      area: "dead-jobs",
      severity: "warning",
      summary: `${dead.reduce((n, [, c]) => n + c.dead, 0)} dead job(s) in all, most on ${top[0]} (${top[1].dead}).`,
      advice: `Read why with \`vigil jobs list --state dead --queue ${top[0]}\`, fix the cause, then \`vigil jobs retry ID\`.`,
    });
  }
  return out;
}

const CAUSE_ADVICE: Record<string, string> = {
  crash: "Read the service's log (`vigil logs SERVICE`) for the error that ended it.",
  stall: "The process stopped answering; the stack shows where its event loop was blocked — make that code async or move it to a command handler.",
  "job-timeout": "A handler ran past its timeout; raise the queue's `timeout` or make the handler honour `ctx.signal`.",
  "store-refused":
    "The store refused one job's result or next-stage jobs (the incident's `error` says why); the job is dead, the worker went on. Fix the handler or the schema, then `vigil jobs retry ID`.",
  memory: "The process grew past `maxMemory`; look for a leak in the handler, or raise the limit.",
  probe: "The service's probe failed; check that it listens and answers 2xx.",
  stop: "A stop or restart someone asked for; nothing to fix.",
};

async function incidentFindings(store: Store, limit: number): Promise<Finding[]> {
  const list = await store.listIncidents({ limit });
  if (list.length === 0) return [{ area: "incidents", severity: "ok", summary: "No incidents recorded.", advice: "Nothing to do." }];
  return list.map((inc: Incident) => {
    const d = inc.detail ?? {};
    const stack = Array.isArray(d["stack"]) ? (d["stack"] as string[]) : null;
    const blockedIn = typeof d["blockedIn"] === "string" ? d["blockedIn"] : null;
    const when = new Date(inc.detectedAt).toISOString().replace(/\.\d{3}Z$/, "Z");
    const recovery = inc.recoveredAt ? `recovered after ${formatDuration(inc.recoveredAt - inc.detectedAt)}` : "not recovered yet";
    return {
      area: "incidents",
      severity: inc.recoveredAt || inc.cause === "stop" ? "ok" : "warning",
      summary: `${when} ${inc.service}: ${inc.cause}${blockedIn ? `, blocked in ${blockedIn}` : ""}; ${recovery}.`,
      advice: CAUSE_ADVICE[inc.cause] ?? "See `vigil incidents --json` for the details.",
      detail: { id: inc.id, service: inc.service, cause: inc.cause, ...(stack ? { stack: stack.slice(0, 10) } : {}), reason: d["reason"] ?? null },
    };
  });
}
