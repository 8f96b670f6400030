/**
 * "Why is this job not finished?": one sentence for a job that is not finished, from the
 * store (the job, how many wait ahead of it) and the status snapshot (which worker
 * processes run, their heartbeats). Used by `vigil jobs show` and `GET /api/jobs/:id`.
 */
import { formatDuration } from "../core/duration.js";
import { FINAL_STATES, type Job } from "../core/types.js";
import type { Store } from "../store/store.js";
import { HEARTBEAT_INTERVAL_MS } from "../child/protocol.js";
import { flowWhy } from "./queues.js";
import type { ServiceStatus, StatusSnapshot } from "../core/status.js";

export interface WhyContext {
  store: Store;
  /** The live or recent status snapshot; null when none could be read. */
  snapshot: StatusSnapshot | null;
  /** Queue → the worker services (config names) that run it; null when the config is not known. */
  queueServices: Record<string, string[]> | null;
  /** Now, ms since the epoch (default: the store's clock). */
  now?: number;
  /** `supervision.stallAfter`, ms, to say when a silent worker is replaced (optional). */
  stallAfter?: number;
}

/**
 * A running worker's heartbeat older than this reads as late: five beats missed. Why five:
 * a loaded machine delays a beat by a second or two, and a status file read adds up to its
 * own age, so fewer would call a busy, healthy worker frozen.
 */
export const LATE_HEARTBEAT_MS = 5 * HEARTBEAT_INTERVAL_MS;

/** Queue → worker services running it, from a config's `services`. */
export function queueServicesOf(services: Record<string, object> | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, s] of Object.entries(services ?? {})) {
    if ("queues" in s && Array.isArray(s.queues)) for (const q of s.queues as string[]) (out[q] ??= []).push(name);
  }
  return out;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

/** The sentence, or null for a finished job (completed, dead, cancelled). */
export async function whyNotFinished(job: Job, ctx: WhyContext): Promise<string | null> {
  if (FINAL_STATES.includes(job.state)) return null;
  const now = ctx.now ?? ctx.store.clock.now();
  if (job.state === "active") return whyActive(job, ctx.snapshot, now, ctx.stallAfter);
  if ((job.state === "scheduled" || job.state === "failed") && job.runAt > now) {
    const when = `${clock(job.runAt)} (in ${formatDuration(job.runAt - now)})`;
    if (job.state === "failed") {
      const last = job.error ?? job.history[job.history.length - 1]?.message ?? "an error";
      return `scheduled: retry ${job.attempt + 1} of ${job.maxAttempts} at ${when} after: ${oneLine(last)}`;
    }
    return `scheduled: runs at ${when}`;
  }
  return whyWaiting(job, ctx, now);
}

async function whyWaiting(job: Job, ctx: WhyContext, now: number): Promise<string> {
  // A paused queue or one its flow control holds back says so before anything else.
  const held = await flowWhy(ctx.store, job);
  if (held) return `waiting: ${held}`;
  const due = job.state === "waiting" ? "" : `, due since ${formatDuration(now - job.runAt)} ago`;
  const workers = workersOf(job.queue, ctx);
  if (workers.kind === "none-configured") return `waiting${due}: no worker service in the config runs queue ${job.queue}`;
  if (workers.kind === "unknown") return `waiting${due}: no supervisor status to say which workers run (is \`vigil start\` running?)`;
  const running = workers.list.filter((s) => s.state === "running" && s.pid !== null);
  if (running.length === 0) {
    const states = workers.list.map((s) => `${s.name} ${s.state}`).join(", ");
    return `waiting${due}: queue ${job.queue} has no running worker${states ? ` (${states})` : ""}`;
  }
  const ahead = job.state === "waiting" ? await ctx.store.jobsAhead(job.id) : null;
  const names = running.map((s) => s.name).join(", ");
  if (ahead !== null && ahead > 0) return `waiting: ${ahead >= 10_000 ? "10000+" : ahead} jobs ahead in queue ${job.queue} (run by ${names})`;
  const busy = running.reduce((n, s) => n + (s.activeJobs ?? 0), 0);
  return `waiting${due}: next in queue ${job.queue}; ${names} ${running.length === 1 ? "has" : "have"} ${busy} active job${busy === 1 ? "" : "s"}`;
}

type Workers = { kind: "none-configured" } | { kind: "unknown" } | { kind: "known"; list: ServiceStatus[] };

function workersOf(queue: string, ctx: WhyContext): Workers {
  const names = ctx.queueServices?.[queue];
  if (ctx.queueServices && (!names || names.length === 0)) return { kind: "none-configured" };
  const snap = ctx.snapshot;
  if (!snap || snap.source === "store") return { kind: "unknown" };
  const workers = snap.services.filter((s) => s.kind === "worker");
  return { kind: "known", list: names ? workers.filter((s) => names.includes(s.service)) : workers };
}

function whyActive(job: Job, snap: StatusSnapshot | null, now: number, stallAfter: number | undefined): string {
  if (job.leaseUntil !== null && job.leaseUntil <= now) {
    return `active, lease expired ${formatDuration(now - job.leaseUntil)} ago, will be released (attempt ${job.attempt} of ${job.maxAttempts}, stalls ${job.stalls})`;
  }
  const running = job.startedAt !== null ? `, handler running ${formatDuration(now - job.startedAt)}` : "";
  const lease = job.leaseUntil !== null ? `lease until ${clock(job.leaseUntil)}` : "no lease time";
  const svc = snap?.services.find((s) => s.workerId && s.workerId === job.workerId);
  if (!svc) {
    const where = snap && snap.source !== "store" ? "a process this supervisor does not run (another host, or gone)" : "a worker the status snapshot does not show";
    return `active on ${job.workerId ?? "an unknown worker"}, ${where}${running}, ${lease}`;
  }
  // The age was measured when the snapshot was made (a status file may be seconds old).
  const age = svc.heartbeatAgeMs === null ? null : svc.heartbeatAgeMs + Math.max(0, now - (snap?.at ?? now));
  const beat = age === null ? "no heartbeat yet" : `last heartbeat ${formatDuration(age)} ago`;
  let state = svc.state === "running" ? "" : ` (${svc.name} is ${svc.state}; its jobs are freed when it is killed)`;
  // Still "running" to the supervisor, but silent: frozen (SIGSTOP), or its event loop blocked.
  if (svc.state === "running" && age !== null && age > LATE_HEARTBEAT_MS) {
    const after = stallAfter !== undefined ? ` once it has been silent ${formatDuration(stallAfter)}` : "";
    state = ` (no heartbeat for ${formatDuration(age)}, where one comes every ${formatDuration(HEARTBEAT_INTERVAL_MS)}: the process is frozen or its event loop is blocked; the supervisor replaces it${after} and frees its jobs)`;
  }
  return `active on ${svc.name} pid ${svc.pid ?? "-"}${running}, ${beat}${state}`;
}

function oneLine(s: string): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > 200 ? one.slice(0, 199) + "…" : one;
}
