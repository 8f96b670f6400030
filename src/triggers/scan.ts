/**
 * Listing the files a `watch` trigger looks at: a glob under a folder, stat only (no
 * reads). This runs every poll over every file, so it is the cost of an idle trigger.
 *
 * Listing and stat are synchronous, the stats in chunks with a yield to the event loop
 * between them. The promise forms go through the thread pool and cost several times the
 * CPU of the system calls themselves (measured here: about 2.5 ms of CPU for a 10,000-entry
 * folder read synchronously, twice that async; a promise per stat far more). What is
 * left of an idle poll is mostly the kernel's own stat cost, about 3 µs a file on this
 * kind of machine. A chunk of `STAT_CHUNK` stats takes a millisecond or two, so heartbeats
 * and other triggers are never held up. (On a hung network file system a synchronous stat
 * would block the loop; the stalled heartbeat then gets the process restarted, which is
 * the right outcome there too.)
 */
import { readdirSync, realpathSync, statSync, type Dirent, type Stats } from "node:fs";
import { realpath } from "node:fs/promises";
import { sep } from "node:path";
import { setImmediate as yieldLoop } from "node:timers/promises";
import picomatch from "picomatch";

/** One file as stat saw it. */
export interface FileStat {
  /** Path relative to the folder, `/`-separated. */
  rel: string;
  abs: string;
  size: number;
  mtimeMs: number;
  /** Changes on every write, rename and chmod; unlike mtime, no tool can set it back. */
  ctimeMs: number;
  ino: number;
}

/** Stats per chunk between two yields to the event loop. */
const STAT_CHUNK = 500;
/** Deepest folder level a `**` glob descends to: a guard against pathological trees. */
const MAX_DEPTH = 32;

/** Splits a watch spec (an absolute glob, or a folder) into its folder and its pattern. */
export function splitGlob(spec: string): { base: string; glob: string } {
  const scan = picomatch.scan(spec);
  if (!scan.isGlob) return { base: spec, glob: "*" }; // a plain folder: the files directly in it
  return { base: scan.base || ".", glob: scan.glob };
}

/**
 * Calls `visit` for each matching regular file under `base`. Symlinks are followed only
 * when they stay inside the folder; symlinked folders are not descended into (no loops,
 * no escapes). Dot files and dot folders are skipped (a writer's temp file is often
 * `.name.tmp`). Throws when the folder itself cannot be listed; unreadable subfolders
 * become warnings. A visitor rather than a list: an unchanged file then costs one stat
 * and no allocation of ours, which is most of an idle poll.
 *
 * A subfolder its parent lists but that cannot be listed itself (EACCES, EIO, or gone or
 * replaced between the two listings), and a listed file that cannot be stat'ed, are
 * passed to `unseen`: what they hold is unknown this poll, which is not the same as
 * deleted. A folder really deleted is not in its parent's listing any more.
 */
export async function scanFolder(
  base: string,
  glob: string,
  warn: (m: string) => void,
  visit: (rel: string, abs: string, st: Stats) => void,
  unseen: (rel: string) => void = () => {},
): Promise<void> {
  let realBase: string;
  try {
    realBase = await realpath(base);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`folder ${base} does not exist; create it or fix the trigger's path`);
    throw new Error(`cannot read folder ${base}: ${(err as Error).message}`, { cause: err });
  }
  const re = picomatch.makeRe(glob, { dot: false });
  const deep = glob.includes("/");
  const maxDepth = glob.includes("**") ? MAX_DEPTH : glob.split("/").length - 1;
  const dirs: [string, number][] = [["", 0]];
  let stats = 0;
  while (dirs.length > 0) {
    const [rel, depth] = dirs.pop()!;
    const dirAbs = rel ? `${base}/${rel}` : base;
    let entries: Dirent[];
    try {
      entries = readdirSync(dirAbs, { withFileTypes: true });
    } catch (err) {
      if (rel === "") throw new Error(`cannot read folder ${base}: ${(err as Error).message}`, { cause: err });
      warn(`cannot read folder ${dirAbs}: ${(err as Error).message}`);
      unseen(rel);
      continue;
    }
    for (const e of entries) {
      const name = e.name;
      if (name.charCodeAt(0) === 46 /* . */) continue;
      const r = rel ? `${rel}/${name}` : name;
      if (e.isDirectory()) {
        if (deep && depth < maxDepth) dirs.push([r, depth + 1]);
        continue;
      }
      const link = e.isSymbolicLink();
      if ((!link && !e.isFile()) || !re.test(r)) continue;
      const abs = `${dirAbs}/${name}`;
      if (link && !staysInside(abs, realBase)) continue;
      if (++stats % STAT_CHUNK === 0) await yieldLoop();
      let st;
      try {
        st = statSync(abs, { throwIfNoEntry: false });
      } catch (err) {
        warn(`cannot stat ${abs}: ${(err as Error).message}`);
        unseen(r);
        continue;
      }
      if (!st || !st.isFile()) continue; // deleted since the listing, or a link to a folder
      visit(r, abs, st);
    }
  }
}

/** Whether a symlink resolves to a place inside the folder. */
function staysInside(abs: string, realBase: string): boolean {
  try {
    const target = realpathSync(abs);
    return target.startsWith(realBase + sep);
  } catch {
    return false; // dangling link
  }
}
