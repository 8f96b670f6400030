/**
 * What `vigil start` (src/cli/start.ts) runs beside the supervisor, in one call: the HTTP
 * server (JSON API, /metrics, /healthz, dashboard) when `http.enabled`, with its token, and
 * the health watch that turns health changes into alerts.
 *
 *   const ops = await startOperations({ config, dir, store, snapshot: () => sup.snapshot(),
 *     restartService: (n, o) => sup.restartService(n, o), alerts, logger: sup.log });
 *   ...
 *   await ops.close();
 */
import { hostname } from "node:os";
import type { VigilConfig } from "../config/schema.js";
import { sqliteFileOf } from "../core/store-url.js";
import { runHealthChecks, type HealthReport } from "../health/checks.js";
import { silentLogger, type Logger } from "../core/log.js";
import type { OpsAlertSink } from "../health/alerts.js";
import type { AlertSink, StatusSnapshot } from "../core/status.js";
import { startHealthWatch } from "../health/watch.js";
import { queueServicesOf } from "../health/why.js";
import type { Store } from "../store/store.js";
import { vigilPaths } from "../project/paths.js";
import { startHttpServer, type HttpServerHandle } from "./server.js";
import { resolveToken } from "./token.js";

/** What the supervisor hands over. */
export interface OperationsOptions {
  config: VigilConfig;
  /** The project folder (holds `.vigil/`). */
  dir: string;
  store: Store;
  /** The store URL in use when it differs from `config.store` (a `--store` override). */
  storeUrl?: string;
  snapshot: () => Promise<StatusSnapshot>;
  restartService?: (name: string, opts: { manual: true }) => Promise<unknown>;
  alerts?: AlertSink;
  logger?: Logger;
  /** Time between health runs for alerts, ms (default 30 s). */
  healthEvery?: number;
}

/** The running operations surface. */
export interface Operations {
  /** The HTTP server, or null when `http.enabled` is false. */
  http: HttpServerHandle | null;
  health(): Promise<HealthReport>;
  close(): Promise<void>;
}

/** Starts the HTTP server (if enabled) and the health watch (if alerts are given). */
export async function startOperations(opts: OperationsOptions): Promise<Operations> {
  const { config, store } = opts;
  const logger = opts.logger ?? silentLogger;
  const stateDir = vigilPaths(opts.dir).root;
  const health = async (): Promise<HealthReport> =>
    runHealthChecks({
      store,
      stateDir,
      limits: config.health,
      stallAfter: config.supervision.stallAfter,
      statusEvery: config.supervision.statusEvery,
      snapshot: await opts.snapshot(),
      storeFile: sqliteFileOf(opts.storeUrl ?? config.store),
      retention: config.retention.completed,
    });
  let http: HttpServerHandle | null = null;
  if (config.http.enabled) {
    const restart = opts.restartService;
    http = await startHttpServer({
      host: config.http.host,
      port: config.http.port,
      token: resolveToken(stateDir, config.http.token),
      store,
      snapshot: opts.snapshot,
      restartService: restart ? async (name, o) => void (await restart(name, o)) : undefined,
      health,
      queueServices: queueServicesOf(config.services),
      alerts: isOpsSink(opts.alerts) ? opts.alerts : undefined,
      stallAfter: config.supervision.stallAfter,
      readOnly: config.http.readOnly,
      logger,
      config,
      logsDir: vigilPaths(opts.dir).logs,
    });
    const where = config.http.token ? "http.token in the config" : `${stateDir}/token`;
    logger.info(`dashboard, JSON API and /metrics at ${http.url}/ (token: ${where})`);
  }
  const watch = opts.alerts
    ? startHealthWatch({ run: health, sink: opts.alerts, host: config.host ?? hostname(), every: opts.healthEvery, store, logger })
    : null;
  return {
    http,
    health,
    async close(): Promise<void> {
      watch?.stop();
      await http?.close();
    },
  };
}

function isOpsSink(sink: AlertSink | undefined): sink is OpsAlertSink {
  return typeof (sink as OpsAlertSink | undefined)?.stats === "function";
}
