/**
 * Listing the files a `watch` trigger looks at: a glob under a folder, stat only (no
 * reads). This runs every poll over every file, so it is the cost of an idle trigger.
 *
 * Directory listing is async; the per-file `stat` is synchronous, in chunks with a yield
 * to the event loop between them. A promise-based stat goes through the thread pool and
 * costs several times the CPU of the system call itself; for 10,000 files every 2 s that
 * is the difference between about 1 % and several % of a core. A chunk of `STAT_CHUNK`
 * stats takes about a millisecond, so heartbeats and other triggers are never held up.
 * (On a hung network file system a synchronous stat would block the loop; a stalled
 * heartbeat then gets the process restarted, which is the right outcome there too.)
 */
import { realpathSync, statSync, type Dirent } from "node:fs";
import { readdir, realpath } from "node:fs/promises";
import { join, sep } from "node:path";
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
 * Lists matching regular files under `base`. Symlinks are followed only when they stay
 * inside the folder; symlinked folders are not descended into (no loops, no escapes).
 * Dot files and dot folders are skipped (a writer's temp file is often `.name.tmp`).
 * Throws when the folder itself cannot be listed; unreadable subfolders become warnings.
 */
export async function scanFolder(base: string, glob: string, warn: (m: string) => void): Promise<FileStat[]> {
  let realBase: string;
  try {
    realBase = await realpath(base);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`folder ${base} does not exist; create it or fix the trigger's path`);
    throw new Error(`cannot read folder ${base}: ${(err as Error).message}`, { cause: err });
  }
  const isMatch = picomatch(glob, { dot: false });
  const deep = glob.includes("/");
  const maxDepth = glob.includes("**") ? MAX_DEPTH : glob.split("/").length - 1;
  const plain: [string, string][] = [];
  const links: [string, string][] = [];
  const dirs: [string, number][] = [["", 0]];
  while (dirs.length > 0) {
    const [rel, depth] = dirs.pop()!;
    let entries: Dirent[];
    try {
      entries = await readdir(rel ? join(base, rel) : base, { withFileTypes: true });
    } catch (err) {
      if (rel === "") throw new Error(`cannot read folder ${base}: ${(err as Error).message}`, { cause: err });
      warn(`cannot read folder ${join(base, rel)}: ${(err as Error).message}`);
      continue;
    }
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (deep && depth < maxDepth) dirs.push([r, depth + 1]);
      } else if (e.isFile()) {
        if (isMatch(r)) plain.push([r, join(base, r)]);
      } else if (e.isSymbolicLink()) {
        if (isMatch(r)) links.push([r, join(base, r)]);
      }
    }
  }

  const out: FileStat[] = [];
  const all = [...plain, ...links.filter(([, abs]) => staysInside(abs, realBase))];
  for (let i = 0; i < all.length; i++) {
    if (i > 0 && i % STAT_CHUNK === 0) await yieldLoop();
    const [rel, abs] = all[i]!;
    let st;
    try {
      st = statSync(abs, { throwIfNoEntry: false });
    } catch (err) {
      warn(`cannot stat ${abs}: ${(err as Error).message}`);
      continue;
    }
    if (!st || !st.isFile()) continue; // deleted since the listing, or a link to a folder
    out.push({ rel, abs, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino });
  }
  return out;
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
