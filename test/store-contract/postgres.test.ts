import { describe, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import { defineStoreContract } from "./contract.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "./pg-helpers.js";

if (await requirePg("the PostgreSQL store contract")) {
  defineStoreContract("postgres", async (opts) => {
    // Every store the suite opens is a fresh schema on the local server, dropped afterwards.
    const schema = freshSchemaName("vigil_contract");
    const store = await openPostgresStore(PG_URL, { ...opts, schema });
    return { store, cleanup: () => dropSchema(schema) };
  });
} else {
  describe.skip("store contract: postgres (PostgreSQL not reachable)", () => {
    it("needs PostgreSQL", () => {});
  });
}
