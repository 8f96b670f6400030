/**
 * Set-up shared by the processes the supervisor runs and watches (`vigil worker`,
 * `vigil triggers`): their id, their logger, the watchdog thread, and how a stop is asked
 * for (signals, the supervisor's `drain` message, the supervisor going away).
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { pino, type Logger } from "pino";
import { ENV_SERVICE, ENV_STACK_FILE, ENV_WORKER_ID } from "./protocol.js";
import type { Watchdog } from "./watchdog.js";

/**
 * The process's id: `VIGIL_WORKER_ID` as the supervisor set it, else `host:pid:random`
 * (`host` defaults to the machine's host name).
 */
export function processId(host: string = hostname()): string {
  return process.env[ENV_WORKER_ID] || `${host}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

/**
 * The process's logger: JSON lines on stdout (fd 1), which the supervisor collects, at
 * `VIGIL_LOG_LEVEL` (default info), tagged with `VIGIL_SERVICE` (else `service`).
 */
export function processLogger(service?: string): Logger {
  // If the supervisor goes away the pipe breaks (EPIPE); that must not crash a process
  // that is stopping because of it.
  const destination = pino.destination({ fd: 1, sync: true });
  destination.on("error", () => {});
  return pino(
    {
      level: process.env.VIGIL_LOG_LEVEL ?? "info",
      base: { pid: process.pid, service: process.env[ENV_SERVICE] ?? service },
    },
    destination,
  );
}

/**
 * Starts the watchdog thread when the supervisor asked for one (`VIGIL_STACK_FILE`), and
 * resolves once it is ready; undefined when none was asked for.
 */
export async function startWatchdog(logger: Logger): Promise<Watchdog | undefined> {
  const stackFile = process.env[ENV_STACK_FILE];
  if (!stackFile) return undefined;
  const { Watchdog } = await import("./watchdog.js");
  const watchdog = new Watchdog({ file: stackFile }, (message) => logger.warn({ message }, "watchdog problem"));
  // The debugger must be enabled while the main thread is healthy: wait for it.
  await watchdog.start();
  return watchdog;
}

/**
 * Calls `stop(why)` on SIGTERM, SIGINT, a `{t:"drain"}` message and the supervisor
 * disconnecting (an unsupervised process would run on unwatched); an uncaught exception
 * is logged and exits 1, for the supervisor to restart the process.
 */
export function onStopRequests(logger: Logger, stop: (why: string) => void): void {
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("message", (m: unknown) => {
    if (typeof m === "object" && m !== null && (m as { t?: unknown }).t === "drain") stop("drain message");
  });
  // `disconnect` only ever fires on a process started with an IPC channel.
  process.on("disconnect", () => stop("supervisor disconnected"));
  process.on("uncaughtException", (err) => {
    logger.fatal({ err }, "uncaught exception; exiting (the supervisor restarts)");
    process.exit(1);
  });
}
