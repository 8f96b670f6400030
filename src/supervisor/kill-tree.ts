/**
 * Ending a worker process for good, before its jobs are freed: its own process group and
 * the process group of every command handler it started (each command runs in a group of
 * its own, so killing the worker's group alone would leave it running beside the retry).
 * A stall cannot be a graceful stop: a frozen process woken inside a SIGTERM→SIGKILL window
 * (a VM resumed, `kill -CONT`, a long GC) would finish its handlers' side effects after
 * another worker re-ran the job. So: freeze, list, SIGKILL, and wait until nothing is left.
 */
import type { Logger } from "../core/log.js";
import { recordedGroups } from "../handlers/command-registry.js";
import { processTable } from "../os/process.js";

/**
 * How long to wait for SIGKILLed processes to leave /proc (5 s). SIGKILL cannot be caught;
 * a process in uninterruptible disk wait dies when the wait ends, and runs no code of its
 * own before that, so this bounds only how long a release may wait on a slow kernel.
 */
export const KILL_CONFIRM_MS = 5000;
/** Between looks at /proc while waiting (20 ms): one scan of a few hundred entries. */
const CONFIRM_POLL_MS = 20;

export interface KillReport {
  /** The process groups SIGKILLed: the worker's own first, then its commands'. */
  groups: number[];
  /** Everything was gone (zombies aside) within KILL_CONFIRM_MS. */
  confirmed: boolean;
  /** Pids still listed when the wait ended; empty when confirmed. */
  left: number[];
  waitedMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * SIGKILLs the process group `pid` leads and every process group that a member of it
 * started (a child leading a group of its own) or recorded in `commandsDir`, then waits
 * until none of them has a live member. Safe when the leader has already exited.
 */
export async function killProcessTree(pid: number, commandsDir?: string): Promise<KillReport> {
  // Frozen first, so no member starts a new command while they are being listed.
  signalGroup(pid, "SIGSTOP");
  const table = processTable();
  const members = new Set(table.filter((p) => p.pgid === pid).map((p) => p.pid));
  members.add(pid);
  const groups = new Set<number>([pid]);
  for (const p of table) if (members.has(p.ppid) && p.pgid === p.pid) groups.add(p.pgid);
  // A command whose leader exited while the worker was frozen is no longer its child.
  if (commandsDir) for (const g of recordedGroups(commandsDir, pid)) groups.add(g.pgid);
  for (const g of groups) signalGroup(g, "SIGKILL");
  const started = Date.now();
  let left = alive(groups);
  while (left.length > 0 && Date.now() - started < KILL_CONFIRM_MS) {
    await sleep(CONFIRM_POLL_MS);
    left = alive(groups);
  }
  return { groups: [...groups], confirmed: left.length === 0, left, waitedMs: Date.now() - started };
}

/**
 * `killProcessTree` for a stall, saying what it did on `note` (the process's log), and on
 * `log` (the supervisor's) when something outlived the wait. Returns the incident's detail.
 */
export async function killForStall(pid: number, commandsDir: string | undefined, note: (msg: string) => void, log: Logger): Promise<Omit<KillReport, "left"> & { left?: number[] }> {
  const k = await killProcessTree(pid, commandsDir);
  if (k.confirmed) {
    note(`SIGKILL to process group(s) ${k.groups.join(", ")}: all gone after ${k.waitedMs} ms`);
    return { groups: k.groups, confirmed: true, waitedMs: k.waitedMs };
  }
  const msg = `pid(s) ${k.left.join(", ")} still listed ${k.waitedMs} ms after SIGKILL to process group(s) ${k.groups.join(", ")}; freeing the jobs anyway (a SIGKILLed process runs no more code of its own)`;
  note(msg);
  log.warn(msg);
  return k;
}

/**
 * To the group only, never to a lone pid: once a leader has been reaped its pid may be
 * reused by something else, while a group id stays reserved as long as any member lives.
 */
function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // no member left
  }
}

function alive(groups: Set<number>): number[] {
  return processTable()
    .filter((p) => groups.has(p.pgid))
    .map((p) => p.pid);
}
