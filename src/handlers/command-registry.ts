/**
 * Which command-handler process groups a worker has running, on disk. A command runs in
 * its own process group (so a timeout kills all of it), which also means that when its
 * worker is SIGKILLed (a blocked loop the supervisor had to kill), the command survives it
 * as an orphan. Each worker process keeps `<dir>/<pid>.json` listing its live groups; a
 * worker starting later ends the groups that dead workers left behind, and a worker that
 * exits by itself ends its own.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { groupMembers, isAlive, killGroup, procInfo } from "../os/process.js";

export interface CommandGroup {
  /** Process group id (the leader's pid). */
  pgid: number;
  jobId: number;
  argv: string[];
  /** ms since the epoch */
  startedAt: number;
}

interface RegistryFile {
  workerPid: number;
  workerId: string;
  groups: CommandGroup[];
}

/** The live command groups of this process, mirrored to `<dir>/<pid>.json`. */
export class CommandRegistry {
  private readonly groups = new Map<number, CommandGroup>();
  private readonly file: string;

  constructor(
    private readonly dir: string,
    private readonly workerId: string,
  ) {
    this.file = join(dir, `${process.pid}.json`);
  }

  add(group: CommandGroup): void {
    this.groups.set(group.pgid, group);
    this.save();
  }

  remove(pgid: number): void {
    if (this.groups.delete(pgid)) this.save();
  }

  /** SIGKILLs every group still registered and removes the file (on this process's exit). */
  killAll(): void {
    for (const g of this.groups.values()) killGroup(g.pgid, "SIGKILL");
    this.groups.clear();
    try {
      unlinkSync(this.file);
    } catch {
      // never written, or already gone
    }
  }

  private save(): void {
    // Not fsynced: after a power loss the groups are gone anyway. Replaced by rename so a
    // reader never sees half a file.
    try {
      mkdirSync(this.dir, { recursive: true });
      const body: RegistryFile = { workerPid: process.pid, workerId: this.workerId, groups: [...this.groups.values()] };
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, JSON.stringify(body));
      renameSync(tmp, this.file);
    } catch {
      // A registry we cannot write only weakens orphan clean-up; the job itself goes on.
    }
  }
}

/**
 * Ends the command groups that workers no longer running left in `dir`: a group counts as
 * theirs while one of its members carries that job's `VIGIL_JOB_ID` in its environment, so
 * a process group id reused by something else is never touched. Returns what was killed.
 */
export function killOrphanCommands(dir: string): CommandGroup[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^\d+\.json$/.test(n));
  } catch {
    return [];
  }
  const killed: CommandGroup[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let reg: RegistryFile;
    try {
      reg = JSON.parse(readFileSync(path, "utf8")) as RegistryFile;
    } catch {
      continue;
    }
    if (reg.workerPid === process.pid) continue;
    if (isAlive(reg.workerPid) && procInfo(reg.workerPid)?.state !== "Z") continue; // a live worker's own
    for (const g of liveGroups(reg)) {
      killGroup(g.pgid, "SIGKILL");
      killed.push(g);
    }
    try {
      unlinkSync(path);
    } catch {
      // another worker cleaned it at the same time
    }
  }
  return killed;
}

/**
 * The command groups worker process `workerPid` recorded in `dir` that still run (the
 * supervisor ends them with a stalled or dead worker), checked as `killOrphanCommands` does.
 */
export function recordedGroups(dir: string, workerPid: number): CommandGroup[] {
  try {
    return liveGroups(JSON.parse(readFileSync(join(dir, `${workerPid}.json`), "utf8")) as RegistryFile);
  } catch {
    return []; // none recorded, or the worker removed its file as it exited
  }
}

/** A recorded group is still the job's while one of its members carries `VIGIL_JOB_ID`. */
function liveGroups(reg: RegistryFile): CommandGroup[] {
  return (reg.groups ?? []).filter((g) => groupMembers(g.pgid).some((pid) => hasEnv(pid, `VIGIL_JOB_ID=${g.jobId}`)));
}

function hasEnv(pid: number, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(entry);
  } catch {
    return false;
  }
}
