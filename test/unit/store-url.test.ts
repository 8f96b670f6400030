/** The one store-URL parser: what each spelling of `store:` / `--store` names. */
import { describe, expect, it } from "vitest";
import { DEFAULT_STORE_URL, isServerStore, parseStoreUrl, resolveStoreUrl, sqliteFileOf } from "../../src/core/store-url.js";

describe("parseStoreUrl", () => {
  it("reads SQLite files, PostgreSQL servers and anything else as unsupported", () => {
    expect(parseStoreUrl(DEFAULT_STORE_URL)).toEqual({ engine: "sqlite", file: ".vigil/vigil.db", prefixed: true });
    expect(parseStoreUrl("data/x.db")).toEqual({ engine: "sqlite", file: "data/x.db", prefixed: false });
    expect(parseStoreUrl("sqlite:")).toEqual({ engine: "sqlite", file: "", prefixed: true });
    expect(parseStoreUrl("postgres://u@h/db")).toEqual({ engine: "postgres", url: "postgres://u@h/db" });
    expect(parseStoreUrl("postgresql://u@h/db").engine).toBe("postgres");
    expect(parseStoreUrl("redis://h/0").engine).toBe("unsupported");
    expect(parseStoreUrl("sqlite:mysql://h/db").engine).toBe("unsupported");
    expect(isServerStore("postgres://u@h/db")).toBe(true);
    expect(isServerStore("sqlite:x.db")).toBe(false);
    expect(sqliteFileOf("sqlite:/var/x.db")).toBe("/var/x.db");
    expect(resolveStoreUrl("sqlite::memory:", "/p")).toBe("sqlite::memory:");
    expect(resolveStoreUrl(DEFAULT_STORE_URL, "/p")).toBe("sqlite:/p/.vigil/vigil.db");
  });
});
