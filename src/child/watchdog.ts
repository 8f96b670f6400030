/**
 * The watchdog: a `worker_threads` thread that, when the main event loop is blocked (a
 * handler stuck in `for (;;) {}`, a synchronous read that never returns), captures the
 * main thread's JavaScript stack and writes it to a file, so the incident says *where* the
 * worker hung, not only that it did. No native addon: the thread opens an inspector
 * session on the main thread (`connectToMainThread`), enables the debugger while the main
 * thread is still healthy (a blocked thread could not answer), and once the loop has not
 * beaten for `blockedAfterMs`, sends `Debugger.pause`. V8 services that from inside the busy
 * loop; `Debugger.paused` brings the call frames, the thread writes them with its own
 * synchronous file write (not console: a worker thread's console goes through the blocked
 * main thread), then resumes the main thread.
 *
 * For a TypeScript handler the file and function are right, but line and column refer to
 * the code tsx compiled it to.
 *
 * Cost of the enabled debugger, measured with `npm run bench -- watchdog` on the shared
 * 2-core machine (20k no-op jobs drained by one SQLite worker at concurrency 50, debugger
 * off and on alternating, medians of 4–6 runs, three sessions): CPU time per job +0.4 %,
 * +0.9 % and +1.6 % (33–35 µs a job either way); wall-clock drain rate −1 %, −5 % and
 * −17 %, inside the spread of single drains on this busy machine (5.9k–18k jobs/s); idle
 * CPU 0.08 % → 0.18–0.49 % (the thread's and the beat's four wake-ups a second). Cheap
 * enough that `vigil worker` enables it whenever the supervisor names a stack file.
 */
import { readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { BlockedStack } from "./protocol.js";

export interface WatchdogOptions {
  /** Where the blocked stack is written as JSON (`BlockedStack`), replaced atomically. */
  file: string;
  /**
   * The main loop is declared blocked after not beating this long (default 1.5 s). The
   * supervisor's stall verdict comes at `stallAfter` (5 s); capturing well before it means
   * the stack is on disk when the incident is written. Much lower would pause healthy
   * loops that are just busy with a big synchronous chunk or a long GC.
   */
  blockedAfterMs?: number;
  /**
   * How often the main loop beats and the thread checks (default 250 ms): fine enough to
   * catch a block within ~0.25 s of the threshold; four cheap wake-ups a second when idle.
   */
  tickMs?: number;
}

/** The thread's code (CommonJS, evaluated), so it runs the same from src/ and dist/. */
const THREAD_CODE = `
const { parentPort, workerData } = require("node:worker_threads");
const inspector = require("node:inspector");
const fs = require("node:fs");
const beat = new BigInt64Array(workerData.sab);
const lastBeat = () => Number(Atomics.load(beat, 0));
const monoMs = () => Number(process.hrtime.bigint() / 1000000n);
const scripts = new Map();
const session = new inspector.Session();
session.connectToMainThread();
// TypeScript handlers load through tsx, as a data: URL naming the file in "filePath=" or
// as a file URL with a namespace query; either way the stack names the file itself.
const cleanUrl = (u) => {
  if (u.startsWith("data:")) {
    const m = /[?&]filePath=([^&#]+)$/.exec(u);
    return m ? "file://" + decodeURIComponent(m[1]).replace(/\\?namespace=.*$/, "") : u.slice(0, 200);
  }
  return u.replace(/\\?(tsx-)?namespace=[^#]*$/, "");
};
session.on("Debugger.scriptParsed", (m) => { if (m.params.url) scripts.set(m.params.scriptId, cleanUrl(m.params.url)); });
let capturing = false;
let capturedBeat = -1;
session.on("Debugger.paused", (m) => {
  try {
    const last = lastBeat();
    const stack = {
      pid: process.pid,
      capturedAt: Date.now(),
      blockedForMs: Math.max(0, monoMs() - last),
      frames: (m.params.callFrames || []).map((f) => ({
        functionName: f.functionName || "(anonymous)",
        url: scripts.get(f.location.scriptId) || cleanUrl(f.url || ""),
        line: f.location.lineNumber + 1,
        column: (f.location.columnNumber || 0) + 1,
      })),
    };
    const tmp = workerData.file + "." + process.pid + ".tmp";
    fs.writeFileSync(tmp, JSON.stringify(stack, null, 2) + "\\n");
    fs.renameSync(tmp, workerData.file);
  } catch (err) {
    parentPort.postMessage({ t: "watchdog-error", message: String(err && err.message || err) });
  } finally {
    session.post("Debugger.resume", () => { capturing = false; });
  }
});
session.post("Debugger.enable", {}, (err) => {
  if (err) parentPort.postMessage({ t: "watchdog-error", message: String(err.message || err) });
  else parentPort.postMessage({ t: "watchdog-ready" });
});
const timer = setInterval(() => {
  const last = lastBeat();
  const blocked = monoMs() - last;
  if (blocked < workerData.blockedAfterMs) return;
  // One capture per blocked stretch: the beat it was blocked at is remembered.
  if (capturing || capturedBeat === last) return;
  capturing = true;
  capturedBeat = last;
  session.post("Debugger.pause", (err) => { if (err) capturing = false; });
}, workerData.tickMs);
parentPort.on("message", (m) => {
  if (m && m.t === "stop") {
    clearInterval(timer);
    try { session.disconnect(); } catch {}
    parentPort.close();
  }
});
`;

/** Runs the watchdog thread and the main-loop beat it watches. */
export class Watchdog {
  private thread: Worker | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  /**
   * The main loop's last beat, shared with the thread: ms on the machine's monotonic clock
   * (`process.hrtime`, the same in both threads; `performance.now()` is not), so a
   * wall-clock step is not taken for a blocked loop.
   */
  private readonly beat = new BigInt64Array(new SharedArrayBuffer(8));
  private readyPromise: Promise<void> | undefined;

  constructor(
    private readonly opts: WatchdogOptions,
    private readonly onError: (message: string) => void = () => {},
  ) {}

  /** Starts the thread; resolves once the debugger is enabled (or failed to be). */
  start(): Promise<void> {
    if (this.readyPromise) return this.readyPromise;
    const tickMs = this.opts.tickMs ?? 250;
    this.bump();
    this.beatTimer = setInterval(() => this.bump(), tickMs);
    this.beatTimer.unref();
    const thread = new Worker(THREAD_CODE, {
      eval: true,
      workerData: {
        sab: this.beat.buffer,
        file: this.opts.file,
        blockedAfterMs: this.opts.blockedAfterMs ?? 1500,
        tickMs,
      },
      // The thread has no business with the worker's stdin/stdout.
      stdin: false,
    });
    this.thread = thread;
    // The thread keeps its own loop alive with its interval; it must not keep the process.
    thread.unref();
    this.readyPromise = new Promise<void>((resolve) => {
      thread.on("message", (m: { t?: string; message?: string }) => {
        if (m?.t === "watchdog-ready") resolve();
        if (m?.t === "watchdog-error") {
          this.onError(m.message ?? "unknown");
          resolve();
        }
      });
      thread.on("error", (err) => {
        this.onError(err.message);
        resolve();
      });
      thread.on("exit", () => resolve());
    });
    return this.readyPromise;
  }

  /** Stops the thread and detaches the debugger (so exit does not wait for it). */
  async stop(): Promise<void> {
    clearInterval(this.beatTimer);
    const thread = this.thread;
    this.thread = undefined;
    if (!thread) return;
    const exited = new Promise<void>((resolve) => thread.once("exit", () => resolve()));
    thread.postMessage({ t: "stop" });
    // A thread that does not end within 1 s is terminated: stopping must never hang.
    const timer = setTimeout(() => void thread.terminate(), 1000);
    await exited;
    clearTimeout(timer);
  }

  private bump(): void {
    Atomics.store(this.beat, 0, process.hrtime.bigint() / 1_000_000n);
  }
}

/** Parses what the watchdog wrote; null when there is no (valid) file. */
export function parseBlockedStack(text: string): BlockedStack | null {
  try {
    const v = JSON.parse(text) as BlockedStack;
    return Array.isArray(v.frames) ? v : null;
  } catch {
    return null;
  }
}

/** The blocked stack a worker's watchdog wrote, if it belongs to this process's life (the supervisor reads it). */
export function readBlockedStack(path: string, pid: number, since: number): BlockedStack | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  const s = parseBlockedStack(text);
  return s && s.pid === pid && s.capturedAt >= since ? s : null;
}
