/**
 * What a supervisor that died (SIGKILL, power loss) leaves behind: its children keep
 * running in their own process groups. `.vigil/children.json` records them while they
 * run; the next `vigil start` kills the ones still alive and frees their jobs.
 */
import type { Logger } from "../core/log.js";
import { monotonicNow } from "../core/clock.js";
import { groupMembers, killGroup } from "../os/process.js";
import { readChildren, removeChildren, type ChildRecord } from "../project/children-file.js";
import { isRunning, procCmdline } from "../project/pid-file.js";

/**
 * Whether the recorded group is still ours: the leader runs the same command line (a
 * reused pid runs something else), or the leader is gone but members of its group remain
 * (a group id cannot be reused while any member lives).
 */
function stillOurs(rec: ChildRecord): boolean {
  if (isRunning(rec.pid)) {
    const argv = procCmdline(rec.pid);
    return argv !== null && argv.join("\0") === rec.argv.join("\0");
  }
  return groupMembers(rec.pid).length > 0;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Ends the process groups a dead supervisor left running: SIGTERM (workers drain), then
 * SIGKILL after `killTimeoutMs`. Returns the records found (killed or already gone), so
 * the caller can free their workers' jobs.
 */
export async function killOrphans(path: string, killTimeoutMs: number, log: Logger): Promise<{ found: ChildRecord[]; killed: ChildRecord[] }> {
  const found = readChildren(path);
  const killed = found.filter(stillOurs);
  for (const rec of killed) {
    log.info(`ending orphaned ${rec.name} (process group ${rec.pid}) left by a previous supervisor`);
    killGroup(rec.pid, "SIGTERM");
    killGroup(rec.pid, "SIGCONT"); // a stopped orphan must wake to act on SIGTERM
  }
  const deadline = monotonicNow() + killTimeoutMs;
  while (killed.some((r) => groupMembers(r.pid).length > 0) && monotonicNow() < deadline) await sleep(100);
  for (const rec of killed) if (groupMembers(rec.pid).length > 0) killGroup(rec.pid, "SIGKILL");
  while (killed.some((r) => groupMembers(r.pid).length > 0) && monotonicNow() < deadline + 2000) await sleep(50);
  removeChildren(path);
  return { found, killed };
}
