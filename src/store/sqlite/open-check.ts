/**
 * Inspects an existing database file before Vigil writes anything to it. Opening in WAL
 * mode, setting pragmas or migrating can all write, so a file that is not SQLite, whose
 * header or schema cannot be read, belongs to another application or comes from a newer
 * Vigil is refused from a read-only look, and its bytes are left as they were.
 *
 * The look reads the header and the schema only, never every page: `PRAGMA quick_check`
 * reads the whole file (seconds at millions of jobs), and every command and every worker
 * opens the store. The full check runs where it pays: `vigil doctor`, and `vigil start`
 * after an unclean shutdown (supervisor.ts).
 */
import { closeSync, existsSync, openSync, readSync, statSync, unlinkSync } from "node:fs";
import Database from "better-sqlite3";
import { VigilError } from "../../core/errors.js";
import { BUSY_TIMEOUT_MS, isBusy } from "./busy.js";
import { SCHEMA_VERSION, schemaVersion, tooNewError } from "./migrations.js";

const HEADER = Buffer.from("SQLite format 3\0", "latin1");

/**
 * What the read-only look found: `behind` is a Vigil store with migrations pending, which
 * opening it for writing applies; a read-only open cannot (its reads would name tables an
 * older schema lacks, such as `job_history` before migration 10) and refuses it.
 */
export type FileState = "absent" | "empty" | "vigil" | "behind";

function corrupt(path: string, what: string, cause?: unknown): VigilError {
  return new VigilError(
    "STORE_CORRUPT",
    `store ${path} ${what}; Vigil will not write to it. Restore it from a backup, or point \`store:\` at another path`,
    cause === undefined ? undefined : { cause },
  );
}

/** Only these SQLite codes mean the file itself is bad; others (busy, no access) do not. */
function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB");
}

/** A busy file is passed on as it came, for the caller to wait on (busy.ts). */
function fromSqlite(path: string, what: string, err: unknown): unknown {
  if (isBusy(err)) return err;
  if (isCorruption(err)) return corrupt(path, `${what} (${(err as Error).message})`, err);
  return new VigilError(
    "STORE_UNREACHABLE",
    `store ${path} could not be read (${(err as Error).message}); check its permissions and that no other program holds it locked`,
    { cause: err },
  );
}

function readHeader(path: string): Buffer {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(HEADER.length);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks `path` read-only. Returns `absent` (no file), `empty` (a zero-byte or table-less
 * SQLite file: safe to initialise), `vigil` (a Vigil store at this code's schema version)
 * or `behind` (one at an older version). Throws STORE_CORRUPT, STORE_FOREIGN or
 * STORE_TOO_NEW otherwise, and SQLite's own SQLITE_BUSY while another process holds the
 * file locked (the caller waits and retries).
 */
export function inspectFile(path: string): FileState {
  if (!existsSync(path)) return "absent";
  const st = statSync(path);
  if (!st.isFile()) throw corrupt(path, "is not a regular file");
  if (st.size === 0) return "empty";
  const header = readHeader(path);
  if (header.length < HEADER.length || !header.equals(HEADER)) {
    throw corrupt(path, "is not a SQLite database (it is another kind of file, or its header is damaged)");
  }
  const sideFiles = [`${path}-wal`, `${path}-shm`].filter((f) => !existsSync(f));
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw fromSqlite(path, "cannot be opened", err);
  }
  try {
    let tables: string[];
    try {
      tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
    } catch (err) {
      if (err instanceof VigilError) throw err;
      throw fromSqlite(path, "is corrupted", err);
    }
    if (tables.length === 0) return "empty";
    if (!tables.includes("vigil_meta")) {
      throw new VigilError(
        "STORE_FOREIGN",
        `store ${path} is a SQLite database of another application (tables: ${tables.slice(0, 5).join(", ")}); Vigil will not write to it. Point \`store:\` at another path`,
      );
    }
    const version = schemaVersion(db);
    if (version > SCHEMA_VERSION) throw tooNewError(path, version);
    return version < SCHEMA_VERSION ? "behind" : "vigil";
  } catch (err) {
    // Only a corrupt or foreign file: no Vigil process uses it, so nobody holds these open.
    // (A newer Vigil may be using a STORE_TOO_NEW file; a busy file is in use.)
    const code = err instanceof VigilError ? err.code : "";
    if (code === "STORE_CORRUPT" || code === "STORE_FOREIGN") {
      db.close();
      removeEmptyWal(sideFiles);
    }
    throw err;
  } finally {
    if (db.open) db.close();
  }
}

/**
 * A read-only look at a WAL-mode file makes `-wal` and `-shm` beside it. For a refused file,
 * removes the ones this look created while the WAL is still empty, so its folder is left as
 * it was. Never done for a healthy store: another process may have opened them meanwhile.
 */
function removeEmptyWal(created: string[]): void {
  const wal = created.find((f) => f.endsWith("-wal"));
  if (wal && existsSync(wal) && statSync(wal).size !== 0) return;
  for (const f of created) {
    try {
      unlinkSync(f);
    } catch {
      // not made, or another process opened the store meanwhile and removed it
    }
  }
}
