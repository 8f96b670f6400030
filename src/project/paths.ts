/**
 * Where a project's runtime files live: the `.vigil/` folder beside the config file.
 * One supervisor per folder; the CLI finds the live supervisor through these paths.
 */
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface VigilPaths {
  /** The `.vigil/` folder. */
  root: string;
  /** Exclusive lock: the supervisor's pid, created with O_EXCL. */
  pidFile: string;
  /** Process groups of the running children, so a later start can clean up orphans. */
  childrenFile: string;
  /** StatusSnapshot, rewritten atomically every `statusEvery`. */
  statusFile: string;
  /** Per-process logs: `<logs>/<row name>.log`, rotated by size. */
  logs: string;
  /** Where each worker's watchdog thread writes a blocked stack: `<stacks>/<row name>.json`. */
  stacks: string;
  /** The command-handler process groups each worker runs: `<commands>/<worker pid>.json`. */
  commands: string;
  /** The supervisor's own log when started with `--detach`. */
  supervisorLog: string;
  /** Local control socket (JSON lines): status, restart, stop. */
  controlSocket: string;
}

/**
 * A Unix socket path may hold at most 107 bytes on Linux. A deep project folder would
 * overflow it, so a long path is replaced by a stable one in the temp folder named by a
 * hash of the project folder: the CLI computes the same name without any lookup.
 */
const MAX_SOCKET_PATH = 100;

/** The runtime paths for the project whose config file sits in `dir`. */
export function vigilPaths(dir: string): VigilPaths {
  const root = join(dir, ".vigil");
  let controlSocket = join(root, "control.sock");
  if (Buffer.byteLength(controlSocket) > MAX_SOCKET_PATH) {
    const hash = createHash("sha256").update(root).digest("hex").slice(0, 16);
    controlSocket = join(tmpdir(), `vigil-${hash}.sock`);
  }
  return {
    root,
    pidFile: join(root, "supervisor.pid"),
    childrenFile: join(root, "children.json"),
    statusFile: join(root, "status.json"),
    logs: join(root, "logs"),
    stacks: join(root, "stacks"),
    commands: join(root, "commands"),
    supervisorLog: join(root, "supervisor.log"),
    controlSocket,
  };
}

/** File name for a process row: `workers:1` → `workers:1`; kept readable, never a path. */
export function rowFileName(row: string): string {
  return row.replace(/[^A-Za-z0-9_.:-]/g, "_");
}
