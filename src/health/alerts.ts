/**
 * Alert delivery: the `AlertSink` the supervisor emits `AlertEvent`s into.
 *
 * `emit()` is synchronous, never throws and never waits on the network or a child process:
 * it decides whether the event is worth a message (the rule below), then queues the message
 * on each configured channel (`webhook`, `command`), which delivers in the background with a
 * timeout and retries with backoff. A receiver that is down or hangs costs the supervisor
 * nothing but a bounded queue.
 *
 * The rule (deduplication and rate limiting, per subject):
 * - An **episode** opens for a subject (a service, or `health`) at its first problem event
 *   (`stall`, `crash`, `crash-loop`, `memory`, `probe`, `health`). The first event of each
 *   kind in an episode is sent at once — so escalation (`crash` → `crash-loop`, `health`
 *   degraded → unhealthy) is always heard. Further events of a kind already sent are
 *   suppressed and counted, unless `repeatAfterMs` (default 1 h) passed since that kind was
 *   last sent: then one reminder goes out carrying the count.
 * - A `recovered` event does not close the episode at once: the subject must stay quiet for
 *   `recoveryHoldMs` (default 30 s; `supervision.recoveredAfter` in vigil.yaml). A new
 *   problem within the hold means the service is flapping: the episode goes on and nothing
 *   is sent for the recovery. When the hold ends quietly, ONE `recovered` message is sent
 *   and the episode closes. A `recovered` for a subject with no open episode is dropped
 *   (nothing was alerted, nothing to take back).
 * - `job-dead` events (subject: the queue) have no recovery: at most one per queue per
 *   `repeatAfterMs`, the next one carrying how many were suppressed.
 * So a crash loop of 30 crashes, with a restart after each, sends one `crash`, one
 * `crash-loop` and, once the service stays up, one `recovered` — not sixty messages.
 */
import { backoffDelay, type BackoffPolicy } from "../core/backoff.js";
import { systemClock, type Clock } from "../core/clock.js";
import type { AlertConfig } from "../config/schema.js";
import { killGroup, spawnGroup } from "../os/process.js";
import type { AlertEvent, AlertSink } from "../core/status.js";
import { silentLogger, type Logger } from "../core/log.js";

/** What a channel receives (webhook body, command stdin): the event plus dedupe facts. */
export interface AlertMessage extends AlertEvent {
  /** Events of this subject and kind suppressed since the last message. */
  suppressed: number;
  /** ms since the epoch the episode began (equals `at` for a first alert). */
  since: number;
}

/** Tuning of the dedupe rule and of delivery; the defaults suit a supervisor. */
export interface AlertSinkOptions {
  clock?: Clock;
  logger?: Logger;
  /** Quiet time after `recovered` before the recovery is sent, in ms (default 30 s). */
  recoveryHoldMs?: number;
  /** A kind already sent in an open episode is sent again after this, in ms (default 1 h). */
  repeatAfterMs?: number;
  /** Messages queued per channel; the oldest are dropped beyond this (default 100). */
  maxQueue?: number;
  /** Delivery attempts per message and channel (default 5). */
  attempts?: number;
  /** Delay between attempts (default 1 s doubling to 30 s, with jitter). */
  retry?: BackoffPolicy;
}

/** Counters, for tests and `/metrics`. */
export interface AlertStats {
  emitted: number;
  sent: number;
  suppressed: number;
  delivered: number;
  failed: number;
  dropped: number;
}

/** The sink plus what operations code needs around it. */
export interface OpsAlertSink extends AlertSink {
  stats(): AlertStats;
  /** Resolves once every channel's queue is empty, or after `timeoutMs` (default 5 s). */
  flush(timeoutMs?: number): Promise<void>;
  /** Sends pending recoveries, waits up to `timeoutMs` (default 5 s) for delivery, stops. */
  close(timeoutMs?: number): Promise<void>;
}

const RETRY_DEFAULT: BackoffPolicy = { baseMs: 1000, maxMs: 30_000 };
const PROBLEM_KINDS = new Set(["stall", "crash", "crash-loop", "memory", "probe", "health"]);

interface Episode {
  since: number;
  /** kind key → ms the kind was last sent */
  sent: Map<string, number>;
  suppressed: Map<string, number>;
  hold: NodeJS.Timeout | null;
  recovery: AlertEvent | null;
}

/** Builds the sink for the `alerts:` section of the config (an empty list is valid). */
export function createAlertSink(configs: readonly AlertConfig[], opts: AlertSinkOptions = {}): OpsAlertSink {
  const clock = opts.clock ?? systemClock;
  const log = opts.logger ?? silentLogger;
  const holdMs = opts.recoveryHoldMs ?? 30_000;
  const repeatMs = opts.repeatAfterMs ?? 3_600_000;
  const counters: AlertStats = { emitted: 0, sent: 0, suppressed: 0, delivered: 0, failed: 0, dropped: 0 };
  const channels = configs.map((c) => new Channel(c, opts, counters, log));
  const episodes = new Map<string, Episode>();
  const jobDead = new Map<string, { last: number; suppressed: number }>();
  let closed = false;

  const send = (event: AlertEvent, suppressed: number, since: number): void => {
    counters.sent++;
    const msg: AlertMessage = { ...event, suppressed, since };
    for (const ch of channels) ch.push(msg);
  };

  const finishRecovery = (subject: string): void => {
    const ep = episodes.get(subject);
    if (!ep || !ep.recovery) return;
    if (ep.hold) clearTimeout(ep.hold);
    episodes.delete(subject);
    const total = [...ep.suppressed.values()].reduce((a, b) => a + b, 0);
    const ev = ep.recovery;
    send(
      {
        ...ev,
        detail: { ...ev.detail, kinds: [...ep.sent.keys()], downMs: Math.max(0, ev.at - ep.since) },
      },
      total,
      ep.since,
    );
  };

  const handle = (event: AlertEvent): void => {
    const now = clock.now();
    if (event.kind === "recovered") {
      const ep = episodes.get(event.subject);
      if (!ep) {
        // A problem this process never saw begin (an earlier supervisor run alerted it):
        // nothing here to hold or deduplicate against, so the recovery goes out as it is.
        if (event.detail?.earlierRun === true) send(event, 0, event.at);
        return;
      }
      ep.recovery = event;
      if (ep.hold) clearTimeout(ep.hold);
      // Hold the recovery: a service that fails again within it is flapping, and one
      // "recovered" followed by another "crash" a second later is noise, not news.
      ep.hold = setTimeout(() => finishRecovery(event.subject), holdMs);
      ep.hold.unref();
      return;
    }
    if (event.kind === "job-dead") {
      const prev = jobDead.get(event.subject);
      if (prev && now - prev.last < repeatMs) {
        prev.suppressed++;
        counters.suppressed++;
        return;
      }
      jobDead.set(event.subject, { last: now, suppressed: 0 });
      send(event, prev?.suppressed ?? 0, now);
      return;
    }
    if (!PROBLEM_KINDS.has(event.kind)) return;
    let ep = episodes.get(event.subject);
    if (!ep) {
      ep = { since: event.at, sent: new Map(), suppressed: new Map(), hold: null, recovery: null };
      episodes.set(event.subject, ep);
    }
    if (ep.hold) {
      clearTimeout(ep.hold);
      ep.hold = null;
    }
    ep.recovery = null;
    const key = kindKey(event);
    const last = ep.sent.get(key);
    if (last !== undefined && now - last < repeatMs) {
      ep.suppressed.set(key, (ep.suppressed.get(key) ?? 0) + 1);
      counters.suppressed++;
      return;
    }
    const suppressed = ep.suppressed.get(key) ?? 0;
    ep.sent.set(key, now);
    ep.suppressed.set(key, 0);
    send(event, suppressed, ep.since);
  };

  const flush = async (timeoutMs = 5000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (channels.some((c) => c.busy()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  return {
    emit(event: AlertEvent): void {
      if (closed) return;
      counters.emitted++;
      try {
        handle(event);
      } catch (err) {
        // The caller is the supervisor's loop: an alerting bug must never take it down.
        log.error({ err, event }, "alert handling failed");
      }
    },
    stats: () => ({ ...counters }),
    flush,
    async close(timeoutMs = 5000): Promise<void> {
      if (closed) return;
      for (const [subject, ep] of episodes) if (ep.recovery) finishRecovery(subject);
      for (const ep of episodes.values()) if (ep.hold) clearTimeout(ep.hold);
      closed = true;
      await flush(timeoutMs);
      for (const ch of channels) ch.stop();
    },
  };
}

function kindKey(event: AlertEvent): string {
  if (event.kind !== "health") return event.kind;
  const level = event.detail?.["status"];
  return typeof level === "string" ? `health:${level}` : "health";
}

/** One configured destination with its own queue, so a slow webhook never delays a command. */
class Channel {
  private readonly queue: { msg: AlertMessage; attempt: number }[] = [];
  private running = false;
  private readonly abort = new AbortController();
  private readonly maxQueue: number;
  private readonly attempts: number;
  private readonly retry: BackoffPolicy;

  constructor(
    private readonly config: AlertConfig,
    opts: AlertSinkOptions,
    private readonly counters: AlertStats,
    private readonly log: Logger,
  ) {
    this.maxQueue = opts.maxQueue ?? 100;
    this.attempts = opts.attempts ?? 5;
    this.retry = opts.retry ?? RETRY_DEFAULT;
  }

  busy(): boolean {
    return this.running || this.queue.length > 0;
  }

  push(msg: AlertMessage): void {
    if (this.abort.signal.aborted) return;
    if (this.queue.length >= this.maxQueue) {
      this.queue.shift();
      this.counters.dropped++;
    }
    this.queue.push({ msg, attempt: 0 });
    if (!this.running) void this.pump();
  }

  stop(): void {
    this.abort.abort();
    this.queue.length = 0;
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      // The message in flight leaves the queue first, so dropping the oldest queued
      // message when the queue is full never drops the one being delivered.
      for (let item = this.queue.shift(); item && !this.abort.signal.aborted; item = this.queue.shift()) {
        for (;;) {
          item.attempt++;
          try {
            await this.deliver(item.msg);
            this.counters.delivered++;
            break;
          } catch (err) {
            if (this.abort.signal.aborted) return;
            if (item.attempt >= this.attempts) {
              this.counters.failed++;
              this.log.error({ err, target: this.describe(), kind: item.msg.kind }, "alert not delivered; giving up");
              break;
            }
            this.log.warn({ err, target: this.describe(), attempt: item.attempt }, "alert delivery failed; will retry");
            await sleep(backoffDelay(this.retry, item.attempt), this.abort.signal);
          }
        }
      }
    } finally {
      this.running = false;
    }
  }

  private describe(): string {
    return "webhook" in this.config ? this.config.webhook : this.config.command.join(" ");
  }

  private deliver(msg: AlertMessage): Promise<void> {
    return "webhook" in this.config ? this.post(this.config, msg) : this.run(this.config, msg);
  }

  private async post(c: Extract<AlertConfig, { webhook: string }>, msg: AlertMessage): Promise<void> {
    const res = await fetch(c.webhook, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "vigil-alerts", ...c.headers },
      body: JSON.stringify(msg),
      // The timeout bounds a receiver that accepts the connection and never answers.
      signal: AbortSignal.any([AbortSignal.timeout(c.timeout), this.abort.signal]),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`webhook answered ${res.status}`);
  }

  private run(c: Extract<AlertConfig, { command: string[] }>, msg: AlertMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawnGroup(c.command, { stdio: ["pipe", "ignore", "pipe"] });
      let stderr = "";
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.abort.signal.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => {
        killGroup(child.pid, "SIGKILL");
        done(new Error("alert sink closed"));
      };
      // A notifier that hangs (a blocked network call, a prompt) is killed whole.
      const timer = setTimeout(() => {
        killGroup(child.pid, "SIGKILL");
        done(new Error(`alert command timed out after ${c.timeout} ms`));
      }, c.timeout);
      timer.unref();
      this.abort.signal.addEventListener("abort", onAbort);
      child.on("error", (err) => done(err));
      child.stdin?.on("error", () => {}); // EPIPE when the program exits without reading
      child.stderr?.on("data", (b: Buffer) => {
        stderr = (stderr + b.toString()).slice(-2000);
      });
      child.on("close", (code, signal) => {
        if (code === 0) done();
        else done(new Error(`alert command exited ${code ?? signal}: ${stderr.trim().slice(-300)}`));
      });
      child.stdin?.end(JSON.stringify(msg) + "\n");
    });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    // Retries must not keep a CLI or test process alive once everything else is done.
    t.unref();
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
