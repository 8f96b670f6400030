/**
 * The JSON API's routes: reads for everyone who can reach the port, state changes (retry,
 * cancel, restart, pause and resume a queue) only with the token. Everything goes through the Store interface; no SQL.
 */
import { parseDuration } from "../core/duration.js";
import { BadInputError, NotFoundError } from "../core/errors.js";
import { JOB_STATES, type JobState } from "../core/types.js";
import type { VigilConfig } from "../config/schema.js";
import type { HealthReport } from "../health/checks.js";
import { listQueues, pausedQueues } from "../health/queues.js";
import { buildReport } from "../health/report.js";
import type { StatusSnapshot } from "../core/status.js";
import type { Store } from "../store/store.js";
import { jobWithWhy, RUN_ROUTES } from "./api-runs.js";

/** What the routes read and call. */
export interface ApiContext {
  store: Store;
  snapshot: () => Promise<StatusSnapshot>;
  restartService?: (name: string, opts: { manual: true }) => Promise<void>;
  health?: () => Promise<HealthReport>;
  /** Queue → the worker services that run it (from the config), for a job's `why`. */
  queueServices?: Record<string, string[]>;
  /** `supervision.stallAfter`, ms, for a job's `why` about a silent worker. */
  stallAfter?: number;
  /** The config, for each queue's flow control in `GET /api/queues/list`. */
  config?: VigilConfig;
  /** The worker processes' log files (`.vigil/logs/`), for `GET /api/jobs/:id/log`. */
  logsDir?: string;
}

/** The parts of a request a route uses. */
export interface ApiRequest {
  method: string;
  params: string[];
  query: URLSearchParams;
  /** The request body's text (POST), at most the server's `maxBody` bytes. */
  body?: string;
}

/** One endpoint of the JSON API. */
export interface ApiRoute {
  method: "GET" | "POST";
  /** Matched against the path; capture groups become `params`. */
  path: RegExp;
  /** Name for metrics and logs. */
  name: string;
  /** Needs `Authorization: Bearer <token>`. */
  mutating: boolean;
  run(ctx: ApiContext, req: ApiRequest): Promise<{ status?: number; body: unknown }>;
}

/**
 * Largest page of jobs one request returns; a larger `limit` (or `limit=0`) means this
 * many. With payloads and results cut to JOB_PREVIEW_CHARS, a page holds at most about
 * 200 × 2 × 2 KiB of them, where 1,000 whole jobs of 1 MiB each could make 2 GB.
 */
export const MAX_JOBS_PAGE = 200;
/**
 * A job page carries this many characters of each payload's and result's JSON text; a
 * longer one is that much text with `payloadTruncated` / `resultTruncated` set, and
 * `GET /api/jobs/:id` returns the whole job.
 */
export const JOB_PREVIEW_CHARS = 2048;

/** Every JSON endpoint, matched in order. */
export const API_ROUTES: ApiRoute[] = [
  {
    method: "GET",
    path: /^\/api\/status$/,
    name: "status",
    mutating: false,
    run: async (ctx) => ({ body: await ctx.snapshot() }),
  },
  {
    method: "GET",
    path: /^\/api\/queues$/,
    name: "queues",
    mutating: false,
    run: async (ctx) => {
      const [stats, waiting, paused] = await Promise.all([ctx.store.stats(), ctx.store.oldestWaiting(), pausedQueues(ctx.store)]);
      const out: Record<string, unknown> = {};
      for (const [q, counts] of Object.entries(stats)) {
        out[q] = { ...counts, oldestWaitingMs: waiting[q] ?? null, paused: paused.includes(q) };
      }
      return { body: out };
    },
  },
  {
    method: "GET",
    path: /^\/api\/queues\/list$/,
    name: "queues-list",
    mutating: false,
    run: async (ctx) => ({ body: await listQueues(ctx.store, ctx.config ?? null) }),
  },
  // Two routes, not one with the verb captured: the audit line and the metrics name the
  // action ("queue-resume work"), as they do for retry and restart.
  {
    method: "POST",
    path: /^\/api\/queues\/([A-Za-z0-9_.:-]{1,128})\/pause$/,
    name: "queue-pause",
    mutating: true,
    run: async (ctx, req) => ({ body: await ctx.store.setPaused(req.params[0]!, true) }),
  },
  {
    method: "POST",
    path: /^\/api\/queues\/([A-Za-z0-9_.:-]{1,128})\/resume$/,
    name: "queue-resume",
    mutating: true,
    run: async (ctx, req) => ({ body: await ctx.store.setPaused(req.params[0]!, false) }),
  },
  {
    method: "GET",
    path: /^\/api\/jobs$/,
    name: "jobs",
    mutating: false,
    run: async (ctx, req) => {
      const state = req.query.get("state") || undefined;
      if (state !== undefined && !JOB_STATES.includes(state as JobState)) {
        throw new BadInputError(`state "${state}" is not one of ${JOB_STATES.join(", ")}`);
      }
      const limit = intParam(req.query, "limit", 50, 0, Number.MAX_SAFE_INTEGER);
      // Newest first; the next page is `before=<the last id of this one>`.
      const beforeId = req.query.has("before") ? intParam(req.query, "before", 0, 1, Number.MAX_SAFE_INTEGER) : undefined;
      const jobs = await ctx.store.list({
        queue: req.query.get("queue") || undefined,
        state: state as JobState | undefined,
        limit: limit === 0 ? MAX_JOBS_PAGE : Math.min(limit, MAX_JOBS_PAGE),
        beforeId,
        preview: JOB_PREVIEW_CHARS,
      });
      return { body: jobs };
    },
  },
  {
    method: "GET",
    path: /^\/api\/jobs\/(\d+)$/,
    name: "job",
    mutating: false,
    run: async (ctx, req) => ({ body: await jobWithWhy(ctx, Number(req.params[0])) }),
  },
  {
    method: "GET",
    path: /^\/api\/incidents$/,
    name: "incidents",
    mutating: false,
    run: async (ctx, req) => {
      const since = req.query.get("since");
      const sinceMs = since ? ctx.store.clock.now() - durationParam(since) : undefined;
      const incidents = await ctx.store.listIncidents({
        since: sinceMs,
        service: req.query.get("service") || undefined,
        limit: intParam(req.query, "limit", 50, 1, 1000),
      });
      return { body: incidents };
    },
  },
  {
    method: "GET",
    path: /^\/api\/triggers$/,
    name: "triggers",
    mutating: false,
    run: async (ctx) => {
      const [snap, rejected] = await Promise.all([ctx.snapshot(), ctx.store.listRejected(undefined, 50)]);
      return { body: { triggers: snap.triggers, rejected } };
    },
  },
  {
    method: "GET",
    path: /^\/api\/report$/,
    name: "report",
    mutating: false,
    run: async (ctx, req) => {
      const window = durationParam(req.query.get("since") ?? "24h");
      const snap = await ctx.snapshot().catch(() => null);
      const report = await buildReport(ctx.store, {
        since: ctx.store.clock.now() - window,
        services: snap?.services.map((s) => s.name),
        host: snap?.supervisor?.host,
      });
      return { body: report };
    },
  },
  {
    method: "GET",
    path: /^\/api\/health$/,
    name: "health",
    mutating: false,
    run: async (ctx) => {
      if (!ctx.health) return { status: 501, body: { error: "health checks are not available in this process" } };
      return { body: await ctx.health() };
    },
  },
  {
    method: "POST",
    path: /^\/api\/jobs\/(\d+)\/retry$/,
    name: "retry",
    mutating: true,
    run: async (ctx, req) => ({ body: await ctx.store.retry(Number(req.params[0])) }),
  },
  {
    method: "POST",
    path: /^\/api\/jobs\/(\d+)\/cancel$/,
    name: "cancel",
    mutating: true,
    run: async (ctx, req) => ({ body: await ctx.store.cancel(Number(req.params[0])) }),
  },
  {
    method: "POST",
    path: /^\/api\/services\/([A-Za-z0-9_.:-]+)\/restart$/,
    name: "restart",
    mutating: true,
    run: async (ctx, req) => {
      if (!ctx.restartService) {
        return { status: 501, body: { error: "no supervisor runs in this process; use `vigil restart` where it runs" } };
      }
      await ctx.restartService(req.params[0]!, { manual: true });
      return { status: 202, body: { ok: true, service: req.params[0] } };
    },
  },
  ...RUN_ROUTES,
];

function intParam(q: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = q.get(name);
  if (raw === null || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new BadInputError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return n;
}

function durationParam(raw: string): number {
  const ms = parseDuration(raw);
  if (ms === undefined) throw new BadInputError(`"${raw}" is not a duration; write it like 1h, 24h or 7d`);
  return ms;
}
