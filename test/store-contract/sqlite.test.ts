import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import { defineStoreContract } from "./contract.js";

defineStoreContract("sqlite", async (opts) => {
  // A real file in a temp folder (not :memory:), as the stores run in production.
  const dir = mkdtempSync(join(tmpdir(), "vigil-contract-"));
  const store = await openSqliteStore(join(dir, "vigil.db"), opts);
  return { store, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});
