/**
 * The timeout and wedge watch over running handlers: a handler past its `timeout` (or
 * silent past its `heartbeatTimeout`) is aborted, and its attempt is failed as a timeout
 * once the handler has settled (Worker.onSettled), not before: until then the handler may
 * still be doing its work, and a retry must not start beside it. Its lease is renewed
 * meanwhile. A handler that does not settle `killGrace` after any abort (timeout, lost
 * lease) is reported as wedged, which ends a worker process; its timed-out job is freed
 * once that process is gone (the supervisor's release, or the lease running out).
 */
import type { Logger } from "pino";
import { JobTimeoutError, type JobRun } from "./job-run.js";
import type { WorkerEvents } from "./events.js";
import type { WedgedInfo } from "./options.js";

/** What the watch needs from the Worker that owns the runs. */
export interface TimeoutHost {
  readonly running: ReadonlyMap<number, JobRun>;
  readonly log: Logger;
  /** Emits a Worker event (`timeout`, `wedged`); `vigil worker` tells its supervisor. */
  readonly emit: <K extends keyof WorkerEvents>(event: K, ...info: WorkerEvents[K]) => void;
  /** Lets a drain that waits for owned runs see that one is no longer ours. */
  readonly checkIdle: () => void;
  readonly onWedged?: (info: WedgedInfo) => void;
}

/** Times handlers out and reports wedged ones; see the file comment. */
export class TimeoutWatch {
  constructor(private readonly host: TimeoutHost) {}

  /** Times out every handler past its deadline; returns the next deadline (monotonic ms). */
  sweep(now: number): number {
    let next = Infinity;
    for (const run of this.host.running.values()) {
      if (run.timedOut) continue;
      if (run.deadline <= now) {
        this.timedOut(run, new JobTimeoutError(`timed out after ${run.q.timeout} ms`, "timeout"));
      } else if (run.deadline < next) {
        next = run.deadline;
      }
    }
    return next;
  }

  /** Aborts a handler that ran too long or stopped heartbeating; its attempt fails once it settles. */
  timedOut(run: JobRun, reason: JobTimeoutError): void {
    const h = this.host;
    if (run.settled || run.wedged || run.timedOut) return;
    run.timedOut = true;
    run.stopHeartbeatWatch();
    const wasOurs = !run.gone;
    run.gone = true;
    run.abort(reason);
    if (wasOurs) {
      const timeoutMs = reason.kind === "timeout" ? run.q.timeout : (run.q.heartbeatTimeout ?? 0);
      h.emit("timeout", { jobId: run.jobId, queue: run.q.name, timeoutMs });
      h.log.warn({ jobId: run.jobId, queue: run.q.name }, reason.message);
      run.timeoutError = reason;
    }
    this.armWedge(run, reason.message);
    h.checkIdle();
  }

  /**
   * After an abort, gives the handler `killGrace` (per queue, default in options.ts) to
   * settle; a handler that ignores its aborted signal past that is wedged. Armed once.
   */
  armWedge(run: JobRun, why: string): void {
    run.graceTimer ??= setTimeout(() => this.wedged(run, why), run.q.killGrace);
  }

  private wedged(run: JobRun, why: string): void {
    const h = this.host;
    if (run.settled) return;
    run.wedged = true;
    const info: WedgedInfo = {
      jobId: run.jobId,
      queue: run.q.name,
      reason: `${why}; the handler did not settle within ${run.q.killGrace} ms of its abort`,
    };
    h.log.error(info, "handler is wedged");
    h.emit("wedged", info);
    h.onWedged?.(info);
  }
}
