/**
 * The benchmark's child processes (a worker, a producer) and how the benchmark talks to
 * them: Node IPC, one JSON message per step, every wait bounded.
 */
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { killGroup, spawnGroup } from "../../src/os/process.js";
import type { TargetCtx } from "./target.js";

/** What the benchmark tells a worker child to do (argv[2], JSON). */
export interface WorkerInit {
  role: "worker";
  target: string;
  ctx: TargetCtx;
  concurrency: number;
  /** `drain`: time `n` jobs to completion; `latency`: collect `n` pick-up delays. */
  mode: "drain" | "latency";
  n: number;
  /** Give up (report what was done) after this many ms. */
  capMs: number;
}

/** What the benchmark tells a producer child to do. */
export interface ProducerInit {
  role: "producer";
  target: string;
  ctx: TargetCtx;
  /** Measured jobs, after `warm` unmeasured ones. */
  n: number;
  warm: number;
  /** One job every this many ms. */
  everyMs: number;
}

export type ChildMessage =
  | { t: "ready" }
  | { t: "drained"; ms: number; done: number; partial: boolean }
  | { t: "latency"; samples: number[]; partial: boolean }
  | { t: "produced"; n: number }
  | { t: "error"; message: string };

export type ParentMessage = { t: "go" } | { t: "stop" };

const ENTRY = fileURLToPath(new URL("./child-main.ts", import.meta.url));

/** A running child with a message inbox. */
export class Child {
  private readonly proc: ChildProcess;
  private readonly inbox: ChildMessage[] = [];
  private waiter: (() => void) | null = null;
  private exitCode: number | null | undefined;
  private readonly exited: Promise<void>;

  constructor(init: WorkerInit | ProducerInit) {
    // VIGIL_BENCH_CPU_PROF=DIR writes a CPU profile of every child (worker, producer) there.
    const prof = process.env["VIGIL_BENCH_CPU_PROF"];
    const flags = prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [];
    this.proc = spawnGroup([process.execPath, ...flags, "--import", "tsx", ENTRY, JSON.stringify(init)], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.proc.on("error", (err) => this.push({ t: "error", message: `could not start: ${err.message}` }));
    this.proc.on("message", (m) => this.push(m as ChildMessage));
    this.exited = new Promise((resolve) => {
      this.proc.on("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : 0);
        this.push({ t: "error", message: `child exited (${signal ?? `code ${code}`})` });
        resolve();
      });
    });
  }

  private push(m: ChildMessage): void {
    this.inbox.push(m);
    this.waiter?.();
  }

  send(m: ParentMessage): void {
    if (this.proc.connected) this.proc.send(m);
  }

  /** The next message of type `t`; an `error` message or the deadline rejects. */
  async next<T extends ChildMessage["t"]>(t: T, timeoutMs: number): Promise<Extract<ChildMessage, { t: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.t === t || m.t === "error");
      if (i >= 0) {
        const m = this.inbox.splice(i, 1)[0]!;
        if (m.t === "error") throw new Error(m.message);
        return m as Extract<ChildMessage, { t: T }>;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${t}" from the ${this.proc.pid} child within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  /** Asks the child to close its connections and exit; kills its group if it does not. */
  async stop(graceMs: number): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.send({ t: "stop" });
    const timer = setTimeout(() => killGroup(this.proc.pid, "SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Immediate SIGKILL of the whole group (global deadline, Ctrl-C). */
  kill(): void {
    if (this.exitCode === undefined) killGroup(this.proc.pid, "SIGKILL");
  }
}

/**
 * Jobs/s of one worker child draining `n` jobs already enqueued on `target` (a targets.ts
 * key) at concurrency `concurrency`; `capMs` bounds its start and, twice over, the drain.
 */
export async function drainInChild(target: string, ctx: TargetCtx, n: number, concurrency: number, capMs: number): Promise<number> {
  const w = new Child({ role: "worker", target, ctx, concurrency, mode: "drain", n, capMs });
  try {
    await w.next("ready", capMs);
    const r = await w.next("drained", 2 * capMs);
    return (r.done / r.ms) * 1000;
  } finally {
    await w.stop(15_000);
  }
}
