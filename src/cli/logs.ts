/** `vigil logs SERVICE [-f] [-n N]`: a service's log (all its instances), from `.vigil/logs/`. */
import type { Command } from "commander";
import { basename } from "node:path";
import { BadInputError } from "../core/errors.js";
import { projectDir } from "./context.js";

export function register(program: Command): void {
  program
    .command("logs")
    .description("print a service's log; -f follows it")
    .argument("<service>", "service (workers) or process (workers:2), or supervisor")
    .option("-f, --follow", "keep printing what is appended")
    .option("-n, --lines <n>", "print the last N lines first", "50")
    .action(async (service: string, flags: { follow?: boolean; lines: string }, cmd: Command) => {
      if (!/^\d+$/.test(flags.lines)) throw new BadInputError(`--lines "${flags.lines}" is not a whole number`);
      const [{ readdirSync }, { vigilPaths }, { followFile, lastLines, logFilesFor }] = await Promise.all([
        import("node:fs"),
        import("../project/paths.js"),
        import("../project/logs.js"),
      ]);
      const paths = vigilPaths(projectDir(cmd));
      const files = service === "supervisor" ? [paths.supervisorLog] : logFilesFor(paths.logs, service);
      if (files.length === 0) {
        let have: string[] = [];
        try {
          have = readdirSync(paths.logs).filter((n) => n.endsWith(".log")).map((n) => n.slice(0, -4));
        } catch {
          // no logs folder yet
        }
        throw new BadInputError(`no log for "${service}" in ${paths.logs}${have.length ? `; there are: ${have.join(", ")}` : " (has the supervisor run here?)"}`);
      }
      const prefix = (f: string) => (files.length > 1 ? `[${basename(f, ".log")}] ` : "");
      for (const f of files) for (const line of lastLines(f, Number(flags.lines))) process.stdout.write(prefix(f) + line + "\n");
      if (!flags.follow) return;
      for (const f of files) {
        let partial = "";
        followFile(f, (text) => {
          const lines = (partial + text).split("\n");
          partial = lines.pop() ?? "";
          for (const line of lines) process.stdout.write(prefix(f) + line + "\n");
        });
      }
      await new Promise<never>(() => {});
    });
}
