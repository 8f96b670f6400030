/** Opens a store from a URL: `sqlite:PATH`, a plain file path, or `postgres://...`. */
import { BadInputError } from "../core/errors.js";
import type { Store, StoreOptions } from "./store.js";

export async function openStore(url: string, opts: StoreOptions = {}): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { openPostgresStore } = await import("./postgres/store.js");
    return openPostgresStore(url, opts);
  }
  const path = url.startsWith("sqlite:") ? url.slice("sqlite:".length) : url;
  if (!path) throw new BadInputError(`store "${url}" names no file; write it like sqlite:.vigil/vigil.db`);
  if (/^[a-z]+:\/\//i.test(path)) {
    throw new BadInputError(`store "${url}" is not supported; use sqlite:PATH or postgres://user@host/db`);
  }
  const { openSqliteStore } = await import("./sqlite/store.js");
  return openSqliteStore(path, opts);
}
