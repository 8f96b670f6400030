/**
 * Which store errors are about the store itself (down, locked, out of space, corrupt, a
 * deadlock victim), as against a refusal of what a transaction carries, which would fail the
 * same way on every try. A worker retries a batch of completions whole on the first kind; on
 * the second it looks for the one item the store refuses (src/worker/isolate.ts) instead of
 * retrying the batch forever.
 */
import { VigilError } from "../core/errors.js";

/** Vigil's own codes for a store that cannot do any work now. */
const STORE_WIDE_CODES = new Set(["STORE_UNREACHABLE", "STORE_CORRUPT", "STORE_FOREIGN", "STORE_TOO_NEW"]);

/**
 * PostgreSQL SQLSTATE classes of a server that cannot do the work right now: 08 connection,
 * 25 invalid transaction state (a read-only replica after a failover), 40 rollback
 * (serialization, deadlock), 53 insufficient resources (disk, memory, connections), 55 not
 * in the required state (lock not available), 57 operator intervention (cancel, shutdown),
 * 58 system error (I/O), XX internal error.
 */
const PG_STORE_WIDE_CLASSES = new Set(["08", "25", "40", "53", "55", "57", "58", "XX"]);

/** SQLite result codes of the same kind (the adapter already turns most into VigilErrors). */
const SQLITE_STORE_WIDE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|NOMEM|INTERRUPT|PROTOCOL|CANTOPEN|CORRUPT|NOTADB)/;

/** Whether `err`, from a store call, is about the store rather than what the call carried. */
export function isStoreWideError(err: unknown): boolean {
  if (err instanceof VigilError) return STORE_WIDE_CODES.has(err.code);
  if (err instanceof AggregateError) return err.errors.some(isStoreWideError);
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  if (code.startsWith("SQLITE_")) return SQLITE_STORE_WIDE.test(code);
  if (/^[0-9A-Z]{5}$/.test(code)) return PG_STORE_WIDE_CLASSES.has(code.slice(0, 2));
  // An errno code (ECONNRESET and the like) that reached here untranslated.
  return /^E[A-Z]+$/.test(code);
}
