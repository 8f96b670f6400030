/**
 * The handlers a Worker runs now: by job id, counted per queue, and a drain's wait until
 * none of them holds a lease any more (a timed-out handler included).
 */
import type { JobRun } from "./job-run.js";
import type { ActiveJobInfo } from "../child/protocol.js";

/** The running handlers of one Worker; see the file comment. */
export class RunTable {
  /** Running handlers by job id. */
  readonly byJob = new Map<number, JobRun>();
  private readonly perQueue = new Map<string, number>();
  private idleWaiter: (() => void) | undefined;

  constructor(queues: Iterable<string>) {
    for (const q of queues) this.perQueue.set(q, 0);
  }

  /** Handlers of `queue` running now. */
  count(queue: string): number {
    return this.perQueue.get(queue)!;
  }

  add(run: JobRun): void {
    this.byJob.set(run.jobId, run);
    this.perQueue.set(run.q.name, this.count(run.q.name) + 1);
  }

  remove(run: JobRun): void {
    this.byJob.delete(run.jobId);
    this.perQueue.set(run.q.name, this.count(run.q.name) - 1);
  }

  /** Jobs whose handler is running now. */
  activeJobs(): ActiveJobInfo[] {
    const out: ActiveJobInfo[] = [];
    for (const r of this.byJob.values()) out.push({ jobId: r.jobId, queue: r.q.name, attempt: r.job.attempt, startedAt: r.startedAt });
    return out;
  }

  /** Whether a running handler (a timed-out one included) still holds its lease. */
  ownsAny(): boolean {
    for (const r of this.byJob.values()) if (r.holdsLease) return true;
    return false;
  }

  /** Ends a `waitIdle` once no running handler holds a lease. */
  checkIdle(): void {
    if (this.idleWaiter && !this.ownsAny()) this.idleWaiter();
  }

  /** Waits until no running handler holds a lease, at most `timeoutMs`. */
  async waitIdle(timeoutMs: number): Promise<void> {
    if (!this.ownsAny() || timeoutMs <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idleWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.idleWaiter = undefined;
  }
}
