/**
 * Whether one supervised process is alive, judged on the monotonic clock from what shows
 * it: IPC heartbeats (workers, the triggers process), an HTTP probe, a status file's
 * writes, or for a command watched by nothing but its exit, staying up SETTLE_MS.
 */
import { monotonicNow } from "../core/clock.js";
import { probeHttp, statusFileMtime } from "./liveness.js";
import type { SlotSpec } from "./slot-types.js";

/**
 * A process that has not sent its first heartbeat this long after spawning is stalled.
 * Node plus a store plus TypeScript handlers can take seconds to load on a busy 2-core
 * machine; a shorter grace would kill healthy workers at start, a longer one leaves a
 * process hung at start unnoticed longer.
 */
const START_GRACE_EXTRA_MS = 15_000;
/** A command watched only by its exit counts as running once it stayed up this long. */
const SETTLE_MS = 1000;
/** HTTP probes run this often: one cheap local request per second per service. */
const PROBE_EVERY_MS = 1000;

/** What a look found: the process is `stalled` (with why), `settled` (watched by its exit only), or nothing new. */
export type Verdict = { stalled: string } | "settled" | null;

/** One slot's liveness; see the file comment. */
export class SlotLiveness {
  /** The last heartbeat, probe success or status-file write seen (monotonic ms). */
  lastBeatAt: number | null = null;
  /**
   * The start (for the settle time), and the start of the first-beat grace, which
   * `discount()` moves on over time the supervisor itself did not run.
   */
  private startedMono = 0;
  private graceFrom = 0;
  /** The status file's mtime when last looked at: a write is seen as a change of it. */
  private statusMtime: number | null = null;
  private probing = false;
  private lastProbeAt = -Infinity;
  private lastProbeError: string | null = null;

  constructor(
    private readonly spec: SlotSpec,
    private readonly stallAfterMs: number,
    /** A sign of life at monotonic time `at`. */
    private readonly onBeat: (at: number) => void,
  ) {}

  /** A new process, started at monotonic `now`. */
  reset(now: number): void {
    // A status file the previous process left does not count as this one's first write.
    this.statusMtime = this.spec.statusFile ? statusFileMtime(this.spec.statusFile) : null;
    this.startedMono = this.graceFrom = now;
    this.lastBeatAt = null;
    this.lastProbeError = null;
  }

  /**
   * Looks at the status file, starts a due probe, and judges at monotonic `now`.
   * `current` says whether a probe's answer still concerns the process being watched.
   */
  look(now: number, current: () => boolean): Verdict {
    if (this.spec.statusFile) {
      // A write is a change of the mtime, timed when seen: the mtime is wall-clock time,
      // and against now a step forward would make a fresh write look old.
      const m = statusFileMtime(this.spec.statusFile);
      if (m !== null && m !== this.statusMtime) {
        this.statusMtime = m;
        this.beat(now);
      }
    }
    if (this.spec.probe && !this.probing && now - this.lastProbeAt >= PROBE_EVERY_MS) this.runProbe(now, current);
    if (!(this.spec.ipc || this.spec.probe || this.spec.statusFile)) return now - this.startedMono >= SETTLE_MS ? "settled" : null;
    if (this.lastBeatAt === null) {
      if (now - this.graceFrom > this.stallAfterMs + START_GRACE_EXTRA_MS) return { stalled: `no ${this.word()} since it started ${Math.round((now - this.startedMono) / 1000)} s ago` };
    } else if (now - this.lastBeatAt > this.stallAfterMs) {
      const age = Math.round(now - this.lastBeatAt);
      return { stalled: this.spec.probe ? `probe failing for ${age} ms (${this.lastProbeError ?? "no answer"})` : `no ${this.word()} for ${age} ms` };
    }
    return null;
  }

  /** A sign of life at monotonic time `at`. */
  beat(at: number): void {
    this.lastBeatAt = at;
    this.onBeat(at);
  }

  /** The supervisor did not run for `ms`: that stretch is not held against the process. Never past `now`. */
  discount(ms: number, now: number): void {
    this.graceFrom = Math.min(this.graceFrom + ms, now);
    if (this.lastBeatAt !== null) this.lastBeatAt = Math.min(this.lastBeatAt + ms, now);
  }

  private word(): string {
    return this.spec.ipc ? "heartbeat" : this.spec.probe ? "successful probe" : "status-file update";
  }

  private runProbe(now: number, current: () => boolean): void {
    this.probing = true;
    this.lastProbeAt = now;
    void probeHttp(this.spec.probe!).then((r) => {
      this.probing = false;
      if (!current()) return;
      if (r.ok) this.beat(monotonicNow());
      else this.lastProbeError = r.error ?? "failed";
    });
  }
}
