/**
 * `vigil worker --queues a,b`: one worker process in the foreground, what the supervisor
 * launches for a worker service. The work is in src/worker/process-main.ts, imported only
 * when the command runs, so `vigil --help` stays fast.
 *
 * Exit codes: 0 drained after SIGTERM, SIGINT or a `drain` message; 70 a handler was
 * wedged (it did not settle after its abort), so the process must be replaced; 75 it found
 * itself frozen past the supervisor's stallAfter (VIGIL_STALL_AFTER_MS) and left its jobs
 * unfinished; 1 it could not start (config, store, handler) or failed unexpectedly.
 */
import type { Command } from "commander";
import { requireDuration } from "../core/duration.js";
import { BadInputError } from "../core/errors.js";
import { loadContext } from "./context.js";

/** Adds `vigil worker` to the program. */
export function register(program: Command): void {
  program
    .command("worker")
    .description("run one worker process in the foreground for the named queues")
    .requiredOption("--queues <names>", "comma-separated queue names from the config, e.g. outline,implement")
    .option(
      "--shutdown-timeout <duration>",
      "on SIGTERM, how long running jobs may finish before they are given back",
      "10s",
    )
    .action(async (opts: { queues: string; shutdownTimeout: string }, cmd: Command) => {
      const queues = opts.queues
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      if (queues.length === 0) throw new BadInputError("--queues names no queue; write it like --queues outline,implement");
      const shutdownTimeout = requireDuration(opts.shutdownTimeout, "--shutdown-timeout");
      const project = await loadContext(cmd);
      const { runWorkerProcess } = await import("../worker/process-main.js");
      await runWorkerProcess(project, { queues, shutdownTimeout });
    });
}
