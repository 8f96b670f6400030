/**
 * Inspects an existing database file before Vigil writes anything to it. Opening in WAL
 * mode, setting pragmas or migrating can all write, so a file that is not SQLite, is
 * corrupted, belongs to another application or comes from a newer Vigil is refused from a
 * read-only look, and its bytes are left as they were.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { VigilError } from "../../core/errors.js";
import { SCHEMA_VERSION, schemaVersion, tooNewError } from "./migrations.js";

const HEADER = Buffer.from("SQLite format 3\0", "latin1");

/** What the read-only look found. */
export type FileState = "absent" | "empty" | "vigil";

function corrupt(path: string, what: string, cause?: unknown): VigilError {
  return new VigilError(
    "STORE_CORRUPT",
    `store ${path} ${what}; Vigil will not write to it. Restore it from a backup, or point \`store:\` at another path`,
    cause === undefined ? undefined : { cause },
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
 * SQLite file: safe to initialise) or `vigil` (a healthy Vigil store, not newer than this
 * code). Throws STORE_CORRUPT, STORE_FOREIGN or STORE_TOO_NEW otherwise.
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
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw corrupt(path, `cannot be opened (${(err as Error).message})`, err);
  }
  try {
    let tables: string[];
    try {
      const problems = db.pragma("quick_check", { simple: false }) as { quick_check: string }[];
      const first = problems[0]?.quick_check;
      if (first !== "ok") {
        throw corrupt(path, `is corrupted (integrity check: ${problems.map((p) => p.quick_check).slice(0, 3).join("; ")})`);
      }
      tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
    } catch (err) {
      if (err instanceof VigilError) throw err;
      throw corrupt(path, `is corrupted (${(err as Error).message})`, err);
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
    return "vigil";
  } finally {
    db.close();
  }
}
