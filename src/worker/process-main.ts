/**
 * The `vigil worker` process: config → store → handlers → Worker, wired to signals and the
 * supervisor's IPC channel. See src/cli/worker.ts for the exit codes.
 */
import { hostname } from "node:os";
import { BadInputError, VigilError } from "../core/errors.js";
import { stopAll } from "../core/stop-all.js";
import type { QueueConfig, VigilConfig } from "../config/schema.js";
import type { CommandRegistry } from "../handlers/command-registry.js";
import type { Handler } from "../handlers/types.js";
import { openProjectStore, type Project } from "../project/project.js";
import type { QueueOptions } from "./options.js";
import { onStopRequests, processId, processLogger, startWatchdog } from "../child/process-setup.js";
import { ENV_STALL_AFTER, sendToParent } from "../child/protocol.js";
import { linkToSupervisor } from "./supervisor-link.js";
import { withTestCrash } from "./test-crash.js";
import { Worker } from "./worker.js";

/** Exit code of a worker that drained and stopped. */
export const EXIT_DRAINED = 0;
/** Exit code of a worker whose handler was wedged (EX_SOFTWARE): replace the process. */
export const EXIT_WEDGED = 70;
/** Exit code of a worker that found itself frozen past stallAfter (EX_TEMPFAIL): replace it. */
export const EXIT_FROZEN = 75;
/**
 * Extra time, beyond the shutdown timeout, that a stop may take to commit and give back
 * (15 s). A store that stopped answering would otherwise hold the process for ever; past
 * this, whatever was not committed comes back through lease expiry.
 */
const STOP_SLACK_MS = 15_000;
/** How long the cleanup after a wedge may take before the process exits anyway (10 s). */
const WEDGED_EXIT_MS = 10_000;
/** How long retention, the store and the watchdog may each take to close when stopping (5 s). */
const CLOSE_WITHIN_MS = 5_000;

/** What `vigil worker` runs: queue names from the config, and the drain time (ms). */
export interface WorkerProcessOptions {
  queues: string[];
  shutdownTimeout: number;
}

/**
 * Runs `vigil worker` until a signal, a `drain` message or a wedge ends the process (it
 * never returns normally). Throws, for the CLI to print, when it cannot start.
 */
export async function runWorkerProcess(ctx: Project, opts: WorkerProcessOptions): Promise<void> {
  const { queues: names, shutdownTimeout } = opts;
  if (!ctx.config) {
    throw new VigilError(
      "CONFIG",
      "vigil worker needs a config file that defines its queues; create vigil.yaml or pass one with -c FILE",
    );
  }
  const config = ctx.config;
  for (const name of names) {
    if (!config.queues[name]) {
      const known = Object.keys(config.queues);
      throw new BadInputError(
        `queue "${name}" is not defined in ${ctx.configPath}; ` +
          (known.length ? `defined queues: ${known.join(", ")}` : "add it under `queues:`"),
      );
    }
  }
  const workerId = processId(config.host ?? hostname());
  const logger = processLogger();

  // Command handlers run in their own process groups; end those a killed worker left.
  const commandsDir = ctx.paths.commands;
  const { CommandRegistry, killOrphanCommands } = await import("../handlers/command-registry.js");
  for (const g of killOrphanCommands(commandsDir)) {
    logger.warn({ pgid: g.pgid, jobId: g.jobId, argv: g.argv }, "ended a command a previous worker left running");
  }
  const registry = new CommandRegistry(commandsDir, workerId);
  process.on("exit", () => registry.killAll());

  const queues: Record<string, QueueOptions> = {};
  for (const name of names) queues[name] = await queueOptions(config.queues[name]!, ctx.dir, registry);

  const watchdog = await startWatchdog(logger);

  const store = await openProjectStore(ctx);
  let exiting = false;
  const finish = async (code: number, stopWithinMs: number, hardMs: number) => {
    if (exiting) return;
    exiting = true;
    // Whatever happens below, the process ends: a hung store must not keep a zombie worker.
    setTimeout(() => {
      logger.error({ code }, "stop took too long; exiting without finishing it");
      process.exit(code === EXIT_DRAINED ? 1 : code);
    }, hardMs).unref();
    await stopAll(
      [
        { name: "worker", stop: () => worker.stop({ timeoutMs: stopWithinMs }), timeoutMs: hardMs },
        { name: "retention", stop: () => retention.stop(), timeoutMs: CLOSE_WITHIN_MS },
        { name: "store", stop: () => store.close(), timeoutMs: CLOSE_WITHIN_MS },
        { name: "watchdog", stop: () => watchdog?.stop(), timeoutMs: CLOSE_WITHIN_MS },
      ],
      (step, err) => logger.error({ step, err }, "error while stopping"),
    );
    process.exit(code);
  };

  const worker = new Worker(withTestCrash(store), {
    queues,
    workerId,
    logger,
    stages: stagesOf(config),
    shutdownTimeout,
    onWedged: () => void finish(EXIT_WEDGED, 0, WEDGED_EXIT_MS),
    // Frozen: its jobs may be another worker's by now. It exits at once, before any more
    // handler code runs; what it did not record comes back through the supervisor's
    // release (after this process is gone) or the leases running out.
    frozenAfter: Number(process.env[ENV_STALL_AFTER]) || undefined,
    onFrozen: () => process.exit(EXIT_FROZEN),
  });
  linkToSupervisor(worker, sendToParent);

  // Pruning old jobs needs one process per project; every worker offers, the store lock
  // lets one prune. Workers always run, so retention works with or without triggers.
  const { startRetention } = await import("../health/retention.js");
  const retention = startRetention(store, config.retention, { owner: workerId, logger });

  const drain = (why: string) => {
    logger.info({ why }, "stop requested");
    void finish(EXIT_DRAINED, shutdownTimeout, shutdownTimeout + STOP_SLACK_MS);
  };
  onStopRequests(logger, drain);
  process.on("unhandledRejection", (err) => {
    logger.error({ err }, "unhandled promise rejection in a handler");
  });
  worker.start();
  await new Promise<void>(() => {
    // Runs until a signal, a drain message or a wedge ends the process.
  });
}

/** A config queue as Worker options, with its handler loaded. */
async function queueOptions(q: QueueConfig, dir: string, registry: CommandRegistry): Promise<QueueOptions> {
  let handler: Handler;
  if (q.handler !== undefined) {
    const { loadModuleHandler } = await import("../handlers/module.js");
    handler = await loadModuleHandler(q.handler);
  } else {
    const { commandHandler } = await import("../handlers/command.js");
    handler = commandHandler({ command: q.command!, env: q.env, cwd: q.cwd ?? dir, maxOutput: q.maxOutput, registry });
  }
  return {
    handler,
    concurrency: q.concurrency,
    timeout: q.timeout,
    killGrace: q.killGrace,
    heartbeatTimeout: q.heartbeatTimeout,
    attempts: q.attempts,
    backoff: { baseMs: q.backoff.base, maxMs: q.backoff.max },
    lease: q.lease,
    prefetch: q.prefetch,
    maxStalls: q.maxStalls,
    next: q.next,
    maxRounds: q.maxRounds,
    flow: { rate: q.rate, limit: q.limit, group: q.group },
  };
}

function stagesOf(config: VigilConfig): Record<string, { maxRounds?: number; attempts?: number }> {
  const out: Record<string, { maxRounds?: number; attempts?: number }> = {};
  for (const [name, q] of Object.entries(config.queues)) out[name] = { maxRounds: q.maxRounds, attempts: q.attempts };
  return out;
}
