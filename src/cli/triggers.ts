/**
 * `vigil triggers`: the process that polls every trigger of the config and prunes old
 * jobs (retention). The supervisor runs it as a service (and watches its heartbeat like a worker's)
 * when the config has triggers; it also runs by hand in the foreground. The work is in
 * src/triggers/process-main.ts, imported only when the command runs.
 *
 * Exit codes: 0 stopped after SIGTERM, SIGINT or a `drain` message; 1 it could not start
 * (config, store) or failed unexpectedly.
 */
import type { Command } from "commander";
import { loadContext } from "./context.js";

export function register(program: Command): void {
  program
    .command("triggers")
    .description("poll the config's triggers (tail, watch, file) and turn new records into jobs, in the foreground")
    .action(async (_opts: unknown, cmd: Command) => {
      const project = await loadContext(cmd);
      const { runTriggersProcess } = await import("../triggers/process-main.js");
      await runTriggersProcess(project);
    });
}
