/** `vigil stop`: SIGTERM to the project's supervisor; waits until it and its processes are gone. */
import type { Command } from "commander";
import { dirname } from "node:path";
import { BadInputError } from "../core/errors.js";
import { projectDir } from "./context.js";

export function register(program: Command): void {
  program
    .command("stop")
    .description("stop the supervisor: workers drain, then every process exits")
    .option("--timeout <duration>", "give up waiting after this long", "2m")
    .action(async (flags: { timeout: string }, cmd: Command) => {
      const [{ requireDuration }, { vigilPaths }, { readPid, isVigilSupervisor, isRunning }] = await Promise.all([
        import("../core/duration.js"),
        import("../project/paths.js"),
        import("../project/pid-file.js"),
      ]);
      const timeoutMs = requireDuration(flags.timeout, "--timeout");
      const paths = vigilPaths(projectDir(cmd));
      const pid = readPid(paths.pidFile);
      if (pid === null || !isVigilSupervisor(pid)) {
        process.stderr.write(`vigil: no supervisor is running for ${dirname(paths.root)}\n`);
        return;
      }
      process.kill(pid, "SIGTERM");
      const deadline = Date.now() + timeoutMs;
      while (isRunning(pid)) {
        if (Date.now() > deadline) {
          throw new BadInputError(`supervisor pid ${pid} is still stopping after ${flags.timeout}; see ${paths.supervisorLog}, or \`kill -9 ${pid}\` (the next start cleans up)`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      process.stdout.write(`vigil: stopped (pid ${pid})\n`);
    });
}
