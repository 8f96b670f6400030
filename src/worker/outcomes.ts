/**
 * What becomes of a settled attempt: a completion (with next-stage jobs, after the
 * `maxRounds` check when a next stage has one), a failed attempt (retry or dead, decided by
 * failure.ts), or a dead job whose result could not be stored. The Worker owns the state;
 * this file owns the decisions and their store calls, reporting back through `OutcomeHost`.
 */
import type { Logger } from "pino";
import { monotonicNow } from "../core/clock.js";
import { LeaseLostError, rateLimitedMs, VigilError } from "../core/errors.js";
import type { LeaseRef, NextJob } from "../core/types.js";
import { groupOf } from "../store/flow.js";
import type { CompleteOutcome, Store } from "../store/store.js";
import { checkRounds } from "../pipeline/rounds.js";
import { nextJobs } from "../pipeline/route.js";
import { RETRY_BASE_MS, RETRY_MAX_MS, type Committer, type PendingCompletion } from "./committer.js";
import { decideFailure } from "./failure.js";
import type { JobRun } from "./job-run.js";
import type { QueueSettings, WorkerOptions } from "./options.js";
import type { WorkerEvents } from "./events.js";

/** What the outcome recording needs from the Worker that owns the runs. */
export interface OutcomeHost {
  readonly store: Store;
  readonly log: Logger;
  readonly queues: ReadonlyMap<string, QueueSettings>;
  readonly stages: WorkerOptions["stages"];
  readonly committer: () => Committer;
  /** Runs whose handler settled and whose fail or rounds check is still in flight. */
  readonly finishing: Set<JobRun>;
  readonly track: (p: Promise<unknown>) => void;
  /** Emits a Worker event (`completed`, `failed`, `store-refused`). */
  readonly emit: <K extends keyof WorkerEvents>(event: K, ...info: WorkerEvents[K]) => void;
  readonly listening: (event: keyof WorkerEvents) => boolean;
  /** Wakes the claim loop at a `monotonicNow()` time (ms), for a retry coming due. */
  readonly wakeAt: (at: number) => void;
  /** Claims nothing of `queue` until `at` (monotonic ms): a handler's ctx.rateLimited, before the store has it. */
  readonly holdQueue: (queue: string, at: number) => void;
  readonly leaseLost: (jobId: number, queue: string) => void;
  readonly storeError: (err: unknown, doing: string) => void;
}

/** Records settled attempts for a Worker; see the file comment. */
export class Outcomes {
  /** Queues whose slots freed in this turn of the event loop (see `slotFreed`). */
  private readonly freed = new Set<string>();

  constructor(private readonly host: OutcomeHost) {}

  /**
   * A job of `queue` completed or failed, and the store has it: when the queue has a
   * `limit` (its own or its groups'), the workers it held back, in every process and on
   * every host, are woken to claim again (`store.announce`, once per turn for all queues).
   */
  private slotFreed(queue: string): void {
    const h = this.host;
    const f = h.queues.get(queue)?.flow;
    if (!h.store.announce || !f || (f.limit === undefined && f.group?.limit === undefined)) return;
    if (this.freed.size === 0) {
      setImmediate(() => {
        const queues = [...this.freed];
        this.freed.clear();
        h.track(h.store.announce!(queues).catch((e) => h.storeError(e, "waking the workers a limit held back")));
      });
    }
    this.freed.add(queue);
  }

  /** The result becomes a completion, with next-stage jobs if the queue or result says so. */
  handOn(run: JobRun, result: unknown): void {
    const h = this.host;
    const next = nextJobs(result, run.q.next, (queue) => this.stageInfo(queue)?.attempts);
    const item: PendingCompletion = { lease: run.lease, queue: run.q.name, result, next: next.length ? next : undefined };
    if (!next.some((n) => this.stageInfo(n.queue)?.maxRounds !== undefined)) {
      h.committer().add(item);
      return;
    }
    h.finishing.add(run);
    h.track(this.checkThenHandOn(run, item, next).finally(() => h.finishing.delete(run)));
  }

  /**
   * The `maxRounds` check, then the completion (or the dead job it refuses). The check only
   * reads the store, so an error there is the store's, never the handler's: like a failed
   * group commit it is retried, 100 ms doubling to 5 s, while the lease is renewed (the run
   * is in `finishing`), and a stop waits for it as it waits for the group commit.
   */
  private async checkThenHandOn(run: JobRun, item: PendingCompletion, next: NextJob[]): Promise<void> {
    const h = this.host;
    for (let waitMs = 0; ; waitMs = Math.min(RETRY_MAX_MS, waitMs ? waitMs * 2 : RETRY_BASE_MS)) {
      if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      let reason: string | null;
      try {
        reason = await checkRounds(h.store, run.lease.job, next, (queue) => this.stageInfo(queue)?.maxRounds);
      } catch (err) {
        h.storeError(err, `checking maxRounds for job ${run.jobId} (retrying)`);
        continue;
      }
      if (reason === null) h.committer().add(item);
      else this.failRun(run, new RoundsExceededError(reason), "error", true);
      return;
    }
  }

  /** Records a failed attempt: retry at the decided time, or dead (always when `dead`). */
  failRun(run: JobRun, err: unknown, outcome: "error" | "timeout", dead = false): void {
    const held = outcome === "error" && !dead ? rateLimitedMs(err) : undefined;
    if (held !== undefined) return this.rateLimited(run, held, (err as { reason?: unknown }).reason);
    const h = this.host;
    const now = h.store.clock.now();
    const d = decideFailure(err, run.lease.job, run.q, now, outcome);
    const retryAt = dead ? undefined : d.retryAt;
    h.finishing.add(run);
    h.track(
      h.store
        .fail(run.lease, d.error, retryAt === undefined ? {} : { retryAt })
        .then(
          () => {
            const info = { jobId: run.jobId, queue: run.q.name, error: d.error, retryAt, dead: retryAt === undefined };
            h.log[info.dead ? "warn" : "info"](
              { jobId: run.jobId, queue: run.q.name, attempt: run.job.attempt, err, retryAt },
              info.dead ? "job is dead" : "attempt failed; will retry",
            );
            h.emit("failed", info);
            this.slotFreed(run.q.name);
            if (retryAt !== undefined) h.wakeAt(retryAt - now + monotonicNow());
          },
          (e) => this.storeRefused(run.lease, run.q.name, e, "recording a failed attempt"),
        )
        .finally(() => h.finishing.delete(run)),
    );
  }

  /**
   * A handler's `ctx.rateLimited(ms)`: the job goes back unrun (attempt not counted) and its
   * queue, or its group when the queue has `group`, is held for `ms` on every worker.
   */
  private rateLimited(run: JobRun, ms: number, reason: unknown): void {
    const h = this.host;
    const g = run.q.flow?.group;
    const opts: { group?: string; reason?: string } = typeof reason === "string" && reason ? { reason } : {};
    if (g) opts.group = groupOf(run.job.payload, g.by);
    // At once, not when the store has recorded the hold: this worker's freed slot must not
    // claim the queue's next job in between. (A group's hold is the store's alone.)
    else h.holdQueue(run.q.name, monotonicNow() + ms);
    h.finishing.add(run);
    h.track(
      h.store
        .rateLimited(run.lease, ms, opts)
        .then(
          (until) => {
            h.log.info({ jobId: run.jobId, queue: run.q.name, group: opts.group, holdMs: ms }, "rate limited by the handler; job given back");
            h.wakeAt(until - h.store.clock.now() + monotonicNow());
          },
          (e) => this.storeRefused(run.lease, run.q.name, e, "giving back a rate-limited job"),
        )
        .finally(() => h.finishing.delete(run)),
    );
  }

  /** A group commit's outcome for one completion. */
  committed(item: PendingCompletion, outcome: CompleteOutcome): void {
    const h = this.host;
    if (outcome.ok) {
      if (h.listening("completed")) {
        h.emit("completed", { jobId: item.lease.jobId, queue: item.queue, result: item.result, next: outcome.next });
      }
      this.slotFreed(item.queue);
      return;
    }
    const err = outcome.error;
    if (err instanceof LeaseLostError || (err as VigilError).code === "LEASE_LOST") {
      h.leaseLost(item.lease.jobId, item.queue);
      return;
    }
    // Refused by the store's engine itself (a constraint, a trigger), not by Vigil's checks:
    // SQLite completes each item of a batch on its own, so it says so here.
    if (!(err instanceof VigilError)) {
      this.refused(item, err);
      return;
    }
    this.unstorable(item, err);
  }

  /**
   * The store refused this one completion; the rest of its batch committed (isolate.ts).
   * Sent again it would be refused again, so its job is dead with the store's reason, and
   * the worker says so: an error line and a `store-refused` event (which `vigil worker`
   * hands its supervisor, which records an incident).
   */
  refused(item: PendingCompletion, err: unknown): void {
    const h = this.host;
    const reason = (err as Error)?.message ?? String(err);
    const code = (err as { code?: unknown })?.code;
    const info = { jobId: item.lease.jobId, queue: item.queue, error: reason, ...(typeof code === "string" ? { code } : {}) };
    h.log.error(info, "the store refused this job's completion; the job is dead, the rest of its batch was committed");
    // Said once the job is recorded dead, so whoever reads the incident finds it dead.
    this.unstorable(item, new Error(`the store refused it (${reason}); the other completions of its batch were committed`), () =>
      h.emit("store-refused", info),
    );
  }

  /**
   * The result cannot be stored (too large, not JSON, a next-stage job out of the store's
   * limits, refused by the store): that will not change on a retry, so the job is dead with
   * the reason.
   */
  private unstorable(item: PendingCompletion, err: Error, recorded?: () => void): void {
    const h = this.host;
    const q = h.queues.get(item.queue)!;
    h.track(
      h.store
        .fail(item.lease, { message: `the result could not be stored: ${err.message}`, outcome: "error" })
        .then(
          () => {
            recorded?.();
            h.emit("failed", { jobId: item.lease.jobId, queue: q.name, error: err, dead: true });
          },
          (e) => {
            recorded?.();
            this.storeRefused(item.lease, q.name, e, "recording an unstorable result");
          },
        ),
    );
  }

  /** A store call about a job failed: a lost lease is news of its own, the rest a store error. */
  storeRefused(lease: LeaseRef, queue: string, err: unknown, doing: string): void {
    const h = this.host;
    if (err instanceof LeaseLostError || (err as VigilError)?.code === "LEASE_LOST") h.leaseLost(lease.jobId, queue);
    else h.storeError(err, `${doing} for job ${lease.jobId} on ${queue}`);
  }

  private stageInfo(queue: string): { maxRounds?: number; attempts?: number } | undefined {
    const q = this.host.queues.get(queue);
    const s = this.host.stages?.[queue];
    if (!q && !s) return undefined;
    return { maxRounds: s?.maxRounds ?? q?.maxRounds, attempts: s?.attempts ?? q?.attempts };
  }
}

/** A hand-off refused by `maxRounds`; the job goes to `dead` with this message. */
export class RoundsExceededError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RoundsExceededError";
  }
}
