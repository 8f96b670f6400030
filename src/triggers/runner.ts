/**
 * Runs the triggers of a config: one poll loop per trigger, each under a store leader
 * lock (`trigger:NAME`) so two processes, on one host or several, never poll one trigger
 * at a time. Every batch moves jobs and cursor in one `commitTrigger` transaction, fenced
 * by the cursor's version: even two processes that both believe they lead (a paused
 * leader waking up) cannot enqueue a record twice, because the second commit is refused.
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { intervalNow, systemClock, type Clock } from "../core/clock.js";
import { VigilError, describeError } from "../core/errors.js";
import type { TriggerConfig } from "../config/schema.js";
import type { TriggerStatus } from "../core/status.js";
import type { Store, TriggerCursor } from "../store/store.js";
import { DEFAULT_MAX_PAYLOAD } from "../store/store.js";
import { parseSchedule } from "../core/schedule.js";
import { fileSource } from "./file.js";
import { ScheduleSource, scheduleEvery } from "./schedule.js";
import { TailSource } from "./tail.js";
import type { PollContext, TriggerBatch, TriggerCursorState, TriggerSource } from "./types.js";
import { watchSource } from "./watch.js";

export interface TriggerRunnerOptions {
  /** The config's `triggers` (paths absolute, durations in ms, as `loadConfig` returns them). */
  triggers: Record<string, TriggerConfig>;
  /** The config's queues, for the attempts of the jobs each trigger makes. */
  queues?: Record<string, { attempts?: number }>;
  /** This host's name; a trigger with `host:` set runs only there (default: the OS host name). */
  host?: string;
  /** Lock owner id (default: host, pid and a random part). */
  owner?: string;
  /** Largest payload in bytes; bigger records are rejected (default 1 MiB). */
  maxPayload?: number;
  clock?: Clock;
  /** Called when a trigger's error appears, changes or clears (for the log). */
  onError?: (trigger: string, error: string | null) => void;
}

interface Running {
  name: string;
  every: number;
  source: TriggerSource;
  status: TriggerStatus;
  /** The cursor as last read or committed; undefined: read it before the next poll. */
  state: TriggerCursor | null | undefined;
  timer: NodeJS.Timeout | null;
  polling: Promise<void> | null;
  /**
   * When the lock was last taken or renewed, by `intervalNow`: on the wall clock a step back
   * would hold off the keep-alive until the lock had lapsed for every other host.
   */
  lockedAt: number;
}

/**
 * How long a trigger's lock outlives its holder's last renewal: three intervals, so one
 * slow poll does not hand the trigger over; at least 2 s so a busy machine does not make
 * fast triggers flap; at most 10 s, because after a crash the restarted process (a new
 * owner) waits this long to take its triggers back. The version check, not the lock, is
 * what keeps a record from being enqueued twice, so a short lock risks only wasted work.
 */
export function lockTtl(everyMs: number): number {
  return Math.min(10_000, Math.max(3 * everyMs, 2000));
}

/**
 * How often held locks are checked for renewal. A lock is renewed at each poll and, for
 * triggers that poll less often than a third of their lock's TTL (or whose poll runs
 * long), by this timer once a third of the TTL has passed; checking costs nothing when no
 * renewal is due.
 */
const KEEPALIVE_CHECK_MS = 1000;

/** Polls every trigger of a config; see the module comment. */
export class TriggerRunner {
  private readonly running: Running[] = [];
  private readonly clock: Clock;
  private readonly owner: string;
  private stopped = true;
  private keepAlive: NodeJS.Timeout | null = null;
  private renewing = false;

  constructor(
    private readonly store: Store,
    private readonly opts: TriggerRunnerOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    const host = opts.host ?? hostname();
    this.owner = opts.owner ?? `${host}:${process.pid}:${randomBytes(4).toString("hex")}`;
    for (const [name, cfg] of Object.entries(opts.triggers)) {
      if (cfg.host && cfg.host !== host) continue; // another host's files: its runner reports it
      const source = createSource(name, cfg, {
        maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
        maxAttempts: opts.queues?.[cfg.queue]?.attempts,
      });
      this.running.push({
        name,
        // A schedule has no `every` key: its source derives the interval from the schedule.
        every: source.every ?? ("every" in cfg ? cfg.every : 2000),
        source,
        state: undefined,
        timer: null,
        polling: null,
        lockedAt: 0,
        status: {
          name,
          kind: source.kind,
          queue: cfg.queue,
          lastPollAt: null,
          lag: null,
          seen: 0,
          rejected: 0,
          error: null,
          host: cfg.host ?? null,
          leader: false,
        },
      });
    }
  }

  /** Starts every trigger's loop; the first polls run at once. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const t of this.running) this.schedule(t, 0);
    this.keepAlive = setInterval(() => void this.renewLocks(), KEEPALIVE_CHECK_MS);
  }

  /** Renews held locks a third of their TTL old (see KEEPALIVE_CHECK_MS). */
  private async renewLocks(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      for (const t of this.running) {
        if (this.stopped) return; // never take a lock back after stop() gave it up
        if (!t.status.leader || intervalNow(this.clock) - t.lockedAt < lockTtl(t.every) / 3) continue;
        await this.takeLock(t).catch(() => {
          // The store is unreachable: the next poll reports it; the lock may lapse meanwhile.
        });
      }
    } finally {
      this.renewing = false;
    }
  }

  private async takeLock(t: Running): Promise<boolean> {
    const now = intervalNow(this.clock);
    const ok = await this.store.tryLock(lockName(t.name), this.owner, lockTtl(t.every));
    if (ok) t.lockedAt = now;
    t.status.leader = ok;
    return ok;
  }

  /** Each trigger's state, for heartbeats and status. */
  status(): TriggerStatus[] {
    return this.running.map((t) => ({ ...t.status, ...t.source.describe?.(this.clock.now()) }));
  }

  /** Runs one poll of every trigger (or the named one) now, for tests; only while not started. */
  async pollAll(name?: string): Promise<void> {
    for (const t of this.running) if (name === undefined || t.name === name) await this.runPoll(t);
  }

  /** Stops polling, waits for polls in flight, closes files and gives the locks back. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = null;
    for (const t of this.running) {
      if (t.timer) clearTimeout(t.timer);
      t.timer = null;
    }
    await Promise.all(this.running.map((t) => t.polling));
    for (const t of this.running) {
      await t.source.close();
      if (t.status.leader) await this.store.unlock(lockName(t.name), this.owner).catch(() => {});
      t.status.leader = false;
    }
  }

  private schedule(t: Running, delayMs: number): void {
    if (this.stopped) return;
    t.timer = setTimeout(() => {
      t.timer = null;
      t.polling = this.runPoll(t).then((next) => {
        t.polling = null;
        this.schedule(t, next);
      });
    }, delayMs);
  }

  /** One poll under the lock; returns the delay until the next one. Never throws. */
  private async runPoll(t: Running): Promise<number> {
    const before = t.status.error;
    try {
      return await this.poll(t);
    } catch (err) {
      t.state = undefined; // re-read the cursor: the failure may have been mid-commit
      t.status.error = describeError(err);
      return t.every;
    } finally {
      if (t.status.error !== before) this.opts.onError?.(t.name, t.status.error);
    }
  }

  private async poll(t: Running): Promise<number> {
    const wasLeader = t.status.leader;
    if (!(await this.takeLock(t))) {
      // Another process polls it; the cursor it moves is read afresh if we ever take over.
      t.state = undefined;
      t.status.error = null;
      return t.every;
    }
    if (!wasLeader) t.state = undefined; // taken over: the cursor may have moved meanwhile
    if (t.state === undefined) t.state = await this.store.getCursor(t.name);
    const started = this.clock.now();
    let warning: string | null = null;
    let lag: number | null = null;
    let conflict = false;
    const ctx: PollContext = {
      get cursor() {
        return (t.state?.cursor as TriggerCursorState | undefined) ?? null;
      },
      commit: async (batch) => {
        const ok = await this.commit(t, batch);
        if (!ok) conflict = true;
        if (ok && batch.lagMs !== undefined && batch.lagMs !== null) lag = Math.max(lag ?? 0, batch.lagMs);
        return ok;
      },
      hasTime: () => this.clock.now() - started < t.every,
      warn: (m) => (warning = m),
      now: () => this.clock.now(),
    };
    const out = await t.source.poll(ctx);
    t.status.lastPollAt = this.clock.now();
    t.status.lag = lag ?? 0;
    t.status.error = warning;
    // A refused commit means another process moved the cursor (a leader we did not know
    // of): leave it the interval rather than racing it.
    if (conflict) return t.every;
    if (out.more) return 0;
    return Math.min(t.every, Math.max(0, out.wakeInMs ?? t.every));
  }

  private async commit(t: Running, batch: TriggerBatch): Promise<boolean> {
    const expectVersion = t.state?.version ?? 0;
    const at = this.clock.now();
    let ok: boolean;
    try {
      ok = await this.store.commitTrigger({
        trigger: t.name,
        expectVersion,
        cursor: batch.cursor,
        jobs: batch.jobs,
        rejected: batch.rejected.map((r) => ({ ...r, at: r.at ?? at })),
      });
    } catch (err) {
      if (err instanceof VigilError && err.code === "PAYLOAD_TOO_LARGE" && batch.cursor.kind === "snapshot") {
        // Record payloads are checked before they get here; what is too large is the cursor.
        const files = Object.keys(batch.cursor.files).length;
        throw new VigilError(
          "PAYLOAD_TOO_LARGE",
          `the snapshot of ${files} files is too large to store (${err.message}); ` +
            "raise maxPayload (a watched file takes about 80 bytes) or narrow the trigger's glob",
          { cause: err },
        );
      }
      throw err;
    }
    if (!ok) {
      // Someone else moved the cursor (a leader we did not know about): start over from theirs.
      t.state = await this.store.getCursor(t.name);
      return false;
    }
    t.state = { cursor: batch.cursor, version: expectVersion + 1 };
    t.status.seen += batch.jobs.length;
    t.status.rejected += batch.rejected.length;
    return true;
  }
}

function lockName(trigger: string): string {
  return `trigger:${trigger}`;
}

/** The source for one trigger of the config. */
export function createSource(
  name: string,
  cfg: TriggerConfig,
  extra: { maxPayload: number; maxAttempts?: number },
): TriggerSource {
  const common = {
    name,
    queue: cfg.queue,
    maxPayload: extra.maxPayload,
    ...(cfg.priority !== undefined ? { priority: cfg.priority } : {}),
    ...(extra.maxAttempts !== undefined ? { maxAttempts: extra.maxAttempts } : {}),
  };
  if ("tail" in cfg) return new TailSource({ ...common, path: cfg.tail, format: cfg.format, maxLine: cfg.maxLine, drain: cfg.drain });
  if ("watch" in cfg) return watchSource({ ...common, watch: cfg.watch, settle: cfg.settle, onDelete: cfg.onDelete });
  if ("file" in cfg) return fileSource({ ...common, file: cfg.file, settle: cfg.settle });
  const spec = parseSchedule(cfg.schedule, cfg.tz);
  return new ScheduleSource({
    ...common,
    spec,
    misfire: cfg.misfire,
    ...(cfg.payload !== undefined ? { payload: cfg.payload } : {}),
    lockTtlMs: lockTtl(scheduleEvery(spec)),
  });
}
