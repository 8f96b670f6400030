/**
 * The JSON API's run routes: runs newest first (keyset-paged), one run with its jobs, a job's
 * own log lines, and a rerun from a stage (token required). Spread into `API_ROUTES`; shapes
 * in docs/api.md.
 */
import { BadInputError, NotFoundError } from "../core/errors.js";
import { FINAL_STATES } from "../core/types.js";
import { whyNotFinished } from "../health/why.js";
import { MAX_RUNS_PAGE, RUN_STATES, type RunState } from "../store/runs.js";
import { QUEUE_NAME } from "../core/limits.js";
import type { ApiContext, ApiRoute } from "./api.js";
import { readJobLog } from "./job-log.js";
import type { JobLog } from "../core/job-log.js";

/** Where a job's whole payload and result are read (the previews link here). */
export function jobHref(id: number): string {
  return `/api/jobs/${id}`;
}

/** `GET /api/jobs/:id`'s body: the job, and `why` when it is not finished. */
export async function jobWithWhy(ctx: ApiContext, id: number): Promise<unknown> {
  const job = await ctx.store.get(id);
  if (!job) throw new NotFoundError(`job ${id}`);
  if (FINAL_STATES.includes(job.state)) return { ...job, why: null };
  const snapshot = await ctx.snapshot().catch(() => null);
  const why = await whyNotFinished(job, { store: ctx.store, snapshot, queueServices: ctx.queueServices ?? null, stallAfter: ctx.stallAfter });
  return { ...job, why };
}

export const RUN_ROUTES: ApiRoute[] = [
  {
    method: "GET",
    path: /^\/api\/runs$/,
    name: "runs",
    mutating: false,
    run: async (ctx, req) => {
      const state = req.query.get("state") || undefined;
      if (state !== undefined && !RUN_STATES.includes(state as RunState)) {
        throw new BadInputError(`state "${state}" is not one of ${RUN_STATES.join(", ")}`);
      }
      const page = await ctx.store.listRuns({
        state: state as RunState | undefined,
        queue: req.query.get("queue") || undefined,
        search: req.query.get("search") || undefined,
        limit: wholeParam(req.query, "limit", 50, 1, MAX_RUNS_PAGE),
        beforeId: req.query.has("before") ? wholeParam(req.query, "before", 0, 1, Number.MAX_SAFE_INTEGER) : undefined,
      });
      return { body: page };
    },
  },
  {
    method: "GET",
    path: /^\/api\/runs\/(\d+)$/,
    name: "run",
    mutating: false,
    run: async (ctx, req) => {
      const run = await ctx.store.getRun(Number(req.params[0]));
      if (!run) throw new NotFoundError(`run ${req.params[0]}`);
      return { body: { ...run, jobs: run.jobs.map((j) => ({ ...j, href: jobHref(j.id) })) } };
    },
  },
  {
    method: "GET",
    path: /^\/api\/jobs\/(\d+)\/log$/,
    name: "job-log",
    mutating: false,
    run: async (ctx, req) => {
      const id = Number(req.params[0]);
      if (!(await ctx.store.get(id))) throw new NotFoundError(`job ${id}`);
      // Without the project's log folder (a server over a bare store) there is nothing to read.
      const body: JobLog = ctx.logsDir ? { id, available: true, ...(await readJobLog(ctx.logsDir, id)) } : { id, available: false, lines: [], files: 0, truncated: false };
      return { body };
    },
  },
  {
    method: "POST",
    path: /^\/api\/runs\/(\d+)\/rerun$/,
    name: "rerun",
    mutating: true,
    run: async (ctx, req) => {
      const body = parseBody(req.body);
      const from = body["from"];
      if (typeof from !== "string" || !QUEUE_NAME.test(from)) throw new BadInputError('the body needs "from": the queue (stage) to start the new run at');
      const job = await ctx.store.rerun(Number(req.params[0]), from, "payload" in body ? body["payload"] : undefined);
      return { status: 201, body: { id: job.id, rerunOf: job.source?.["rerunOf"] ?? null, job } };
    },
  },
];

function parseBody(text: string | undefined): Record<string, unknown> {
  if (!text) throw new BadInputError('send a JSON body: { "from": QUEUE, "payload"?: ... }');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new BadInputError("the body is not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new BadInputError("the body must be a JSON object");
  return v as Record<string, unknown>;
}

function wholeParam(q: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = q.get(name);
  if (raw === null || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new BadInputError(`${name} must be a whole number from ${min} to ${max}`);
  return n;
}
