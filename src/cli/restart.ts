/** `vigil restart [SERVICE]`: asks the live supervisor to restart one service, one process, or all. */
import type { Command } from "commander";
import { BadInputError } from "../core/errors.js";
import { projectDir } from "./context.js";

export function register(program: Command): void {
  program
    .command("restart")
    .description("restart a service (workers), one process (workers:2), or everything; recorded as a manual restart")
    .argument("[service]", "service or process name")
    .action(async (service: string | undefined, _flags: unknown, cmd: Command) => {
      const { askSupervisor } = await import("../supervisor/supervisor.js");
      const res = await askSupervisor(projectDir(cmd), { op: "restart", ...(service ? { service } : {}) }, 30_000);
      if (res === null) throw new BadInputError("no supervisor is running for this project; start it with `vigil start`");
      if (!res.ok) throw new BadInputError(res.error);
      process.stdout.write(`vigil: restarting ${(res.restarted as string[]).join(", ")}\n`);
    });
}
