/** SQLite's errors, as the operator-facing errors the store throws. */
import { VigilError } from "../../core/errors.js";
import { LockWaitExpired } from "./busy.js";

/** SQLite failures an operator can act on, as VigilErrors; everything else as it came. */
export function translateError(err: unknown, path: string): unknown {
  if (err instanceof LockWaitExpired) {
    return new VigilError(
      "STORE_UNREACHABLE",
      `store ${path} stayed locked by another process for ${err.waitedMs} ms (${(err.last as Error).message}); look for a stuck process holding it`,
      { cause: err.last },
    );
  }
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return err;
  const why = (err as Error).message;
  if (code.startsWith("SQLITE_FULL") || code.startsWith("SQLITE_IOERR")) {
    return new VigilError("STORE_UNREACHABLE", `store ${path} could not be written (${why}); check free disk space`, { cause: err });
  }
  if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") {
    return new VigilError("STORE_CORRUPT", `store ${path} is corrupted (${why}); stop Vigil and restore it from a backup`, { cause: err });
  }
  return err;
}
