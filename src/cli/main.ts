/**
 * The `vigil` command. One file per command under src/cli/; each exports
 * `register(program)` and keeps its heavy imports inside its action, so `vigil worker`
 * starts fast and a typo costs nothing.
 */
import { Command, CommanderError } from "commander";
import { exitWithError } from "./output.js";
import { register as registerStart } from "./start.js";
import { register as registerStop } from "./stop.js";
import { register as registerRestart } from "./restart.js";
import { register as registerLogs } from "./logs.js";
import { register as registerIncidents } from "./incidents.js";
import { register as registerStatus } from "./status.js";
import { register as registerEnqueue } from "./enqueue.js";
import { register as registerJobs } from "./jobs.js";
import { register as registerMigrate } from "./migrate.js";
import { register as registerWorker } from "./worker.js";
import { register as registerHealth } from "./health.js";
import { register as registerReport } from "./report.js";
import { register as registerDoctor } from "./doctor.js";
import { register as registerBackup } from "./backup.js";
import { register as registerTriggers } from "./triggers.js";
import { register as registerRuns } from "./runs.js";

export function buildProgram(): Command {
  const program = new Command("vigil")
    .description("Multi-stage job pipelines that heal themselves")
    .option("-c, --config <file>", "config file", "vigil.yaml")
    .option("--store <url>", "store URL (overrides the config's `store`)")
    .option("--debug", "print stack traces with errors")
    .showHelpAfterError("(vigil --help lists the commands)")
    .exitOverride();
  registerEnqueue(program);
  registerJobs(program);
  registerMigrate(program);
  registerWorker(program);
  registerStart(program);
  registerStop(program);
  registerRestart(program);
  registerLogs(program);
  registerIncidents(program);
  registerStatus(program);
  registerHealth(program);
  registerReport(program);
  registerDoctor(program);
  registerBackup(program);
  registerTriggers(program);
  registerRuns(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // `vigil jobs list | head`: the reader went away; that is the end of the output, not an error.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed its message (help, version, usage errors).
      process.exitCode = err.exitCode;
      return;
    }
    exitWithError(err, argv.includes("--debug"));
  }
}
