/**
 * The `vigil triggers` process: config → store → TriggerRunner, plus retention (one
 * process per project prunes, under the store's `retention` lock), wired to signals and
 * the supervisor's IPC channel. Expired leases are the workers' to reap (worker/reaper.ts).
 * It heartbeats from its main loop like a worker (`{t:"hb"}` every second) and reports
 * each trigger's state with every beat (`{t:"triggers"}`), so a trigger process whose
 * loop is stuck is restarted like a worker.
 */
import { hostname } from "node:os";
import { VigilError } from "../core/errors.js";
import { stopAll } from "../core/stop-all.js";
import { openProjectStore, type Project } from "../project/project.js";
import { startRetention } from "../health/retention.js";
import { ProcessHeartbeat } from "../child/heartbeat.js";
import { onStopRequests, processId, processLogger, startWatchdog } from "../child/process-setup.js";
import { sendToParent } from "../child/protocol.js";
import { TriggerRunner } from "./runner.js";

/** How long stopping may take (polls in flight finishing their commit) before exiting anyway. */
const STOP_HARD_MS = 10_000;
/** How long each stop step may take before the next one runs anyway. */
const STEP_WITHIN_MS = 5_000;

export async function runTriggersProcess(ctx: Project): Promise<void> {
  const config = ctx.config;
  if (!config || Object.keys(config.triggers).length === 0) {
    throw new VigilError(
      "CONFIG",
      config
        ? `${ctx.configPath} defines no triggers; add one under \`triggers:\` (tail, watch, file or schedule)`
        : "vigil triggers needs a config file with triggers; create vigil.yaml or pass one with -c FILE",
    );
  }
  const host = config.host ?? hostname();
  const owner = processId(host);
  const logger = processLogger("triggers");
  const watchdog = await startWatchdog(logger);

  const store = await openProjectStore(ctx);
  const runner = new TriggerRunner(store, {
    triggers: config.triggers,
    queues: config.queues,
    host,
    owner,
    maxPayload: config.maxPayload,
    onError: (trigger, error) =>
      error ? logger.warn({ trigger, error }, "trigger problem") : logger.info({ trigger }, "trigger recovered"),
  });

  const heartbeat = new ProcessHeartbeat(
    (m) => {
      sendToParent(m);
      sendToParent({ t: "triggers", triggers: runner.status() });
    },
    () => [],
  );

  // Old finished jobs are pruned here too, under the store's `retention` lock.
  const retention = startRetention(store, config.retention, { owner, logger });

  let exiting = false;
  const stop = async (why: string) => {
    if (exiting) return;
    exiting = true;
    logger.info({ why }, "stopping");
    setTimeout(() => {
      logger.error("stop took too long; exiting without finishing it");
      process.exit(1);
    }, STOP_HARD_MS).unref();
    heartbeat.stop();
    await stopAll(
      [
        { name: "triggers", stop: () => runner.stop(), timeoutMs: STOP_HARD_MS },
        { name: "retention", stop: () => retention.stop(), timeoutMs: STEP_WITHIN_MS },
        { name: "store", stop: () => store.close(), timeoutMs: STEP_WITHIN_MS },
        { name: "watchdog", stop: () => watchdog?.stop(), timeoutMs: STEP_WITHIN_MS },
      ],
      (step, err) => logger.error({ step, err }, "error while stopping"),
    );
    process.exit(0);
  };
  onStopRequests(logger, (why) => void stop(why));

  runner.start();
  heartbeat.start();
  heartbeat.beat();
  const names = runner.status().map((t) => t.name);
  logger.info({ triggers: names, owner }, `polling ${names.length} trigger(s)`);
  await new Promise<void>(() => {
    // Runs until a signal or a drain message ends the process.
  });
}
