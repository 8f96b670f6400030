/** `vigil migrate`: bring the store's schema up to date (opening a store does it too). */
import type { Command } from "commander";
import { openProjectStore } from "../project/project.js";
import { loadContext } from "./context.js";
import { printJson } from "./output.js";

export function register(program: Command): void {
  program
    .command("migrate")
    .description("apply pending store migrations; upgrading across one that moves jobs needs every older process stopped first (docs/store.md)")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const ctx = await loadContext(cmd);
      const store = await openProjectStore(ctx);
      try {
        const ran = await store.migrate();
        const problem = await store.check();
        if (flags.json) printJson({ store: store.location, migrationsRun: ran, ok: problem === null, problem });
        else process.stdout.write(`store ${store.location} is up to date${problem ? `, but: ${problem}` : ""}\n`);
        if (problem) process.exitCode = 1;
      } finally {
        await store.close();
      }
    });
}
