/**
 * The process heartbeat: every HEARTBEAT_INTERVAL_MS (1 s), from the main event loop, the
 * worker says it is alive, which jobs it runs, and how late this beat was (event-loop lag).
 * Because it comes from the main loop, a blocked loop, a SIGSTOPped process or a deadlock
 * all make it stop, which is what the supervisor watches for.
 */
import { monotonicNow } from "../core/clock.js";
import { HEARTBEAT_INTERVAL_MS, type ActiveJobInfo, type WorkerMessage } from "./protocol.js";

/** Beats every `intervalMs` (default 1 s) through `send`; unref'd, it never keeps a process alive. */
export class ProcessHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  /** When the next beat is due, on the monotonic clock: lag is an interval. */
  private expectedAt = 0;

  constructor(
    private readonly send: (m: WorkerMessage) => void,
    private readonly active: () => ActiveJobInfo[],
    private readonly intervalMs = HEARTBEAT_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.expectedAt = monotonicNow() + this.intervalMs;
    this.timer = setInterval(() => this.beat(), this.intervalMs);
    // The heartbeat reports on the process; it must not be what keeps the process alive.
    this.timer.unref();
  }

  /** Sends one beat now (also used right after start so the supervisor need not wait). */
  beat(): void {
    const now = monotonicNow();
    const lagMs = Math.round(Math.max(0, now - this.expectedAt));
    this.expectedAt = now + this.intervalMs;
    this.send({ t: "hb", at: Date.now(), active: this.active(), lagMs, rssBytes: process.memoryUsage.rss() });
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
