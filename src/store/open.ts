/** Opens a store from a URL: `sqlite:PATH`, a plain file path, or `postgres://...`. */
import { BadInputError } from "../core/errors.js";
import { parseStoreUrl } from "../core/store-url.js";
import type { Store, StoreOptions } from "./store.js";

export async function openStore(url: string, opts: StoreOptions = {}): Promise<Store> {
  const target = parseStoreUrl(url);
  if (target.engine === "postgres") {
    const { openPostgresStore } = await import("./postgres/store.js");
    return openPostgresStore(url, opts);
  }
  if (target.engine === "unsupported") {
    throw new BadInputError(`store "${url}" is not supported; use sqlite:PATH or postgres://user@host/db`);
  }
  if (!target.file) throw new BadInputError(`store "${url}" names no file; write it like sqlite:.vigil/vigil.db`);
  const { openSqliteStore } = await import("./sqlite/store.js");
  return openSqliteStore(target.file, opts);
}
