/**
 * One supervised process (one status row: `workers:1`, `outline-api`): spawns it in its
 * own process group, watches it (IPC heartbeat, HTTP probe, status-file mtime, exit),
 * and replaces it when it dies or hangs. The supervisor ticks every slot; a slot never
 * runs jobs and only touches the store through the callbacks it is given.
 */
import type { ChildProcess } from "node:child_process";
import { monotonicNow } from "../core/clock.js";
import type { ServiceState, ServiceStatus, TriggerStatus } from "../core/status.js";
import { killGroup, procInfo, spawnGroup } from "../os/process.js";
import { ENV_SERVICE, ENV_STACK_FILE, ENV_WORKER_ID, isWorkerMessage, type ActiveJobInfo, type WorkerMessage } from "../child/protocol.js";
import { killForStall, killProcessTree } from "./kill-tree.js";
import { captureStall } from "./liveness.js";
import { RotatingLog } from "../project/logs.js";
import { RestartPolicy } from "./restart-policy.js";
import { SlotLiveness } from "./slot-liveness.js";
import type { SlotContext, SlotSpec } from "./slot-types.js";

export type { SlotContext, SlotSpec, SlotTiming } from "./slot-types.js";

type Planned = "stall" | "memory" | "manual" | "stop";

/** Commands have no heartbeat that carries RSS: read it from /proc this often. */
const MEMORY_CHECK_EVERY_MS = 2000;

export class ProcessSlot {
  state: ServiceState = "stopped";
  private child: ChildProcess | null = null;
  private pid: number | null = null;
  /** When the process started: ms since the epoch, for status and the children registry. */
  private startedAt: number | null = null;
  /** The start in monotonic ms, for uptime; liveness is judged on that clock too (slot-liveness.ts). */
  private startedMono: number | null = null;
  private spawns = 0;
  private restarts = 0;
  private workerId: string | null = null;
  private lastHb: { active: ActiveJobInfo[]; rssBytes: number; lagMs: number } | null = null;
  private lastExit: ServiceStatus["lastExit"] = null;
  private nextRestartAt: number | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private planned: Planned | null = null;
  // True from the start: incidents this service left open in an earlier run on this host
  // (crash-looping when vigil stopped, say) end when it next runs healthy.
  private pendingRecovery = true;
  private everHealthy = false;
  private lastMemoryCheck = -Infinity;
  private timeoutIncidents = new Map<number, number>();
  private exitWaiters: (() => void)[] = [];
  /** A stall's kill of this worker is under way: resolves to the jobs freed once it is done. */
  private stallRelease: Promise<number> | null = null;
  private readonly policy: RestartPolicy;
  private readonly out: RotatingLog;
  private readonly live: SlotLiveness;
  /** The last `{t:"triggers"}` report (the triggers process only). */
  triggers: TriggerStatus[] = [];

  constructor(
    readonly spec: SlotSpec,
    private readonly ctx: SlotContext,
  ) {
    this.policy = new RestartPolicy(ctx.timing);
    this.out = new RotatingLog(spec.logFile);
    this.live = new SlotLiveness(spec, ctx.timing.stallAfterMs, () => {
      if (this.proving) this.healthy();
    });
  }

  /** What the children registry keeps to find this process again after a crash of ours. */
  get running(): { name: string; pid: number; argv: string[]; workerId: string | null; startedAt: number } | null {
    return this.child && this.pid && this.startedAt ? { name: this.spec.name, pid: this.pid, argv: this.spec.argv, workerId: this.workerId, startedAt: this.startedAt } : null;
  }

  start(): void {
    if (this.child) return;
    this.clearRestart();
    const now = Date.now();
    this.live.reset(monotonicNow());
    this.spawns++;
    if (this.spawns > 1) this.restarts++;
    // The supervisor's pid keeps ids unique across supervisor restarts: releasing a dead
    // previous supervisor's `workers:1` must never touch the new `workers:1`'s leases.
    this.workerId = `${this.ctx.host}:${this.spec.service}:${this.spec.index}:${process.pid}.${this.spawns}`;
    const env: NodeJS.ProcessEnv = { ...this.spec.env, [ENV_SERVICE]: this.spec.name };
    if (this.spec.kind === "worker") env[ENV_WORKER_ID] = this.workerId;
    if (this.spec.stackFile) env[ENV_STACK_FILE] = this.spec.stackFile;
    const child = spawnGroup(this.spec.argv, {
      cwd: this.spec.cwd,
      env,
      stdio: this.spec.ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.pid = child.pid ?? null;
    this.startedAt = now;
    this.startedMono = monotonicNow();
    this.lastHb = null;
    this.planned = null;
    // A crash-looping service's retry stays `crash-looping` until it runs healthy, so status
    // and health do not turn green for the moment each retry takes to fail again.
    this.state = this.state === "crash-looping" ? "crash-looping" : "starting";
    this.out.attach(child.stdout);
    this.out.attach(child.stderr);
    this.out.note(`started pid ${this.pid ?? "-"}: ${this.spec.argv.join(" ")}`);
    child.on("error", (err) => {
      this.out.note(`could not run: ${err.message}`);
      this.ctx.log.error({ err }, `${this.spec.name}: could not run ${this.spec.argv[0]}`);
      // A spawn failure (ENOENT) emits no 'exit': treat it as one so the restart policy applies.
      if (child.pid === undefined && this.child === child) this.onExit(child, null, null, err.message);
    });
    child.on("message", (m: unknown) => {
      if (this.child === child && isWorkerMessage(m)) this.onMessage(m);
    });
    // 'exit', not 'close': a grandchild holding the pipes must not delay freeing the jobs.
    child.on("exit", (code, signal) => this.onExit(child, code, signal));
    this.ctx.childrenChanged();
  }

  /** Called by the supervisor every 50–250 ms (a twentieth of `stallAfter`), `now` monotonic. */
  tick(now: number): void {
    if (!this.child || this.pid === null || this.planned !== null) return;
    if (!this.proving && this.state !== "running") return;
    const child = this.child;
    const verdict = this.live.look(now, () => this.child === child && this.planned === null);
    if (verdict === "settled") {
      if (this.proving) this.healthy();
    } else if (verdict) void this.stall(verdict.stalled);
    if (this.spec.maxMemory && !this.spec.ipc && now - this.lastMemoryCheck >= MEMORY_CHECK_EVERY_MS) {
      this.lastMemoryCheck = now;
      const info = procInfo(this.pid);
      if (info && info.rssBytes > this.spec.maxMemory) void this.overMemory(info.rssBytes);
    }
  }

  /**
   * The supervisor did not run for `ms` (stopped, its loop held): that stretch is not held
   * against the process, which gets its full `stallAfter` of watched time to be heard (its
   * beats meanwhile wait in the IPC channel, read after this tick). Never past `now`.
   */
  discount(ms: number, now: number): void {
    this.live.discount(ms, now);
  }

  /** Restarts gracefully now (SIGTERM, drain, SIGKILL after killTimeout), or starts a waiting slot. */
  async restart(opts: { manual?: boolean; reason?: string } = {}): Promise<void> {
    this.policy.reset();
    if (!this.child) {
      this.state = "restarting"; // a person's restart starts over, crash loop or not
      this.start();
      return;
    }
    if (this.planned) return;
    this.planned = "manual";
    this.state = "restarting";
    if (opts.manual) {
      const inc = await this.ctx.incidents.open(this.spec.name, "stop", { manual: true, action: "restart", reason: opts.reason ?? "requested by a person", pid: this.pid, workerId: this.workerId });
      if (inc) this.pendingRecovery = true;
    }
    this.out.note(`restarting (${opts.manual ? "manual" : opts.reason ?? "requested"})`);
    this.terminate();
  }

  /** Stops the process for good (supervisor shutdown); resolves once it has exited. */
  stop(): Promise<void> {
    this.clearRestart();
    if (!this.child) {
      this.state = "stopped";
      return Promise.resolve();
    }
    const done = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    if (this.planned !== "stop") {
      this.planned = "stop";
      this.out.note("stopping");
      this.terminate();
    }
    return done;
  }

  status(now = Date.now()): ServiceStatus {
    const info = this.pid !== null && this.child ? procInfo(this.pid) : null;
    return {
      name: this.spec.name,
      service: this.spec.service,
      kind: this.spec.kind,
      host: this.ctx.host,
      state: this.state,
      pid: this.child ? this.pid : null,
      restarts: this.restarts,
      heartbeatAgeMs: this.child && this.live.lastBeatAt !== null ? Math.max(0, monotonicNow() - this.live.lastBeatAt) : null,
      startedAt: this.child ? this.startedAt : null,
      // A process that is gone runs nothing and uses no memory, whatever it last reported.
      rssBytes: this.child ? (this.lastHb?.rssBytes ?? info?.rssBytes ?? null) : null,
      workerId: this.spec.kind === "worker" ? this.workerId : null,
      activeJobs: this.child ? (this.lastHb?.active.length ?? 0) : 0,
      lastExit: this.lastExit,
      nextRestartAt: this.nextRestartAt,
    };
  }

  private onMessage(m: WorkerMessage): void {
    const now = Date.now();
    switch (m.t) {
      case "hb":
        this.lastHb = { active: Array.isArray(m.active) ? m.active : [], rssBytes: m.rssBytes, lagMs: m.lagMs };
        if (this.planned !== null || this.state === "stalled") return; // a late beat does not undo a stall
        this.live.beat(monotonicNow());
        for (const [jobId, incId] of this.timeoutIncidents) {
          if (!this.lastHb.active.some((j) => j.jobId === jobId)) {
            this.timeoutIncidents.delete(jobId);
            void this.ctx.incidents.resolve(this.spec.name, now, incId);
          }
        }
        if (this.spec.maxMemory && m.rssBytes > this.spec.maxMemory) void this.overMemory(m.rssBytes);
        return;
      case "triggers":
        this.triggers = Array.isArray(m.triggers) ? m.triggers : [];
        return;
      case "job-timeout":
        void this.ctx.incidents
          .open(this.spec.name, "job-timeout", { jobId: m.jobId, queue: m.queue, timeoutMs: m.timeoutMs, workerId: this.workerId, pid: this.pid })
          .then((inc) => {
            if (inc) this.timeoutIncidents.set(m.jobId, inc.id);
          });
        this.out.note(`job ${m.jobId} (${m.queue}) passed its ${m.timeoutMs} ms timeout and was aborted`);
        return;
      case "store-refused":
        // The worker went on (the rest of the batch committed): recorded, and recovered at once.
        void this.ctx.incidents
          .open(this.spec.name, "store-refused", { jobId: m.jobId, queue: m.queue, error: m.error, errorCode: m.code ?? null, workerId: this.workerId, pid: this.pid }, now)
          .then((inc) => inc && this.ctx.incidents.resolve(this.spec.name, now, inc.id));
        this.out.note(`the store refused the completion of job ${m.jobId} (${m.queue}); the job is dead: ${m.error}`);
        return;
      case "wedged":
        void this.stall(`wedged: ${m.reason} (job ${m.jobId}, ${m.queue})`, { wedgedJobId: m.jobId, queue: m.queue });
        return;
      case "draining":
        this.out.note("draining");
        return;
      case "ready":
        return;
    }
  }

  /** Up, and not yet shown healthy: a first start, or a crash-looping service's retry. */
  private get proving(): boolean {
    return this.child !== null && (this.state === "starting" || this.state === "crash-looping");
  }

  private healthy(): void {
    this.state = "running";
    if (this.pendingRecovery) {
      this.pendingRecovery = false;
      const earlierRun = !this.everHealthy;
      void this.ctx.incidents.resolve(this.spec.name, Date.now()).then((n) => {
        if (n > 0) this.ctx.incidents.alert("recovered", this.spec.name, `${this.spec.name} is running again (pid ${this.pid})`, { pid: this.pid, ...(earlierRun ? { earlierRun } : {}) });
      });
    }
    this.everHealthy = true;
  }

  /**
   * Declares the process stalled and records what it was doing. A worker (or the triggers
   * process) is then SIGKILLed with every command it started, and its jobs are freed only
   * once all of that is gone: woken inside a graceful stop's window (a VM resumed, a
   * `kill -CONT`, a long GC), it would finish its handlers' side effects a second time,
   * beside the retry (see kill-tree.ts). A command service holds no jobs; it gets the
   * graceful stop (SIGTERM, SIGKILL after killTimeout).
   */
  private async stall(reason: string, extra: Record<string, unknown> = {}): Promise<void> {
    if (!this.child || this.planned !== null) return;
    const child = this.child;
    const pid = this.pid!;
    const workerId = this.spec.kind === "worker" ? this.workerId : null;
    const now = Date.now();
    this.planned = "stall";
    this.state = "stalled";
    const heartbeatAgeMs = this.live.lastBeatAt === null ? null : Math.round(monotonicNow() - this.live.lastBeatAt);
    this.ctx.log.warn(`${this.spec.name} (pid ${pid}) stalled: ${reason}`);
    this.out.note(`stalled: ${reason}`);
    const kill = this.spec.kind === "worker";
    let freed: (n: number) => void = () => {};
    // An exit seen meanwhile (the SIGKILL below, a wedged worker ending itself) leaves the
    // release to this sequence, which frees the jobs only once the commands are gone too.
    if (kill) this.stallRelease = new Promise<number>((resolve) => (freed = resolve));
    let released = 0;
    try {
      const evidence = await captureStall({
        pid,
        heartbeatAgeMs,
        activeJobs: this.lastHb?.active ?? [],
        stackFile: this.spec.stackFile ?? null,
        startedAt: this.startedAt!,
      });
      const killed = kill ? { killed: await killForStall(pid, this.spec.commandsDir, (m) => this.out.note(m), this.ctx.log.child({ service: this.spec.name })) } : {};
      if (workerId) released = await this.ctx.releaseWorker(workerId, "stall");
      const cause = this.spec.probe ? "probe" : "stall";
      const inc = await this.ctx.incidents.open(this.spec.name, cause, { reason, workerId, releasedJobs: released, ...evidence, ...killed, ...extra }, now);
      if (inc) this.pendingRecovery = true;
      this.ctx.incidents.alert(cause, this.spec.name, `${this.spec.name} stalled: ${reason}${evidence.blockedIn ? `; blocked in ${evidence.blockedIn}` : ""}`, { pid, procState: evidence.procState });
    } finally {
      freed(released);
    }
    if (!kill && this.child === child) this.terminate();
  }

  private async overMemory(rssBytes: number): Promise<void> {
    if (!this.child || this.planned !== null) return;
    this.planned = "memory";
    this.state = "restarting";
    const msg = `RSS ${Math.round(rssBytes / 1048576)} MB passed maxMemory ${Math.round(this.spec.maxMemory! / 1048576)} MB`;
    this.out.note(`${msg}; restarting`);
    const inc = await this.ctx.incidents.open(this.spec.name, "memory", { rssBytes, maxMemory: this.spec.maxMemory, pid: this.pid, workerId: this.workerId, activeJobs: this.lastHb?.active ?? [] });
    if (inc) this.pendingRecovery = true;
    this.ctx.incidents.alert("memory", this.spec.name, `${this.spec.name}: ${msg}`, { rssBytes });
    this.terminate();
  }

  /** SIGTERM to the group (workers drain), SIGKILL after killTimeout if still there. */
  private terminate(): void {
    const pid = this.pid;
    if (!this.child || pid === null) return;
    killGroup(pid, "SIGTERM");
    if (this.killTimer) clearTimeout(this.killTimer);
    // A SIGSTOPped process keeps SIGTERM pending and a blocked loop never runs its handler;
    // only SIGKILL ends those, after giving a healthy one killTimeout to drain.
    this.killTimer = setTimeout(() => {
      this.out.note(`still running ${this.ctx.timing.killTimeoutMs} ms after SIGTERM; SIGKILL to process group ${pid}`);
      killGroup(pid, "SIGKILL");
    }, this.ctx.timing.killTimeoutMs);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, spawnError?: string): void {
    if (this.child !== child) return;
    const now = Date.now();
    const mono = monotonicNow();
    const pid = this.pid;
    const uptimeMs = Math.round(mono - (this.startedMono ?? mono));
    if (this.killTimer) clearTimeout(this.killTimer);
    this.killTimer = null;
    this.child = null;
    this.lastExit = { code, signal, at: now };
    this.out.note(`exited (code ${code ?? "-"}, signal ${signal ?? "-"}) after ${uptimeMs} ms`);
    // Anything the leader left in its group would be an orphan: take it down too.
    if (pid !== null) killGroup(pid, "SIGKILL");
    const activeJobs = this.lastHb?.active ?? [];
    const workerId = this.workerId;
    // A worker's jobs are freed once what it started is gone too: a command it left running
    // (it was SIGKILLed and could not end them) would otherwise run beside the retry.
    const releasing =
      this.stallRelease ??
      (this.spec.kind === "worker" && workerId && pid !== null
        ? killProcessTree(pid, this.spec.commandsDir).then(() => this.ctx.releaseWorker(workerId, "exit"))
        : Promise.resolve(0));
    this.stallRelease = null;
    this.ctx.childrenChanged();
    const planned = this.planned;
    this.planned = null;
    for (const [, incId] of this.timeoutIncidents) void this.ctx.incidents.resolve(this.spec.name, now, incId);
    this.timeoutIncidents.clear();
    if (planned === "stop") {
      this.state = "stopped";
      this.out.close();
      void releasing.finally(() => this.exitWaiters.splice(0).forEach((w) => w()));
      return;
    }
    if (planned === "manual" || planned === "memory") {
      this.scheduleRestart(0, false);
      return;
    }
    const decision = this.policy.next(mono, uptimeMs);
    if (planned === null) {
      const detail = { code, signal, uptimeMs, pid, workerId: this.workerId, activeJobs, ...(spawnError ? { error: spawnError } : {}), ...(decision.crashLooping ? { crashLooping: true, recentRestarts: decision.recentRestarts } : {}) };
      void releasing.then(async (released) => {
        const inc = await this.ctx.incidents.open(this.spec.name, "crash", { ...detail, releasedJobs: released }, now);
        if (inc) this.pendingRecovery = true;
      });
      this.ctx.log.warn(`${this.spec.name} (pid ${pid ?? "-"}) exited: code ${code ?? "-"}, signal ${signal ?? "-"}`);
      this.ctx.incidents.alert("crash", this.spec.name, `${this.spec.name} exited (code ${code ?? "-"}, signal ${signal ?? "-"}) after ${uptimeMs} ms`, { code, signal });
    }
    if (decision.crashLooping) {
      this.ctx.log.warn(`${this.spec.name} is crash-looping (${decision.recentRestarts} restarts in the window); next try in ${decision.delayMs} ms`);
      this.ctx.incidents.alert("crash-loop", this.spec.name, `${this.spec.name} is crash-looping: ${decision.recentRestarts} restarts in the window; retrying every ${Math.round(decision.delayMs / 1000)} s`, { recentRestarts: decision.recentRestarts });
    }
    this.scheduleRestart(decision.delayMs, decision.crashLooping);
  }

  private scheduleRestart(delayMs: number, crashLooping: boolean): void {
    this.clearRestart();
    this.state = crashLooping ? "crash-looping" : "restarting";
    this.nextRestartAt = Date.now() + delayMs;
    this.out.note(`next start in ${delayMs} ms`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.nextRestartAt = null;
      this.start();
    }, delayMs);
  }

  private clearRestart(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.nextRestartAt = null;
  }
}
