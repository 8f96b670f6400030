/**
 * Which command-handler process groups a worker has running, on disk. A command runs in
 * its own process group (so a timeout kills all of it), which also means that when its
 * worker is SIGKILLed (a blocked loop the supervisor had to kill), the command survives it
 * as an orphan. Each worker process keeps `<dir>/<pid>.json` listing its live groups; a
 * worker starting later ends the groups that dead workers left behind, and a worker that
 * exits by itself ends its own.
 *
 * A command is recorded before it is started (`reserve`), under a token it finds in its
 * environment (`VIGIL_COMMAND_TOKEN`), and its group id is added once known (`started`):
 * a worker killed between the two (a busy machine can put a started command's first
 * output before the worker's next line) still leaves a record that finds the command.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { groupMembers, isAlive, killGroup, processTable, procInfo } from "../os/process.js";

/** The environment variable that names a command's registry record. */
export const COMMAND_TOKEN_ENV = "VIGIL_COMMAND_TOKEN";

export interface CommandGroup {
  /** Process group id (the leader's pid); 0 while the command is being started. */
  pgid: number;
  jobId: number;
  argv: string[];
  /** ms since the epoch */
  startedAt: number;
  /** In the command's environment as VIGIL_COMMAND_TOKEN (absent in older records). */
  token?: string;
}

interface RegistryFile {
  workerPid: number;
  workerId: string;
  groups: CommandGroup[];
}

/** The live command groups of this process, mirrored to `<dir>/<pid>.json`. */
export class CommandRegistry {
  /** By token. */
  private readonly groups = new Map<string, CommandGroup>();
  private readonly file: string;

  constructor(
    private readonly dir: string,
    private readonly workerId: string,
  ) {
    this.file = join(dir, `${process.pid}.json`);
  }

  /** Records a command about to be started for `jobId`; returns the token to start it with. */
  reserve(jobId: number, argv: string[]): string {
    const token = randomUUID();
    this.groups.set(token, { pgid: 0, jobId, argv, startedAt: Date.now(), token });
    this.save();
    return token;
  }

  /** The command of `token` runs as process group `pgid`. */
  started(token: string, pgid: number): void {
    const g = this.groups.get(token);
    if (!g) return;
    g.pgid = pgid;
    this.save();
  }

  /** The command of `token` ended (or never started). */
  remove(token: string): void {
    if (this.groups.delete(token)) this.save();
  }

  /** SIGKILLs every group still registered and removes the file (on this process's exit). */
  killAll(): void {
    for (const g of liveGroups({ workerPid: process.pid, workerId: this.workerId, groups: [...this.groups.values()] })) killGroup(g.pgid, "SIGKILL");
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

/**
 * The recorded groups still running: a group counts as the job's while one of its members
 * carries `VIGIL_JOB_ID`; a command recorded before its start (no group id yet) is found
 * by the token in its environment.
 */
function liveGroups(reg: RegistryFile): CommandGroup[] {
  const out: CommandGroup[] = [];
  let table: { pid: number; pgid: number }[] | null = null;
  for (const g of reg.groups ?? []) {
    if (g.pgid > 0) {
      if (groupMembers(g.pgid).some((pid) => hasEnv(pid, `VIGIL_JOB_ID=${g.jobId}`))) out.push(g);
    } else if (g.token) {
      table ??= processTable();
      const pgids = new Set(table.filter((p) => hasEnv(p.pid, `${COMMAND_TOKEN_ENV}=${g.token}`)).map((p) => p.pgid));
      for (const pgid of pgids) out.push({ ...g, pgid });
    }
  }
  return out;
}

function hasEnv(pid: number, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(entry);
  } catch {
    return false;
  }
}
