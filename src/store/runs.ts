/**
 * Runs: one item's whole way through the pipeline — its root job and every job handed on
 * from it. The shapes here are the contract of `vigil runs ... --json` and `/api/runs`;
 * the logic is shared by both stores, which supply only the few reads below (`RunReads`).
 */
import { BadInputError, NotFoundError } from "../core/errors.js";
import { preview } from "../core/preview.js";
import { FINAL_STATES, type AttemptRecord, type Job, type JobSource, type JobState } from "../core/types.js";
import type { Store } from "./store.js";

/** A run's state: `running` while any of its jobs is unfinished, else how its last job ended. */
export type RunState = "running" | "completed" | "dead" | "cancelled";
export const RUN_STATES: readonly RunState[] = ["running", "completed", "dead", "cancelled"];

export interface RunFilter {
  state?: RunState;
  /** Only runs with a job on this queue. */
  queue?: string;
  /** A key prefix (through an index), else text in a root's key or payload (a bounded scan). */
  search?: string;
  /** Runs per page (default 50, at most `MAX_RUNS_PAGE`). */
  limit?: number;
  /** Only runs whose root id is below this (the previous page's `nextBefore`). */
  beforeId?: number;
}

/** One job of a run, as a list shows it. */
export interface RunStage {
  id: number;
  queue: string;
  state: JobState;
  attempt: number;
}

export interface RunSummary {
  /** The root job's id. */
  id: number;
  key: string | null;
  /** The root job's queue (the first stage). */
  queue: string;
  state: RunState;
  createdAt: number;
  /** When the last job finished; null while running. */
  finishedAt: number | null;
  /** Jobs in the run. */
  jobCount: number;
  /** The first `MAX_STAGES_SHOWN` jobs in id order. */
  stages: RunStage[];
  /** The root id of the run this one re-ran, if it is a rerun. */
  rerunOf: number | null;
}

export interface RunPage {
  runs: RunSummary[];
  /** Pass as `beforeId` for the next page; null when there is nothing older. */
  nextBefore: number | null;
  /** How `search` matched: `key` (key prefix, indexed) or `text` (bounded scan); null without search. */
  searchedBy: "key" | "text" | null;
  /** Root jobs this page looked at. */
  scanned: number;
}

/** One job of a run, as `runs show` shows it; payload and result cut to a preview. */
export interface RunJob {
  id: number;
  queue: string;
  state: JobState;
  parentId: number | null;
  attempt: number;
  maxAttempts: number;
  /**
   * The worker holding the job while it is active, or the one that completed it; null
   * otherwise (the workers of failed and stalled attempts are in `history`).
   */
  workerId: string | null;
  /** The host part of the worker id. */
  host: string | null;
  createdAt: number;
  runAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** started − max(created, runAt): how long it waited for a worker (last attempt). */
  queueDelayMs: number | null;
  /** finished − started (last attempt). */
  runMs: number | null;
  error: string | null;
  payload: unknown;
  payloadTruncated: boolean;
  result: unknown;
  resultTruncated: boolean;
  history: AttemptRecord[];
}

export interface RunDetail extends Omit<RunSummary, "stages"> {
  jobs: RunJob[];
  /** True when the run has more than `MAX_RUN_JOBS` jobs and only the first are listed. */
  jobsTruncated: boolean;
}

export const MAX_RUNS_PAGE = 500;
/** `jobsAhead` counts this far at most: past it, "10000+ ahead" says enough. */
export const JOBS_AHEAD_CAP = 10_000;
/** Root jobs one filtered page looks at before it answers with what it found (bounded work). */
export const RUN_SCAN_WINDOW = 5000;
/** Root jobs one text search reads (newest first) per page: the payload search is a scan. */
export const RUN_SEARCH_WINDOW = 5000;
export const MAX_STAGES_SHOWN = 50;
export const MAX_RUN_JOBS = 1000;
/** Root jobs read per round while a filter drops some. */
const SCAN_BATCH = 500;

/** A member row as the stores return it. */
export interface MemberRow extends RunStage {
  rootId: number;
  finishedAt: number | null;
}

/** A root job as run lists read it: no payload or result. */
export interface RootRow {
  id: number;
  queue: string;
  state: JobState;
  key: string | null;
  attempt: number;
  createdAt: number;
  finishedAt: number | null;
  source: JobSource | null;
}

/** What a store supplies; everything newest first. */
export interface RunReads {
  /** Root jobs with id below `beforeId`, at most `limit`. */
  roots(beforeId: number | null, limit: number): Promise<RootRow[]>;
  /** Root jobs whose key starts with `prefix`, id below `beforeId` (an index range). */
  rootsByKey(prefix: string, beforeId: number | null, limit: number): Promise<RootRow[]>;
  /**
   * Of the newest `window` root jobs below `beforeId`, those whose key or payload text
   * contains `text`; `floor` is the smallest root id in the window (null: window not full).
   */
  rootsByText(text: string, beforeId: number | null, window: number): Promise<{ jobs: RootRow[]; floor: number | null }>;
  /** The non-root jobs of these runs (any order). */
  members(rootIds: number[]): Promise<MemberRow[]>;
}

export async function listRuns(reads: RunReads, filter: RunFilter = {}): Promise<RunPage> {
  const limit = Math.min(Math.max(1, Math.trunc(filter.limit ?? 50)), MAX_RUNS_PAGE);
  const keep = (r: RunSummary) =>
    (!filter.state || r.state === filter.state) && (!filter.queue || r.queue === filter.queue || r.stages.some((s) => s.queue === filter.queue));
  const filtered = Boolean(filter.state || filter.queue);
  const search = filter.search?.trim() || undefined;
  let before = filter.beforeId ?? null;
  if (search) {
    const byKey = await reads.rootsByKey(search, before, limit + 1);
    if (byKey.length > 0 && !filtered) {
      const page = byKey.slice(0, limit);
      const runs = await summarize(reads, page);
      return { runs, nextBefore: byKey.length > limit ? page[page.length - 1]!.id : null, searchedBy: "key", scanned: byKey.length };
    }
    const { jobs, floor } = await reads.rootsByText(search, before, RUN_SEARCH_WINDOW);
    const runs = (await summarize(reads, jobs)).filter(keep);
    if (runs.length > limit) return { runs: runs.slice(0, limit), nextBefore: runs[limit - 1]!.id, searchedBy: "text", scanned: RUN_SEARCH_WINDOW };
    return { runs, nextBefore: floor, searchedBy: "text", scanned: floor === null ? jobs.length : RUN_SEARCH_WINDOW };
  }
  const out: RunSummary[] = [];
  let scanned = 0;
  for (;;) {
    const batch = filtered ? SCAN_BATCH : limit + 1;
    const roots = await reads.roots(before, batch);
    scanned += roots.length;
    const runs = (await summarize(reads, roots)).filter(keep);
    for (const r of runs) {
      if (out.length === limit) return { runs: out, nextBefore: out[limit - 1]!.id, searchedBy: null, scanned };
      out.push(r);
    }
    if (roots.length < batch) return { runs: out, nextBefore: null, searchedBy: null, scanned };
    before = roots[roots.length - 1]!.id;
    if (scanned >= RUN_SCAN_WINDOW) return { runs: out, nextBefore: before, searchedBy: null, scanned };
  }
}

async function summarize(reads: RunReads, roots: RootRow[]): Promise<RunSummary[]> {
  if (roots.length === 0) return [];
  const members = await reads.members(roots.map((r) => r.id));
  const byRoot = new Map<number, MemberRow[]>();
  for (const m of members) {
    let list = byRoot.get(m.rootId);
    if (!list) byRoot.set(m.rootId, (list = []));
    list.push(m);
  }
  return roots.map((root) => {
    const rest = (byRoot.get(root.id) ?? []).sort((a, b) => a.id - b.id);
    const all = [{ id: root.id, queue: root.queue, state: root.state, attempt: root.attempt, finishedAt: root.finishedAt }, ...rest];
    return {
      ...runHead(root, all),
      stages: all.slice(0, MAX_STAGES_SHOWN).map((j) => ({ id: j.id, queue: j.queue, state: j.state, attempt: j.attempt })),
    };
  });
}

/** What a run's list row and its detail share: its root, its state, how many jobs it has. */
function runHead(
  root: { id: number; key: string | null; queue: string; createdAt: number; source: JobSource | null },
  all: { id: number; state: JobState; finishedAt: number | null }[],
) {
  return { id: root.id, key: root.key, queue: root.queue, ...runState(all), createdAt: root.createdAt, jobCount: all.length, rerunOf: rerunOf(root) };
}

/** `running` if any job is unfinished; else the state of the newest job, and the last finish. */
export function runState(jobs: { id: number; state: JobState; finishedAt: number | null }[]): { state: RunState; finishedAt: number | null } {
  if (jobs.some((j) => !FINAL_STATES.includes(j.state))) return { state: "running", finishedAt: null };
  const last = jobs.reduce((a, b) => (b.id > a.id ? b : a));
  const finishedAt = Math.max(...jobs.map((j) => j.finishedAt ?? 0)) || null;
  return { state: last.state as RunState, finishedAt };
}

function rerunOf(root: { source: JobSource | null }): number | null {
  const v = root.source?.trigger === RERUN_SOURCE ? root.source["rerunOf"] : undefined;
  return typeof v === "number" ? v : null;
}

/** `source.trigger` of a rerun's root job; `source.rerunOf` and `source.fromJob` say what it re-ran. */
export const RERUN_SOURCE = "rerun";

/** The run a job belongs to (any job id of it), its jobs in id order. */
export async function getRun(store: Store, id: number): Promise<RunDetail | null> {
  const job = await store.get(id);
  if (!job) return null;
  const root = job.rootId ? await store.get(job.rootId) : job;
  if (!root) return null;
  const rest = (await store.list({ rootId: root.id, limit: MAX_RUN_JOBS + 1 })).filter((j) => j.id !== root.id);
  const jobsTruncated = rest.length > MAX_RUN_JOBS - 1;
  const all = [root, ...rest.sort((a, b) => a.id - b.id).slice(0, MAX_RUN_JOBS - 1)];
  return {
    ...runHead(root, all),
    jobsTruncated,
    jobs: all.map(runJob),
  };
}

export function runJob(j: Job): RunJob {
  const p = preview(j.payload);
  const r = preview(j.result);
  const waitedFrom = Math.max(j.createdAt, j.runAt);
  return {
    id: j.id,
    queue: j.queue,
    state: j.state,
    parentId: j.parentId,
    attempt: j.attempt,
    maxAttempts: j.maxAttempts,
    workerId: j.workerId,
    host: j.workerId ? j.workerId.split(":")[0]! : null,
    createdAt: j.createdAt,
    runAt: j.runAt,
    startedAt: j.startedAt,
    finishedAt: j.finishedAt,
    queueDelayMs: j.startedAt !== null ? Math.max(0, j.startedAt - waitedFrom) : null,
    runMs: j.startedAt !== null && j.finishedAt !== null ? Math.max(0, j.finishedAt - j.startedAt) : null,
    error: j.error,
    payload: p.value,
    payloadTruncated: p.truncated,
    result: r.value,
    resultTruncated: r.truncated,
    history: j.history,
  };
}

/**
 * Starts a new run at `fromQueue` with the input that stage's job had in the run of `id`
 * (its first job on that queue), or with `payload` when given. The new root job's
 * `source` is `{ trigger: "rerun", rerunOf, fromJob }`.
 */
export async function rerun(store: Store, id: number, fromQueue: string, payload?: unknown): Promise<Job> {
  const run = await getRun(store, id);
  if (!run) throw new NotFoundError(`run ${id}`);
  const from = run.jobs.find((j) => j.queue === fromQueue);
  if (!from) {
    const queues = [...new Set(run.jobs.map((j) => j.queue))];
    throw new BadInputError(`run ${run.id} has no job on queue "${fromQueue}"; its stages are ${queues.join(", ")}`);
  }
  const original = payload === undefined ? await store.get(from.id) : null;
  if (payload === undefined && !original) throw new NotFoundError(`job ${from.id}`);
  const { job } = await store.enqueue(fromQueue, payload === undefined ? original!.payload : payload, {
    maxAttempts: from.maxAttempts,
    source: { trigger: RERUN_SOURCE, rerunOf: run.id, fromJob: from.id },
  });
  return job;
}
