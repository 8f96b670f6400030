/**
 * `vigil start [-c vigil.yaml] [--detach] [--role workers]`: runs the supervisor in the
 * foreground (SIGTERM or SIGINT stops it gracefully), or in the background with its log
 * in `.vigil/supervisor.log`.
 */
import type { Command } from "commander";
import { backoffDelay, type BackoffPolicy } from "../core/backoff.js";
import { BadInputError, VigilError } from "../core/errors.js";
import type { Store } from "../store/store.js";
import { globalOptions, loadContext } from "./context.js";

interface StartFlags {
  detach?: boolean;
  role: string;
}

/**
 * How long `--detach` waits for the background supervisor to answer on its control
 * socket: start-up includes the orphan clean-up (up to killTimeout) and opening the store
 * (waiting for it while its server is down). One still starting after this is stopped.
 */
const DETACH_WAIT_MS = 30_000;

export function register(program: Command): void {
  program
    .command("start")
    .description("run the supervisor and every service in the config")
    .option("--detach", "run in the background; its log goes to .vigil/supervisor.log")
    .option("--role <role>", "all, or workers (extra hosts: workers only, no triggers)", "all")
    .action(async (flags: StartFlags, cmd: Command) => {
      if (flags.role !== "all" && flags.role !== "workers") {
        throw new BadInputError(`--role "${flags.role}" is not a role; use all or workers`);
      }
      const ctx = await loadContext(cmd);
      if (!ctx.config || !ctx.configPath) {
        throw new BadInputError(`no config file ${globalOptions(cmd).config ?? "vigil.yaml"} here; create one (see docs) or name it with -c FILE`);
      }
      if (flags.detach) return detach(ctx.configPath, ctx.dir, flags.role, globalOptions(cmd).store);
      await runForeground(cmd, flags.role as "all" | "workers");
    });
}

async function runForeground(cmd: Command, role: "all" | "workers"): Promise<void> {
  const [{ loadContext: load, openContextStore }, { Supervisor }, { createAlertSink }] = await Promise.all([
    import("./context.js"),
    import("../supervisor/supervisor.js"),
    import("../health/alerts.js"),
  ]);
  const ctx = await load(cmd);
  const config = ctx.config!;
  // A server may be down for a while; a SQLite file that cannot be opened will not get better.
  const server = /^postgres(ql)?:/.test(ctx.storeUrl);
  const store = server ? await openWhenReachable(() => openContextStore(ctx)) : await openContextStore(ctx);
  const alerts = createAlertSink(config.alerts, { recoveryHoldMs: config.supervision.recoveredAfter });
  const sup = new Supervisor({
    config,
    configPath: ctx.configPath!,
    dir: ctx.dir,
    store,
    role,
    storeUrl: globalOptions(cmd).store ? ctx.storeUrl : undefined,
    alerts,
  });
  let exiting = false;
  const shutdown = async (why: string, code: number) => {
    if (exiting) return;
    exiting = true;
    await sup.stop(why).catch((err: Error) => process.stderr.write(`vigil: stop failed: ${err.message}\n`));
    await alerts.close().catch(() => {});
    await store.close().catch(() => {});
    process.exit(code);
  };
  try {
    await sup.start();
  } catch (err) {
    await alerts.close().catch(() => {});
    await store.close().catch(() => {});
    throw err;
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM", 0));
  process.on("SIGINT", () => void shutdown("SIGINT", 0));
  // Losing the terminal must not stop a supervisor that was started in one.
  process.on("SIGHUP", () => {});
  sup.on("stopped", () => void shutdown("vigil stop", 0));
  await new Promise<never>(() => {});
}

/**
 * Waits between tries to reach a store server that is down at start-up (a host booting
 * before its database, the database restarting): 1 s doubling to 30 s, with jitter.
 */
export const STORE_WAIT: BackoffPolicy = { baseMs: 1000, maxMs: 30_000 };

/**
 * Opens the store, waiting for a server that cannot be reached yet instead of giving up:
 * the supervisor rides out an outage once running, and should not need a person (or a
 * service manager's restart) when the outage comes first. One line per failed try goes to
 * stderr. Any other error (a bad URL, refused credentials, a corrupt file) ends the start
 * at once; SIGTERM or SIGINT during the wait ends it with nothing to clean up.
 */
async function openWhenReachable(open: () => Promise<Store>): Promise<Store> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open();
    } catch (err) {
      if (!(err instanceof VigilError) || err.code !== "STORE_UNREACHABLE") throw err;
      const ms = backoffDelay(STORE_WAIT, attempt);
      if (attempt === 1) process.stderr.write(`vigil: ${err.message}\n`);
      process.stderr.write(`vigil: waiting for the store: try ${attempt} failed, next in ${(ms / 1000).toFixed(1)} s\n`);
      await new Promise((r) => setTimeout(r, ms));
    }
  }
}

async function detach(configPath: string, dir: string, role: string, storeUrl: string | undefined): Promise<void> {
  const [{ openSync, mkdirSync }, { vigilPaths }, { readPid, isVigilSupervisor }, { spawnGroup, isAlive }, { VIGIL_BIN }, { askSupervisor }, { lastLines, followFile }] = await Promise.all([
    import("node:fs"),
    import("../supervisor/paths.js"),
    import("../supervisor/lock.js"),
    import("../os/process.js"),
    import("../supervisor/slot-specs.js"),
    import("../supervisor/supervisor.js"),
    import("../supervisor/logs.js"),
  ]);
  const paths = vigilPaths(dir);
  const running = readPid(paths.pidFile);
  if (running !== null && isVigilSupervisor(running)) {
    throw new BadInputError(`a supervisor is already running for this project (pid ${running}); use \`vigil stop\` first`);
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
    const deadline = Date.now() + DETACH_WAIT_MS;
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
    `the supervisor did not come up${stopped ? ` within ${DETACH_WAIT_MS / 1000} s and was stopped` : ""} (pid ${pid}); last lines of ${paths.supervisorLog}:\n${tail}`,
  );
}
