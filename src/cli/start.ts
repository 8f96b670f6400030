/**
 * `vigil start [-c vigil.yaml] [--detach [--wait 30s]] [--role workers]`: runs the
 * supervisor in the foreground (SIGTERM or SIGINT stops it gracefully), or in the
 * background with its log in `.vigil/supervisor.log`.
 */
import type { Command } from "commander";
import { formatDuration, requireDuration } from "../core/duration.js";
import { BadInputError } from "../core/errors.js";
import { stopAll, type StopStep } from "../core/stop-all.js";
import type { Operations } from "../http/operations.js";
import type { Project } from "../project/project.js";
import { globalOptions, loadContext } from "./context.js";

interface StartFlags {
  detach?: boolean;
  wait: string;
  role: string;
}

/**
 * How long `--detach` waits by default (`--wait`) for the background supervisor to answer
 * on its control socket: start-up includes the orphan clean-up (up to killTimeout) and
 * opening the store (waiting for it while its server is down). One still starting after
 * this is stopped.
 */
const DETACH_WAIT = "30s";
/** How long closing the HTTP server, the alert sink or the store may take when stopping. */
const CLOSE_WITHIN_MS = 10_000;
/**
 * Beyond killTimeout, how long the supervisor's own stop may take (the stop incident and
 * the last status file, written through the store) before the rest is closed anyway.
 */
const SUPERVISOR_STOP_SLACK_MS = 30_000;

export function register(program: Command): void {
  program
    .command("start")
    .description("run the supervisor and every service in the config")
    .option("--detach", "run in the background; its log goes to .vigil/supervisor.log")
    .option("--wait <duration>", "with --detach: how long the supervisor may take to come up (its store down, say) before it is stopped", DETACH_WAIT)
    .option("--role <role>", "all, or workers (extra hosts: workers only, no triggers)", "all")
    .action(async (flags: StartFlags, cmd: Command) => {
      if (flags.role !== "all" && flags.role !== "workers") {
        throw new BadInputError(`--role "${flags.role}" is not a role; use all or workers`);
      }
      const ctx = await loadContext(cmd);
      if (!ctx.config || !ctx.configPath) {
        throw new BadInputError(`no config file ${globalOptions(cmd).config ?? "vigil.yaml"} here; create one (see docs) or name it with -c FILE`);
      }
      if (flags.detach) {
        const waitMs = requireDuration(flags.wait, "--wait");
        return detach(ctx.configPath, ctx.dir, flags.role, globalOptions(cmd).store, waitMs);
      }
      await runForeground(ctx, flags.role as "all" | "workers");
    });
}

async function runForeground(project: Project, role: "all" | "workers"): Promise<void> {
  const [{ openProjectStoreWhenReachable }, { Supervisor }, { createAlertSink }, { startOperations }] = await Promise.all([
    import("../project/project.js"),
    import("../supervisor/supervisor.js"),
    import("../health/alerts.js"),
    import("../http/operations.js"),
  ]);
  const config = project.config!;
  // A server may be down for a while; a SQLite file that cannot be opened will not get better.
  const store = await openProjectStoreWhenReachable(project);
  const alerts = createAlertSink(config.alerts, { recoveryHoldMs: config.supervision.recoveredAfter });
  const sup = new Supervisor({
    config,
    configPath: project.configPath!,
    dir: project.dir,
    store,
    role,
    storeUrl: project.storeOverride,
    alerts,
  });
  const report = (step: string, err: unknown) => process.stderr.write(`vigil: stopping ${step} failed: ${(err as Error)?.message ?? String(err)}\n`);
  const closeRest: StopStep[] = [
    { name: "alerts", stop: () => alerts.close(), timeoutMs: CLOSE_WITHIN_MS },
    { name: "store", stop: () => store.close(), timeoutMs: CLOSE_WITHIN_MS },
  ];
  try {
    await sup.start();
  } catch (err) {
    await stopAll(closeRest, report);
    throw err;
  }
  // Beside the supervisor, not inside it: the dashboard, JSON API, /metrics and the health
  // watch (config.http, enabled by default) read its snapshot and may ask it to restart a
  // service. A port that cannot be bound is logged, not fatal: supervision matters more.
  let ops: Operations | null = null;
  try {
    ops = await startOperations({
      config,
      dir: project.dir,
      store,
      storeUrl: project.storeOverride,
      snapshot: () => sup.snapshot(),
      restartService: (name, o) => sup.restartService(name, o),
      alerts,
      logger: sup.log,
    });
  } catch (err) {
    sup.log.warn({ err }, "the HTTP server did not start; supervision goes on without it");
  }
  let exiting = false;
  const shutdown = async (why: string, code: number) => {
    if (exiting) return;
    exiting = true;
    await stopAll(
      [
        // Its processes drain (SIGKILL after killTimeout), then the last status file.
        { name: "supervisor", stop: () => sup.stop(why), timeoutMs: config.supervision.killTimeout + SUPERVISOR_STOP_SLACK_MS },
        { name: "http", stop: () => ops?.close(), timeoutMs: CLOSE_WITHIN_MS },
        ...closeRest,
      ],
      report,
    );
    process.exit(code);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM", 0));
  process.on("SIGINT", () => void shutdown("SIGINT", 0));
  // Losing the terminal must not stop a supervisor that was started in one.
  process.on("SIGHUP", () => {});
  sup.on("stopped", () => void shutdown("vigil stop", 0));
  await new Promise<never>(() => {});
}

async function detach(configPath: string, dir: string, role: string, storeUrl: string | undefined, waitMs: number): Promise<void> {
  const [{ openSync, mkdirSync }, { vigilPaths }, { readPidFile }, { spawnGroup, isAlive }, { VIGIL_BIN }, { askSupervisor }, { lastLines, followFile }] = await Promise.all([
    import("node:fs"),
    import("../project/paths.js"),
    import("../project/pid-file.js"),
    import("../os/process.js"),
    import("../supervisor/slot-specs.js"),
    import("../supervisor/supervisor.js"),
    import("../project/logs.js"),
  ]);
  const paths = vigilPaths(dir);
  const running = readPidFile(paths.root);
  if (running.alive) {
    throw new BadInputError(`a supervisor is already running for this project (pid ${running.pid}); use \`vigil stop\` first`);
  }
  mkdirSync(paths.root, { recursive: true });
  const out = openSync(paths.supervisorLog, "a");
  const argv = [process.execPath, VIGIL_BIN, "start", "-c", configPath, "--role", role, ...(storeUrl ? ["--store", storeUrl] : [])];
  // What this start adds to the log says whether the supervisor is waiting for its store.
  let waiting = false;
  const unfollow = followFile(paths.supervisorLog, (text) => {
    waiting ||= text.includes("waiting for the store");
  });
  // Own session and process group: closing the terminal or its SIGINT does not reach it.
  const child = spawnGroup(argv, { stdio: ["ignore", out, out], cwd: dir });
  const pid = child.pid;
  child.unref();
  try {
    if (!pid) throw new BadInputError(`could not start ${argv.join(" ")}`);
    const deadline = Date.now() + waitMs;
    let told = false;
    while (Date.now() < deadline) {
      const res = await askSupervisor(dir, { op: "ping" }, 1000);
      if (res?.ok && res.pid === pid) {
        process.stdout.write(
          `vigil: supervisor started in the background (pid ${pid})\n` +
            `  log:     ${paths.supervisorLog}\n  status:  vigil -c ${configPath} status\n  stop:    vigil -c ${configPath} stop\n`,
        );
        return;
      }
      if (!isAlive(pid)) break;
      if (waiting && !told) {
        told = true;
        process.stderr.write(
          `vigil: the supervisor (pid ${pid}) is waiting for its store; it has ${Math.round((deadline - Date.now()) / 1000)} s more to come up (log: ${paths.supervisorLog})\n`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    unfollow();
  }
  // Still starting (waiting for its store, say): ended, so no supervisor is left running
  // that `vigil stop` could not find.
  let stopped = false;
  if (isAlive(pid)) {
    try {
      process.kill(-pid, "SIGTERM");
      stopped = true;
    } catch {
      // It ended on its own meanwhile.
    }
  }
  const tail = lastLines(paths.supervisorLog, 10).join("\n");
  throw new BadInputError(
    `the supervisor did not come up${stopped ? ` within ${formatDuration(waitMs)} and was stopped` : ""} (pid ${pid}); last lines of ${paths.supervisorLog}:\n${tail}`,
  );
}
