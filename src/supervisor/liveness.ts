/**
 * How the supervisor tells a live process from a hung one, for services that do not
 * heartbeat over IPC (HTTP probe, status-file mtime), and what it records about a
 * process it is about to kill for hanging.
 */
import { statSync } from "node:fs";
import { monotonicNow } from "../core/clock.js";
import { procInfo } from "../os/process.js";
import type { ActiveJobInfo } from "../child/protocol.js";
import { readBlockedStack } from "../child/watchdog.js";

/**
 * A probe that has not answered in this long counts as failed. Short, because probes
 * run every second and a slow answer from a local service is itself a symptom; a longer
 * timeout would let probes pile up behind a hung service.
 */
export const PROBE_TIMEOUT_MS = 800;

export interface ProbeResult {
  ok: boolean;
  status?: number;
  error?: string;
}

/** GET `url`; ok on a 2xx answer within `timeoutMs` (default 800 ms). */
export async function probeHttp(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeResult> {
  try {
    const res = await fetch(url, { method: "GET", signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
    await res.body?.cancel().catch(() => {});
    return res.status >= 200 && res.status < 300 ? { ok: true, status: res.status } : { ok: false, status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error;
    return { ok: false, error: e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : e.message };
  }
}

/** The mtime (ms since the epoch) of a status file, or null if it does not exist. */
export function statusFileMtime(path: string): number | null {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return null;
  }
}

export interface StallEvidence {
  pid: number;
  heartbeatAgeMs: number | null;
  /** Jobs the last heartbeat listed. */
  activeJobs: ActiveJobInfo[];
  /** /proc state letter and name: `T (stopped)` after SIGSTOP, `R (running)` for a busy loop. */
  procState: string | null;
  /** CPU use over a short sample, % of one core: ~100 for a spinning loop, 0 when frozen. */
  cpuPercent: number | null;
  rssBytes: number | null;
  threads: number | null;
  /** The blocked main thread's stack, top first, from the watchdog's file. */
  stack: string[] | null;
  /** The top frame as `function (file:line)`. */
  blockedIn: string | null;
}

/**
 * How long the capture samples CPU time. Long enough to tell a spinning loop (~100 %)
 * from a frozen or sleeping one (0 %), short enough not to delay the restart.
 */
const CPU_SAMPLE_MS = 300;
/** A watchdog writes its stack ~1.5 s after the loop blocks; wait this much more for it. */
const STACK_WAIT_MS = 1500;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Records what a stalled process is doing, before it is killed. Never throws. */
export async function captureStall(input: {
  pid: number;
  heartbeatAgeMs: number | null;
  activeJobs: ActiveJobInfo[];
  stackFile: string | null;
  /** ms since the epoch the process started: older stack files are ignored. */
  startedAt: number;
}): Promise<StallEvidence> {
  const a = procInfo(input.pid);
  await sleep(CPU_SAMPLE_MS);
  const b = procInfo(input.pid);
  let stack = input.stackFile ? readBlockedStack(input.stackFile, input.pid, input.startedAt) : null;
  // A busy loop that has not been described yet: give the watchdog its moment.
  const deadline = monotonicNow() + STACK_WAIT_MS;
  while (!stack && input.stackFile && b?.state === "R" && monotonicNow() < deadline) {
    await sleep(100);
    stack = readBlockedStack(input.stackFile, input.pid, input.startedAt);
  }
  const frames = stack?.frames.map((f) => `${f.functionName || "(anonymous)"} (${f.url}:${f.line}:${f.column})`) ?? null;
  return {
    pid: input.pid,
    heartbeatAgeMs: input.heartbeatAgeMs,
    activeJobs: input.activeJobs,
    procState: b ? `${b.state} (${b.stateName})` : a ? `${a.state} (${a.stateName})` : null,
    cpuPercent: a && b ? Math.round(((b.cpuMs - a.cpuMs) / CPU_SAMPLE_MS) * 100) : null,
    rssBytes: b?.rssBytes ?? a?.rssBytes ?? null,
    threads: b?.threads ?? null,
    stack: frames ? frames.slice(0, 30) : null,
    blockedIn: frames?.[0] ?? null,
  };
}
