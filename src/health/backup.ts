/**
 * `vigil backup FILE`: a consistent copy of a SQLite store while everything keeps running,
 * through SQLite's online backup API (better-sqlite3 `db.backup()`). The copy is written
 * beside the target as `FILE.partial`, checked with `PRAGMA quick_check`, then renamed, so
 * a file named FILE is always a complete, valid store.
 *
 * A PostgreSQL store is backed up with the database's own tool; `pgDumpCommand` says how.
 */
import { existsSync, renameSync, rmSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { BadInputError, VigilError } from "../core/errors.js";
import { parsePostgresUrl } from "../store/postgres/connection.js";

/** Pages of the copy, as SQLite reports them after each step. */
export interface BackupProgress {
  totalPages: number;
  remainingPages: number;
}

/** The finished copy: its path, size in bytes and pages. */
export interface BackupResult {
  file: string;
  bytes: number;
  pages: number;
}

/** Options of `backupSqlite`. */
export interface BackupOptions {
  /** Replace an existing target (default: refuse). */
  force?: boolean;
  onProgress?: (p: BackupProgress) => void;
  /**
   * Pages copied per step (default 1024, 4 MiB at SQLite's default page size), so progress
   * can be shown. A write by another connection between steps restarts the copy; after the
   * first restart the rest is copied in one step (one read transaction, which in WAL mode
   * never blocks writers), so a busy store cannot keep the backup from finishing.
   */
  pagesPerStep?: number;
}

/** better-sqlite3's largest step: everything that remains, in one step. */
const ALL_PAGES = 0x7fffffff;

/**
 * Copies the SQLite store at `source` to `target` with the online backup API while other
 * processes keep writing; throws `BAD_INPUT` if `target` exists (unless `force`), and
 * `STORE_CORRUPT` if the copy fails its check (the partial file is removed).
 */
export async function backupSqlite(source: string, target: string, opts: BackupOptions = {}): Promise<BackupResult> {
  if (!existsSync(source)) throw new BadInputError(`no SQLite store at ${source}; check the config's \`store\``);
  if (existsSync(target) && !opts.force) {
    throw new BadInputError(`${target} already exists; choose a new file name or pass --force to replace it`);
  }
  const partial = `${target}.partial`;
  rmSync(partial, { force: true });
  const db = new Database(source, { readonly: true, fileMustExist: true });
  let pages = 0;
  try {
    let step = opts.pagesPerStep ?? 1024;
    let lastRemaining = Infinity;
    const done = await db.backup(partial, {
      progress: (p) => {
        pages = p.totalPages;
        opts.onProgress?.(p);
        if (p.remainingPages > lastRemaining) step = ALL_PAGES; // restarted by a write
        lastRemaining = p.remainingPages;
        return step;
      },
    });
    pages = done.totalPages;
  } catch (err) {
    rmSync(partial, { force: true });
    throw new VigilError("STORE_UNREACHABLE", `backup of ${source} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    db.close();
  }
  const copy = new Database(partial, { readonly: true, fileMustExist: true });
  let check: string;
  try {
    check = String(copy.pragma("quick_check", { simple: true }));
  } finally {
    copy.close();
  }
  if (check !== "ok") {
    rmSync(partial, { force: true });
    throw new VigilError("STORE_CORRUPT", `the backup copy failed its check (${check}); the source may be damaged — run \`vigil doctor\``);
  }
  renameSync(partial, target);
  for (const side of ["-wal", "-shm"]) rmSync(partial + side, { force: true });
  return { file: target, bytes: statSync(target).size, pages };
}

/**
 * The pg_dump command line that backs up a PostgreSQL store's schema (custom format). The
 * schema is the store's own, found as the store finds it (`?schema=` in the URL, else the
 * config's `schema`, else `vigil`), and Vigil's `schema` parameter is taken out of the URL,
 * which pg_dump would refuse. The password is left out: pg_dump reads PGPASSWORD or ~/.pgpass.
 */
export function pgDumpCommand(url: string, schemaOption: string | undefined, target: string): string[] {
  const { connectionString, schema } = parsePostgresUrl(url, schemaOption);
  const bare = new URL(connectionString);
  bare.password = "";
  return ["pg_dump", "--format=custom", `--schema=${schema}`, `--file=${target}`, bare.toString()];
}
