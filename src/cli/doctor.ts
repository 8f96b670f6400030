/** `vigil doctor [--json]`: what is wrong and what to do about each finding. Read-only. */
import type { Command } from "commander";
import { printJson } from "./output.js";

const MARK = { ok: "ok  ", warning: "WARN", problem: "FAIL" } as const;

/** Adds `vigil doctor` to the program. */
export function register(program: Command): void {
  program
    .command("doctor")
    .description("diagnose: integrity, stale pid files, orphans, dead workers' leases, slow queues, recent incidents")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const [{ loadContext }, { tryOpenProjectStore }] = await Promise.all([import("./context.js"), import("../project/project.js")]);
      const { diagnose } = await import("../health/doctor.js");
      const ctx = await loadContext(cmd);
      const { store, storeError } = await tryOpenProjectStore(ctx);
      try {
        const findings = await diagnose({ store, storeError, dir: ctx.dir, host: ctx.config?.host });
        if (flags.json) printJson(findings);
        else {
          for (const f of findings) {
            process.stdout.write(`${MARK[f.severity]}  [${f.area}] ${f.summary}\n`);
            if (f.severity !== "ok") process.stdout.write(`      → ${f.advice}\n`);
            const stack = f.detail?.["stack"];
            if (Array.isArray(stack)) for (const frame of stack.slice(0, 5)) process.stdout.write(`        at ${String(frame)}\n`);
          }
        }
        if (findings.some((f) => f.severity === "problem")) process.exitCode = 2;
        else if (findings.some((f) => f.severity === "warning")) process.exitCode = 1;
      } finally {
        await store?.close();
      }
    });
}
