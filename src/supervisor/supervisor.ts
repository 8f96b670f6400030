/**
 * The supervisor: runs every process of a project's config, watches them, replaces what
 * dies or hangs, and records each fault as an incident. It never claims, runs or reads
 * jobs; its only store writes are incidents and `releaseWorker` for a worker it saw die
 * or declared stalled.
 *
 * Start-up order (`start`): take the project lock, end the orphans a dead previous
 * supervisor left and free their jobs, check the store, then start every process. Jobs
 * whose lease ran out otherwise are the workers' to reap (worker/reaper.ts).
 */
import { EventEmitter } from "node:events";
import { mkdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Server } from "node:net";
import type { VigilConfig } from "../config/schema.js";
import { monotonicNow } from "../core/clock.js";
import { textLogger, type Logger } from "../core/log.js";
import { VigilError } from "../core/errors.js";
import type { AlertSink, StatusSnapshot } from "../core/status.js";
import type { Store } from "../store/store.js";
import type { SupervisorEvents } from "./events.js";
import { controlRequest, serveControl, type ControlRequest, type ControlResponse } from "./control.js";
import { QueueCountsCache } from "./counts-cache.js";
import { IncidentRecorder, noopAlertSink } from "./incidents.js";
import { removeChildren, writeChildren } from "../project/children-file.js";
import { vigilPaths, type VigilPaths } from "../project/paths.js";
import { acquireLock, releaseLock } from "../project/pid-file.js";
import { writeStatusFile } from "../project/status-file.js";
import { killOrphans } from "./orphans.js";
import { ProcessSlot, type SlotTiming } from "./process-slot.js";
import { buildSlotSpecs } from "./slot-specs.js";
import { withConfiguredQueues } from "../health/snapshot.js";

/** The service name of incidents about the supervisor itself (stops, a crash found at start). */
export const SUPERVISOR_SERVICE = "supervisor";

export interface SupervisorOptions {
  config: VigilConfig;
  /** Absolute path of the config file. */
  configPath: string;
  /** The config's folder; `.vigil/` goes here. */
  dir: string;
  store: Store;
  /** `workers`: no triggers process, for extra hosts (default `all`). */
  role?: "all" | "workers";
  /** A `--store` URL from the command line, handed on to the children. */
  storeUrl?: string;
  /** Where alert events go (default: nowhere but the `alert` event). */
  alerts?: AlertSink;
  /** Host name in worker ids, incidents and status (default: config.host, else the OS's). */
  host?: string;
  /** Where notable events go (default: readable lines on stderr, `textLogger`). */
  log?: Logger;
}

const VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
})();

/**
 * Events: `incident` (Incident), `recovered` ({ service, at }), `alert` (AlertEvent),
 * `stopped`. It knows nothing of HTTP: `vigil start` (src/cli/start.ts) runs the HTTP
 * server beside it on `snapshot()`, `restartService()` and the shared alert sink.
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly paths: VigilPaths;
  readonly host: string;
  readonly incidents: IncidentRecorder;
  private slots: ProcessSlot[] = [];
  private timers: NodeJS.Timeout[] = [];
  private control: Server | null = null;
  private startedAt = 0;
  /** The tick interval (ms), and the monotonic time of the last tick (see `tick`). */
  private tickMs = 0;
  private lastTickAt = 0;
  /** Queue counts for snapshots, read only as often as they are cheap (counts-cache.ts). */
  private readonly counts = new QueueCountsCache(() => this.opts.store.stats());
  private stopping: Promise<void> | null = null;
  /** Structured log; `vigil start` hands it to what it runs beside the supervisor. */
  readonly log: Logger;
  private readonly timing: SlotTiming;
  /**
   * Stalls before a freed job is dead, per queue: each queue's own `maxStalls`, so a queue
   * configured above the default 3 is not cut short by one configured below it.
   */
  private readonly queueMaxStalls: Record<string, number>;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.on("error", () => {}); // listeners' failures are theirs; supervision goes on
    this.paths = vigilPaths(opts.dir);
    this.host = opts.host ?? opts.config.host ?? hostname();
    this.log = opts.log ?? textLogger();
    const s = opts.config.supervision;
    this.timing = {
      stallAfterMs: s.stallAfter,
      killTimeoutMs: s.killTimeout,
      minUptimeMs: s.minUptime,
      maxRestarts: s.maxRestarts,
      crashLoopRetryMs: s.crashLoopRetry,
    };
    this.queueMaxStalls = Object.fromEntries(Object.entries(opts.config.queues).map(([name, q]) => [name, q.maxStalls]));
    this.incidents = new IncidentRecorder(opts.store, this.host, opts.alerts ?? noopAlertSink, this.log);
    this.incidents.on("incident", (inc) => this.emit("incident", inc));
    this.incidents.on("recovered", (r) => this.emit("recovered", r));
    this.incidents.on("alert", (a) => this.emit("alert", a));
  }

  /** Takes the lock, cleans up, checks the store and starts every process. */
  async start(): Promise<void> {
    const { store } = this.opts;
    const { stalePid } = acquireLock(this.paths.pidFile);
    try {
      const orphans = await killOrphans(this.paths.childrenFile, this.timing.killTimeoutMs, this.log);
      // The full check reads the whole file (seconds at millions of jobs), so it runs only
      // when the last run did not end cleanly, before anything is written to the store: a
      // crash or a power loss is when a file breaks.
      const unclean = stalePid !== null || orphans.found.length > 0;
      const problem = unclean ? await store.check() : null;
      if (problem) {
        throw new VigilError("STORE_CORRUPT", `the store at ${store.location} failed its integrity check (${problem}); nothing was started. Restore it from a backup or run \`vigil doctor\``);
      }
      await this.cleanUp(stalePid, orphans);
      this.startedAt = Date.now();
      await this.incidents.resolve(SUPERVISOR_SERVICE, this.startedAt);
      // Watchdog threads write their stacks here without creating folders.
      mkdirSync(this.paths.stacks, { recursive: true });
      this.control = await serveControl(this.paths.controlSocket, (req) => this.handle(req), this.log);
      const specs = buildSlotSpecs({ config: this.opts.config, configPath: this.opts.configPath, dir: this.opts.dir, paths: this.paths, role: this.opts.role, storeUrl: this.opts.storeUrl });
      this.slots = specs.map(
        (spec) =>
          new ProcessSlot(spec, {
            host: this.host,
            timing: this.timing,
            incidents: this.incidents,
            releaseWorker: (id, reason) => this.releaseWorker(id, reason),
            log: this.log,
            childrenChanged: () => this.saveChildren(),
          }),
      );
      for (const slot of this.slots) slot.start();
      // Twenty looks per stallAfter, at most four a second: a stall is declared at most
      // 250 ms late (5 % of the default 5 s), and an idle tick costs microseconds (no I/O
      // unless a status file or probe is configured). Slower ticks delay detection.
      this.tickMs = Math.max(50, Math.min(250, Math.floor(this.timing.stallAfterMs / 20)));
      this.lastTickAt = monotonicNow();
      this.timers.push(setInterval(() => this.tick(), this.tickMs));
      this.timers.push(setInterval(() => void this.writeStatus(), this.opts.config.supervision.statusEvery));
      this.log.info(`supervising ${this.slots.length} process(es) for ${this.opts.configPath} (pid ${process.pid})`);
      await this.writeStatus();
    } catch (err) {
      await Promise.all(this.slots.map((s) => s.stop()));
      await this.teardown();
      throw err;
    }
  }

  /**
   * The live status: one row per process, queue counts and recent incidents. The counts
   * come from the shared cache unless `fresh` (the last status file, after the drain).
   */
  async snapshot(opts: { fresh?: boolean } = {}): Promise<StatusSnapshot> {
    const now = Date.now();
    const [queues, incidents, paused] = await Promise.all([
      (opts.fresh ? this.opts.store.stats() : this.counts.get()).catch(() => ({})),
      this.opts.store.listIncidents({ limit: 20 }).catch(() => []),
      this.opts.store.queueStates().then(
        (states) => states.filter((q) => q.paused).map((q) => q.name),
        () => [],
      ),
    ]);
    return {
      at: now,
      supervisor: { pid: process.pid, host: this.host, startedAt: this.startedAt, version: VERSION },
      services: this.slots.map((s) => s.status(now)),
      queues: withConfiguredQueues(queues, Object.keys(this.opts.config.queues)),
      paused,
      triggers: this.slots.flatMap((s) => s.triggers),
      incidents,
      source: "supervisor",
    };
  }

  /**
   * Restarts a service's processes (`workers`), one process (`workers:2`), or all (no
   * name). Returns the rows restarted; throws when the name matches nothing.
   */
  async restartService(name?: string, opts: { manual?: boolean } = {}): Promise<string[]> {
    const slots = name ? this.slots.filter((s) => s.spec.name === name || s.spec.service === name) : this.slots;
    if (slots.length === 0) {
      throw new VigilError("NOT_FOUND", `no service or process named "${name}"; \`vigil status\` lists them`);
    }
    await Promise.all(slots.map((s) => s.restart({ manual: opts.manual ?? false })));
    return slots.map((s) => s.spec.name);
  }

  /** Stops every process (workers drain; SIGKILL after killTimeout), records a `stop` incident. */
  stop(reason = "vigil stop"): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info(`stopping (${reason})`);
      for (const t of this.timers) clearInterval(t);
      this.timers = [];
      await Promise.all(this.slots.map((s) => s.stop()));
      await this.incidents.open(SUPERVISOR_SERVICE, "stop", { reason, pid: process.pid, manual: true });
      // The last status file: every process stopped, counts read now that the workers have
      // drained (the cached ones are from before the stop).
      await this.writeStatus({ fresh: true }).catch(() => {});
      await this.teardown();
      this.log.info("stopped");
    })();
    return this.stopping;
  }

  /**
   * Judges every slot on the monotonic clock. A tick that comes much later than due means
   * the supervisor itself did not run meanwhile (SIGSTOP or Ctrl-Z, a held event loop, a
   * suspended machine): its processes went unwatched, not silent — their heartbeats wait
   * in the IPC channels, to be read after this tick. That stretch is discounted from every
   * age a slot measures, so nobody is judged stalled for the supervisor's own absence.
   */
  private tick(): void {
    const now = monotonicNow();
    const late = now - this.lastTickAt - this.tickMs;
    this.lastTickAt = now;
    // Lateness up to one more interval is ordinary timer jitter on a busy machine.
    if (late > this.tickMs) {
      if (late > this.timing.stallAfterMs / 2) this.log.warn(`the supervisor did not run for ${Math.round(late)} ms; that time is not held against any process`);
      for (const s of this.slots) s.discount(late, now);
    }
    for (const s of this.slots) s.tick(now);
  }

  private async releaseWorker(workerId: string, reason: string): Promise<number> {
    try {
      const n = await this.opts.store.releaseWorker(workerId, reason, { queueMaxStalls: this.queueMaxStalls });
      if (n > 0) this.log.info(`freed ${n} job(s) of ${workerId} (${reason})`);
      return n;
    } catch (err) {
      // The leases still run out by themselves; only the quick hand-over is lost.
      this.log.warn({ err }, `could not free the jobs of ${workerId}`);
      return 0;
    }
  }

  /** Frees the jobs of the workers a dead previous supervisor left (already ended) and records it. */
  private async cleanUp(stalePid: number | null, { found, killed }: Awaited<ReturnType<typeof killOrphans>>): Promise<void> {
    // The project is supervised again: a stop (or crash) of the previous supervisor that is
    // still open ends now, so its downtime counts in the report instead of growing forever.
    await this.incidents.resolve(SUPERVISOR_SERVICE);
    for (const rec of found) if (rec.workerId) await this.releaseWorker(rec.workerId, "previous supervisor gone");
    if (stalePid !== null) {
      this.log.warn(`took over from supervisor pid ${stalePid}, which is gone; ended ${killed.length} orphaned process(es)`);
      const inc = await this.incidents.open(SUPERVISOR_SERVICE, "crash", {
        pid: stalePid,
        reason: "the previous supervisor ended without stopping its processes",
        orphans: killed.map((r) => ({ name: r.name, pid: r.pid })),
      });
      if (inc) await this.incidents.resolve(SUPERVISOR_SERVICE, Date.now(), inc.id);
    }
  }

  private saveChildren(): void {
    if (this.stopping && this.slots.every((s) => s.running === null)) return removeChildren(this.paths.childrenFile);
    try {
      writeChildren(this.paths.childrenFile, this.slots.flatMap((s) => (s.running ? [s.running] : [])));
    } catch (err) {
      this.log.warn({ err }, `could not write ${this.paths.childrenFile}`);
    }
  }

  private async writeStatus(opts: { fresh?: boolean } = {}): Promise<void> {
    try {
      writeStatusFile(this.paths.statusFile, await this.snapshot(opts));
    } catch (err) {
      this.log.warn({ err }, `could not write ${this.paths.statusFile}`);
    }
  }

  private async handle(req: ControlRequest): Promise<ControlResponse> {
    switch (req.op) {
      case "ping":
        return { ok: true, pid: process.pid };
      case "status":
        return { ok: true, snapshot: await this.snapshot() };
      case "restart":
        return { ok: true, restarted: await this.restartService(req.service, { manual: true }) };
      case "stop":
        setImmediate(() => void this.stop("vigil stop (control socket)").then(() => this.emit("stopped")));
        return { ok: true, pid: process.pid };
      default:
        return { ok: false, error: `unknown request ${JSON.stringify((req as { op?: unknown }).op)}` };
    }
  }

  private async teardown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.control) await new Promise<void>((r) => this.control!.close(() => r()));
    this.control = null;
    removeChildren(this.paths.childrenFile);
    releaseLock(this.paths.pidFile);
  }
}

/** Asks the live supervisor of a project, if any: null when none answers. */
export function askSupervisor(dir: string, req: ControlRequest, timeoutMs?: number): Promise<ControlResponse | null> {
  return controlRequest(vigilPaths(dir).controlSocket, req, timeoutMs);
}
