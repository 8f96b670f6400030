/**
 * The one reading of a store URL: `sqlite:PATH` or a plain file path is a SQLite file,
 * `postgres://` or `postgresql://` a PostgreSQL server, any other `scheme://` unsupported.
 * Pure (no I/O), so the config, the store, the project and the health checks share it.
 */
import { isAbsolute, resolve } from "node:path";

/** The store when neither the config nor `--store` names one: a SQLite file in `.vigil/`. */
export const DEFAULT_STORE_URL = "sqlite:.vigil/vigil.db";

export type StoreTarget =
  /** `file` is "" when the URL names none. `prefixed`: written with `sqlite:`. */
  | { engine: "sqlite"; file: string; prefixed: boolean }
  | { engine: "postgres"; url: string }
  /** A `scheme://` Vigil has no adapter for. */
  | { engine: "unsupported"; url: string };

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

export function parseStoreUrl(url: string): StoreTarget {
  const prefixed = url.startsWith("sqlite:");
  const rest = prefixed ? url.slice("sqlite:".length) : url;
  const scheme = SCHEME.exec(rest)?.[1]?.toLowerCase();
  if (scheme === undefined) return { engine: "sqlite", file: rest, prefixed };
  if (!prefixed && (scheme === "postgres" || scheme === "postgresql")) return { engine: "postgres", url };
  return { engine: "unsupported", url };
}

/** The SQLite file a URL names, or null for a server (or unsupported) store. */
export function sqliteFileOf(url: string): string | null {
  const t = parseStoreUrl(url);
  return t.engine === "sqlite" ? t.file : null;
}

/** Whether the store is a server, which may be down for a while (not a local file). */
export function isServerStore(url: string): boolean {
  return parseStoreUrl(url).engine === "postgres";
}

/**
 * `sqlite:.vigil/vigil.db` (or a plain relative file path) made absolute against `dir`;
 * PostgreSQL URLs, absolute paths and `:memory:` are returned as they are.
 */
export function resolveStoreUrl(url: string, dir: string): string {
  const t = parseStoreUrl(url);
  if (t.engine !== "sqlite" || !t.file || t.file === ":memory:" || isAbsolute(t.file)) return url;
  return `${t.prefixed ? "sqlite:" : ""}${resolve(dir, t.file)}`;
}
