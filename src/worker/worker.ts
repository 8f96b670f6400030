/**
 * The worker runtime: claim → run the handler with an AbortSignal → complete or fail.
 *
 * - Claims in batches up to its free concurrency per queue plus a few jobs ahead
 *   (`prefetch`, lease-buffer.ts); woken by `store.subscribe()` when jobs arrive, by a
 *   timer when the next scheduled job comes due, and otherwise polls at `pollInterval`.
 * - Renews every lease it holds every lease/3 in one `renewMany`; a lost lease aborts that
 *   job's signal and discards its result.
 * - Group-commits completions (see committer.ts), with next-stage jobs in the same
 *   transaction (see src/pipeline/); failed attempts become retries or dead jobs in outcomes.ts.
 * - Times handlers out (failing the attempt once the handler settled), watches their
 *   heartbeats, and reports a handler that does not settle `killGrace` after its abort as
 *   wedged (timeouts.ts).
 * - Found frozen past `frozenAfter` by its own clock, aborts its jobs unrecorded and stops
 *   (freeze.ts).
 * - `stop()` drains: stops claiming, lets in-flight jobs finish up to `shutdownTimeout`,
 *   gives the rest back without counting an attempt, and commits every completion before
 *   it resolves.
 *
 * Events, typed in events.ts: `ready`, `completed`, `failed`, `lease-lost`, `timeout`,
 * `wedged`, `frozen`, `store-refused`, `store-error`, `draining`, `stopped`. The Worker
 * talks to no other process; `vigil worker` turns its events into IPC (supervisor-link.ts).
 */
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { pino, type Logger } from "pino";
import { intervalNow, monotonicNow } from "../core/clock.js";
import { LeaseLostError, VigilError } from "../core/errors.js";
import type { Lease } from "../core/types.js";
import type { Store } from "../store/store.js";
import { START_SLACK_MS } from "../store/flow.js";
import type { PeriodicTask } from "../core/periodic.js";
import { ClaimLoop, pollIntervalFor } from "./claim-loop.js";
import { Committer } from "./committer.js";
import { EarliestTimer } from "./earliest-timer.js";
import type { WorkerEvents } from "./events.js";
import { FreezeWatch, FrozenError, type FrozenInfo } from "./freeze.js";
import { JobRun, JobTimeoutError, ShutdownAbortError } from "./job-run.js";
import { GiveBacks } from "./give-backs.js";
import { LeaseBuffer, DEFAULT_PREFETCH, FLOW_PREFETCH_WAIT_MS } from "./lease-buffer.js";
import {
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  queueSettings,
  type QueueSettings,
  type WorkerOptions,
} from "./options.js";
import { Outcomes } from "./outcomes.js";
import type { ActiveJobInfo } from "../child/protocol.js";
import { startReaper } from "./reaper.js";
import { LeaseRenewals } from "./renewals.js";
import { RunTable } from "./run-table.js";
import { TimeoutWatch } from "./timeouts.js";

export { RoundsExceededError } from "./outcomes.js";

/** Runs handlers for named queues against a store; see the file comment and DESIGN.md. */
export class Worker extends EventEmitter<WorkerEvents> {
  readonly workerId: string;
  readonly log: Logger;
  private readonly queues = new Map<string, QueueSettings>();
  private readonly runs: RunTable;
  /** Runs whose handler settled and whose fail or rounds check is still in flight. */
  private readonly finishing = new Set<JobRun>();
  private readonly outstanding = new Set<Promise<unknown>>();
  private readonly committer: Committer;
  private readonly outcomes: Outcomes;
  private readonly timeouts: TimeoutWatch;
  private readonly buffer: LeaseBuffer;
  private readonly giveBacks: GiveBacks;
  private readonly renewals: LeaseRenewals;
  private readonly freeze: FreezeWatch | undefined;
  private state: "new" | "running" | "stopping" | "stopped" = "new";
  private readonly claims: ClaimLoop;
  private readonly deadlines: EarliestTimer;
  /** Claimed jobs wait in the buffer instead of starting (the committer sends its next transaction first). */
  private holding = false;
  private unsubscribe: (() => void) | undefined;
  private stopPromise: Promise<void> | undefined;
  /** Reaps expired leases while this worker holds the project's `reaper` lock (reaper.ts). */
  private reaper: PeriodicTask<number> | undefined;

  constructor(
    readonly store: Store,
    private readonly opts: WorkerOptions,
  ) {
    super();
    this.workerId = opts.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
    // A store whose round trip is the cost (PostgreSQL) asks for larger claims; the lease
    // buffer still takes that many only for near-instant handlers (PREFETCH_MAX_WAIT_MS).
    const defaultPrefetch = Math.max(DEFAULT_PREFETCH, store.caps.claimBatchHint ?? 0);
    for (const [name, q] of Object.entries(opts.queues)) {
      this.queues.set(name, queueSettings(name, q, defaultPrefetch));
    }
    this.runs = new RunTable(this.queues.keys());
    if (this.queues.size === 0) throw new VigilError("BAD_INPUT", "a worker needs at least one queue");
    this.log =
      opts.logger ?? pino({ level: process.env.VIGIL_LOG_LEVEL ?? "info", base: { pid: process.pid } });
    this.log = this.log.child({ workerId: this.workerId });
    this.buffer = new LeaseBuffer(this.queues.keys());
    this.giveBacks = new GiveBacks(store, {
      track: (p) => this.track(p),
      stale: (jobIds) => this.log.info({ jobIds }, "jobs given back were already taken over or cancelled"),
      onError: (err) => this.storeError(err, "releasing jobs"),
    });
    this.outcomes = new Outcomes({
      store,
      log: this.log,
      queues: this.queues,
      stages: opts.stages,
      committer: () => this.committer,
      finishing: this.finishing,
      track: (p) => this.track(p),
      emit: (event, ...info) => this.fire(event, ...info),
      listening: (event) => this.listenerCount(event) > 0,
      wakeAt: (at) => this.claims.wakeAt(at),
      holdQueue: (queue, at) => this.claims.holdLocally(queue, at),
      leaseLost: (jobId, queue) => this.onLeaseLost(jobId, queue),
      storeError: (err, doing) => this.storeError(err, doing),
    });
    this.timeouts = new TimeoutWatch({
      running: this.runs.byJob,
      log: this.log,
      emit: (event, ...info) => this.fire(event, ...info),
      checkIdle: () => this.runs.checkIdle(),
      onWedged: (info) => this.opts.onWedged?.(info),
    });
    this.committer = new Committer(store, {
      onOutcome: (item, outcome) => this.outcomes.committed(item, outcome),
      onError: (err, n) => this.storeError(err, `committing ${n} completions (retrying)`),
      onSplit: (err, n) =>
        this.log.warn({ err, completions: n }, "the store refused a batch; committing it in parts"),
      onRefused: (item, err) => this.outcomes.refused(item, err),
      claim: (max) => this.claims.borrow(max),
      holdStarts: (deliver) => {
        this.holding = true;
        try {
          deliver();
        } finally {
          this.holding = false;
        }
      },
      startHeld: () => {
        for (const q of this.queues.values()) this.runBuffered(q);
      },
      afterFlush: () => this.claims.request(),
    });
    this.renewals = new LeaseRenewals({
      store,
      queues: this.queues,
      running: this.runs.byJob,
      finishing: this.finishing,
      committer: () => this.committer,
      buffer: this.buffer,
      track: (p) => this.track(p),
      lost: (jobId) => this.onLeaseLost(jobId, undefined, true),
      storeError: (err, doing) => this.storeError(err, doing),
    });
    this.claims = new ClaimLoop(store, this.workerId, this.queues, {
      free: (q) => {
        const held = this.buffer.size(q.name);
        const room = q.flow ? this.buffer.room(q.name, q.prefetch, FLOW_PREFETCH_WAIT_MS, q.concurrency) : this.buffer.room(q.name, q.prefetch);
        return Math.max(0, q.concurrency - this.runs.count(q.name) - held) + room;
      },
      open: () => this.state === "running",
      deferToCommit: () => this.store.completeAndClaim !== undefined && this.committer.size > 0,
      start: (lease) => this.startJob(lease),
      onError: (err, doing) => this.storeError(err, doing),
      track: (p) => this.track(p),
    });
    this.deadlines = new EarliestTimer((now) => this.timeouts.sweep(now));
    if (opts.frozenAfter) this.freeze = new FreezeWatch(opts.frozenAfter, (info) => this.frozen(info));
  }

  /** Starts claiming. Returns `this` so `new Worker(...).start()` keeps the worker. */
  start(): this {
    if (this.state !== "new") return this;
    this.state = "running";
    const settings = [...this.queues.values()];
    const minLease = Math.min(...settings.map((q) => q.lease));
    this.unsubscribe = this.store.subscribe((queue) => this.claims.wake(queue));
    this.renewals.start(minLease);
    this.freeze?.start();
    this.emit("ready", { workerId: this.workerId, pid: process.pid, queues: [...this.queues.keys()] });
    this.reaper = startReaper(this.store, {
      owner: this.workerId,
      queues: settings,
      every: this.opts.reapInterval,
      log: this.log,
      onError: (err) => this.storeError(err, "reaping expired leases"),
    });
    this.claims.startPolling(pollIntervalFor(this.store, this.opts.pollInterval));
    this.log.info({ queues: [...this.queues.keys()] }, "worker started");
    return this;
  }

  /** Jobs whose handler is running now. */
  activeJobs(): ActiveJobInfo[] {
    return this.runs.activeJobs();
  }

  /**
   * Graceful stop: no more claims; in-flight handlers get `timeoutMs` (default
   * `shutdownTimeout`, 10 s) to finish; the rest are aborted and given back without
   * counting an attempt; every completion is committed before this resolves. The store is
   * left open (the caller owns it).
   */
  stop(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.stopPromise ??= this.drain(opts.timeoutMs ?? this.opts.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT_MS);
    return this.stopPromise;
  }

  // --- running ------------------------------------------------------------------------

  /** A claimed job: runs it if a slot is free, else holds it in the claim-ahead buffer. */
  private startJob(lease: Lease): void {
    const q = this.queues.get(lease.job.queue);
    if (!q || this.state !== "running") {
      // Claimed as a stop began (or a queue this worker does not run): give it back unrun.
      this.giveBack(lease);
      return;
    }
    if (!this.holding && this.runs.count(q.name) < q.concurrency && this.buffer.size(q.name) === 0) this.runJob(lease, q);
    // The lease's deadline is by the store's clock, read before the claim was sent.
    else this.buffer.add(lease, intervalNow(this.store.clock) + lease.leaseUntil - this.store.clock.now());
  }

  /** Gives a job back unrun: `waiting` again, the attempt not counted (batched, give-backs.ts). */
  private giveBack(lease: Lease): void {
    this.giveBacks.add(lease);
  }

  /**
   * Fills free slots of `q` from the buffer. A buffered job with less than a third of its
   * lease left (renewals, every third, have been failing) is given back, not started: it
   * could be taken over mid-run.
   */
  private runBuffered(q: QueueSettings): void {
    while (this.state === "running" && this.runs.count(q.name) < q.concurrency && this.buffer.size(q.name) > 0) {
      const lease = this.buffer.take(q.name, intervalNow(this.store.clock), q.lease / 3, (l) => this.giveBack(l));
      if (!lease) return;
      this.runJob(lease, q);
    }
  }

  private runJob(lease: Lease, q: QueueSettings): void {
    if (this.freeze?.check()) return this.giveBack(lease); // frozen: stopping, start nothing
    if (q.flow && (q.flow.rate || q.flow.group?.rate) && lease.job.startedAt !== null) {
      // Its start was counted at the claim; starting it later could crowd a rate window.
      const late = this.store.clock.now() - lease.job.startedAt;
      if (late > START_SLACK_MS) {
        this.log.warn({ jobId: lease.jobId, queue: q.name, lateMs: late }, "giving back a rate-limited job that could not start in time");
        this.giveBack(lease);
        return;
      }
    }
    const run = new JobRun(lease, q, this.log, Date.now(), {
      onHeartbeatTimeout: (r) =>
        this.timeouts.timedOut(r, new JobTimeoutError(`no heartbeat for ${r.q.heartbeatTimeout} ms`, "heartbeat")),
    });
    this.runs.add(run);
    this.deadlines.arm(run.deadline);
    let result: unknown;
    try {
      result = q.handler(run.job, run.ctx);
    } catch (err) {
      result = Promise.reject(err);
    }
    Promise.resolve(result).then(
      (value) => this.onSettled(run, true, value),
      (err) => this.onSettled(run, false, err),
    );
  }

  private onSettled(run: JobRun, ok: boolean, value: unknown): void {
    if (run.settled) return;
    this.freeze?.check(); // found frozen: every run is gone, nothing below records this one
    run.settled = true;
    run.clearTimers();
    this.runs.remove(run);
    this.buffer.ran(run.q.name, monotonicNow() - run.startedMono);
    // Handlers turned slow: jobs held ahead would wait a whole run each; let others have them.
    if (!this.buffer.quick(run.q.name)) for (const l of this.buffer.takeAll(run.q.name)) this.giveBack(l);
    this.runs.checkIdle();
    if (!run.gone) {
      if (ok) this.outcomes.handOn(run, value);
      else this.outcomes.failRun(run, value, "error");
    } else if (run.timeoutError && run.holdsLease) {
      // Only now that the handler has settled may its retry be scheduled (timeouts.ts).
      this.outcomes.failRun(run, run.timeoutError, "timeout");
    }
    // After the completion is queued, so its commit (and the claim riding on it) goes first.
    this.runBuffered(run.q);
    this.claims.freed(run.q.name);
    this.claims.request();
  }

  // --- leases and completions -------------------------------------------------------

  /**
   * A lease is no longer ours. From a renewal, only a running handler is news: a job whose
   * completion or failure is in flight may simply have finished meanwhile (on a store whose
   * transactions interleave), and its own outcome says if it was really lost.
   */
  private onLeaseLost(jobId: number, queueName?: string, fromRenewal = false): void {
    if (fromRenewal && this.buffer.drop(jobId)) {
      // Cancelled or taken over before it ever started: nothing ran, nothing to discard.
      this.log.info({ jobId }, "a job leased ahead was cancelled or taken over before it started");
      return;
    }
    const run = this.runs.byJob.get(jobId);
    if (run) run.holdsLease = false;
    if (fromRenewal && (!run || run.gone)) return;
    if (run && !run.gone) {
      run.gone = true;
      run.abort(new LeaseLostError(jobId));
      // Its signal is aborted; a handler that ignores that is as wedged as a timed-out one.
      this.timeouts.armWedge(run, "its lease was lost");
      this.runs.checkIdle();
    }
    const queue = run?.q.name ?? queueName ?? "?";
    this.log.warn({ jobId, queue }, "lease lost: another worker has the job or it was cancelled; result discarded");
    this.emit("lease-lost", { jobId, queue });
  }

  /** The process was frozen past `frozenAfter`: its jobs may run elsewhere; none is recorded. */
  private frozen(info: FrozenInfo): void {
    this.log.error({ ...info, jobs: this.runs.byJob.size }, "this process was frozen; its jobs are aborted, not completed");
    for (const run of this.runs.byJob.values()) {
      run.gone = true;
      run.holdsLease = false;
      run.abort(new FrozenError(info.gapMs));
    }
    this.emit("frozen", info);
    this.opts.onFrozen?.(info);
    void this.stop({ timeoutMs: 0 });
  }

  private storeError(err: unknown, doing: string): void {
    this.log.error({ err }, `store error while ${doing}`);
    this.emit("store-error", err);
  }

  // --- stopping -----------------------------------------------------------------------

  private async drain(timeoutMs: number): Promise<void> {
    if (this.state === "new") {
      this.state = "stopped";
      return;
    }
    this.state = "stopping";
    this.emit("draining");
    this.log.info({ running: this.runs.byJob.size, timeoutMs }, "draining");
    this.claims.stop();
    if (this.reaper) this.track(this.reaper.stop());
    this.unsubscribe?.();
    // Jobs leased ahead never started: back to their queues, no attempt counted.
    for (const lease of this.buffer.takeAll()) this.giveBack(lease);

    await this.runs.waitIdle(timeoutMs);
    for (const run of this.runs.byJob.values()) {
      if (run.gone) continue;
      run.gone = true;
      run.holdsLease = false;
      run.abort(new ShutdownAbortError());
      this.track(this.store.release(run.lease).catch((e) => this.outcomes.storeRefused(run.lease, run.q.name, e, "giving back a job")));
    }
    // Completions first, then whatever their outcomes started (fails), until all is quiet.
    while (this.outstanding.size > 0 || this.committer.size > 0) {
      await Promise.allSettled([...this.outstanding]);
      await this.committer.drain();
    }
    this.renewals.stop();
    this.freeze?.stop();
    this.deadlines.cancel();
    this.state = "stopped";
    this.log.info("worker stopped");
    this.emit("stopped");
  }

  /** `emit` for a host that names its event by a type parameter (outcomes, timeouts). */
  private fire<K extends keyof WorkerEvents>(event: K, ...info: WorkerEvents[K]): void {
    (this.emit as (event: string, ...args: unknown[]) => boolean)(event, ...info);
  }

  private track<T>(p: Promise<T>): void {
    this.outstanding.add(p);
    void p.finally(() => this.outstanding.delete(p)).catch(() => {});
  }
}
