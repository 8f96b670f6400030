/**
 * The supervisor's HTTP server (node:http, no framework): the JSON API (`/api/...`),
 * `/metrics` for Prometheus, `/healthz` for load balancers and probes, and the dashboard
 * at `/`.
 *
 * Security: binds 127.0.0.1 unless told otherwise; state-changing endpoints need
 * `Authorization: Bearer <token>` (compared in constant time); request bodies are bounded;
 * while bound to loopback, requests naming another Host are refused so a web page cannot
 * read the API through DNS rebinding; no CORS headers are ever sent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { VigilError } from "../core/errors.js";
import type { OpsAlertSink } from "../health/alerts.js";
import type { HealthReport } from "../health/checks.js";
import { silentLogger, type Logger } from "../core/log.js";
import { storeSnapshot } from "../health/snapshot.js";
import type { StatusSnapshot } from "../core/status.js";
import type { Store } from "../store/store.js";
import type { VigilConfig } from "../config/schema.js";
import { API_ROUTES, type ApiContext } from "./api.js";
import { createMetrics } from "./metrics.js";
import { BULK_ROUTES } from "./api-bulk.js";
import { CURSOR_ROUTES } from "./api-cursors.js";
import { createEventHub } from "./events.js";
import { audit, handleDashboard } from "./login.js";
import { allowedHosts, hostName, isAuthorised, originProblem } from "./session.js";
import { serveStatic } from "./static.js";

/** Options of `startHttpServer`; the store and token are required. */
export interface HttpServerOptions {
  /** Interface to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 7420; 0 picks a free one). */
  port?: number;
  /** Bearer token for state-changing endpoints (see `resolveToken`). */
  token: string;
  store: Store;
  /** The live status (default: from the store and the status file in `stateDir`). */
  snapshot?: () => Promise<StatusSnapshot>;
  /** Restarts a service or process row; absent: the restart endpoint answers 501. */
  restartService?: (name: string, opts: { manual: true }) => Promise<void>;
  /** Health checks for `/healthz` and `/api/health`; absent: `/healthz` answers 200 while the server runs. */
  health?: () => Promise<HealthReport>;
  /** Queue → the worker services that run it (from the config), for a job's `why`. */
  queueServices?: Record<string, string[]>;
  /** For the default snapshot: the state folder (`.vigil/`). */
  stateDir?: string;
  /** The worker processes' log folder (`.vigil/logs/`), for a job's log lines; absent: none are shown. */
  logsDir?: string;
  alerts?: OpsAlertSink;
  /** A heartbeat older than this counts as down in metrics (default 5 s). */
  stallAfter?: number;
  /** The config, for the flow control `GET /api/queues/list` shows (absent: not shown). */
  config?: VigilConfig;
  /** Largest request body accepted, bytes (default 64 KiB). */
  maxBody?: number;
  /** Refuse every state change (`http.readOnly`); the dashboard hides its buttons. */
  readOnly?: boolean;
  logger?: Logger;
}

/** A listening server. */
export interface HttpServerHandle {
  server: Server;
  host: string;
  port: number;
  /** Base URL, e.g. http://127.0.0.1:7420 */
  url: string;
  /** Browsers listening on the live stream (`/api/events`) right now. */
  liveClients(): number;
  close(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** Starts listening; resolves once bound (rejects on EADDRINUSE and the like). */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const host = opts.host ?? "127.0.0.1";
  const log = opts.logger ?? silentLogger;
  const maxBody = opts.maxBody ?? 64 * 1024;
  const snapshot = opts.snapshot ?? (() => storeSnapshot(opts.store, { stateDir: opts.stateDir, queues: Object.keys(opts.config?.queues ?? {}) }));
  const ctx: ApiContext = {
    store: opts.store,
    snapshot,
    restartService: opts.restartService,
    health: opts.health,
    queueServices: opts.queueServices,
    stallAfter: opts.stallAfter,
    config: opts.config,
    logsDir: opts.logsDir,
  };
  const metrics = createMetrics({
    store: opts.store,
    snapshot,
    alerts: opts.alerts ? () => opts.alerts!.stats() : undefined,
    stallAfter: opts.stallAfter,
  });
  const checkHost = LOOPBACK.has(host);
  const hosts = allowedHosts(host);
  const routes = [...API_ROUTES, ...BULK_ROUTES, ...CURSOR_ROUTES];
  const hub = createEventHub({ store: opts.store, snapshot, logger: log });
  const dash = { token: opts.token, readOnly: opts.readOnly ?? false, canRestart: !!opts.restartService, hub, log, send };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<string> => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = req.method ?? "GET";
    if (checkHost && !LOOPBACK.has(hostName(req.headers.host))) {
      send(res, 403, { error: "this server answers only to localhost names" });
      return "forbidden";
    }
    const body = method === "POST" ? await readBody(req, maxBody) : undefined;
    if (method === "POST") {
      const problem = originProblem(req, hosts);
      if (problem) {
        audit(log, req, method, url.pathname, 403);
        send(res, 403, { error: `refused: ${problem}` });
        return "forbidden";
      }
    }
    const dashRoute = handleDashboard(dash, req, res, url.pathname, method, body);
    if (dashRoute) return dashRoute;
    if (url.pathname === "/metrics" && method === "GET") {
      const text = await metrics.render();
      res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
      res.end(text);
      return "metrics";
    }
    if (url.pathname === "/healthz" && method === "GET") {
      const report = opts.health ? await opts.health() : null;
      // Degraded still serves: only unhealthy takes a probe's instance out.
      const code = report && report.status === "unhealthy" ? 503 : 200;
      send(res, code, report ?? { status: "ok", checks: [] });
      return "healthz";
    }
    for (const route of routes) {
      const m = route.path.exec(url.pathname);
      if (!m) continue;
      if (route.method !== method) {
        res.setHeader("allow", route.method);
        send(res, 405, { error: `${url.pathname} accepts ${route.method}` });
        return route.name;
      }
      const parsed = body ? parseJson(body) : undefined;
      // The audit line names the job or service, or for a bulk action the filter it was given.
      const target = m.slice(1).join(" ") || `${url.pathname}${parsed ? ` ${JSON.stringify(parsed).slice(0, 200)}` : ""}`;
      if (route.mutating && dash.readOnly) {
        audit(log, req, route.name, target, 403);
        send(res, 403, { error: "this server is read-only (http.readOnly in the config)" });
        return route.name;
      }
      if (route.mutating && !isAuthorised(req, opts.token)) {
        audit(log, req, route.name, target, 401);
        res.setHeader("www-authenticate", 'Bearer realm="vigil"');
        send(res, 401, { error: "this endpoint needs Authorization: Bearer <token> (the token is in .vigil/token)" });
        return route.name;
      }
      try {
        const out = await route.run(ctx, { method, params: m.slice(1), query: url.searchParams, body });
        if (route.mutating) audit(log, req, route.name, target, out.status ?? 200);
        send(res, out.status ?? 200, out.body);
      } catch (err) {
        if (route.mutating) audit(log, req, route.name, target, errorStatus(err));
        throw err;
      }
      if (route.mutating) hub.poke();
      return route.name;
    }
    if (method === "GET" && serveStatic(url.pathname, res)) return "static";
    send(res, 404, { error: `no such endpoint: ${method} ${url.pathname}` });
    return "unknown";
  };

  const server = createServer((req, res) => {
    req.on("error", () => {});
    handle(req, res)
      .then((route) => metrics.countRequest(route, res.statusCode))
      .catch((err: unknown) => {
        const status = errorStatus(err);
        if (status >= 500) log.error({ err, url: req.url }, "HTTP request failed");
        if (!res.headersSent) send(res, status, { error: (err as Error).message ?? String(err) });
        else res.destroy();
        metrics.countRequest("error", status);
      });
  });
  // Bounds on slow or idle clients, so a stuck browser tab cannot pin sockets forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.on("clientError", (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 7420, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.error({ err }, "HTTP server error"));
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    server,
    host: addr.address,
    port: addr.port,
    url: `http://${urlHost}:${addr.port}`,
    liveClients: () => hub.clients(),
    close: () =>
      new Promise<void>((resolve) => {
        hub.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(text);
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    // A form post (the login) is not JSON; routes that need JSON check what they got.
    return undefined;
  }
}

/** Reads a body as UTF-8 text, refusing one over `max` bytes with 413. */
function readBody(req: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > max) return reject(new HttpError(413, `request body over ${max} bytes`));
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.pause();
        reject(new HttpError(413, `request body over ${max} bytes`));
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function errorStatus(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof VigilError) {
    switch (err.code) {
      case "NOT_FOUND":
        return 404;
      case "BAD_INPUT":
      case "UNKNOWN_QUEUE":
        return 400;
      case "INVALID_STATE":
        return 409;
      case "PAYLOAD_TOO_LARGE":
        return 413;
      default:
        return 500;
    }
  }
  return 500;
}
