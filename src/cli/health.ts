/**
 * `vigil health [--json]`: the named checks of src/health/checks.ts. Exit 0 healthy,
 * 1 degraded, 2 unhealthy — usable as it is from cron, a systemd timer or a Kubernetes
 * exec probe. Opens the store read-only and writes nothing.
 */
import type { Command } from "commander";
import { printJson, printTable } from "./output.js";

/** Adds `vigil health` to the program. */
export function register(program: Command): void {
  program
    .command("health")
    .description("run the health checks; exit 0 healthy, 1 degraded, 2 unhealthy")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const [{ loadContext }, { tryOpenProjectStore }] = await Promise.all([import("./context.js"), import("../project/project.js")]);
      const { runHealthChecks, exitCodeFor } = await import("../health/checks.js");
      const { sqliteFileOf } = await import("../core/store-url.js");
      const { configSchema } = await import("../config/schema.js");
      let ctx: Awaited<ReturnType<typeof loadContext>>;
      try {
        ctx = await loadContext(cmd);
      } catch (err) {
        // A probe must read a config it cannot load as unhealthy (2), not as degraded (1).
        const message = `The config cannot be loaded: ${(err as Error).message}`;
        if (flags.json) printJson({ status: "unhealthy", at: Date.now(), checks: [{ name: "config", status: "unhealthy", message }] });
        else process.stderr.write(`vigil: ${message}\n`);
        process.exitCode = 2;
        return;
      }
      const config = ctx.config ?? configSchema.parse({});
      const { store, storeError } = await tryOpenProjectStore(ctx);
      try {
        const report = await runHealthChecks({
          store,
          storeError,
          stateDir: ctx.paths.root,
          limits: config.health,
          stallAfter: config.supervision.stallAfter,
          statusEvery: config.supervision.statusEvery,
          storeFile: sqliteFileOf(ctx.storeUrl),
          retention: config.retention.completed,
        });
        if (flags.json) printJson(report);
        else {
          printTable(
            ["CHECK", "STATUS", "MESSAGE"],
            report.checks.map((c) => [c.name, c.status, c.message]),
          );
          process.stdout.write(`\noverall: ${report.status}\n`);
        }
        process.exitCode = exitCodeFor(report.status);
      } finally {
        await store?.close();
      }
    });
}
