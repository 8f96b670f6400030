/**
 * LISTEN on the schema's channel with one dedicated connection (never a pooled one: a
 * pooled client would be handed to queries and lose its LISTEN). When the connection
 * drops (a server restart, a network blip) it reconnects with backoff, and on every
 * (re)connect it announces the queues that have due jobs, since notifications sent while
 * it was away are lost.
 */
import pg from "pg";
import { backoffDelay, type BackoffPolicy } from "../../core/backoff.js";
import { clientConfig, quoteIdent, type PgTarget } from "./connection.js";

/**
 * Reconnect backoff: the first retry after 250 ms (a restart takes a second or two), then
 * doubling up to 5 s so a long outage costs one connection attempt every few seconds.
 * Workers keep polling meanwhile, so a slower reconnect only delays wake-ups, not work.
 */
const RECONNECT: BackoffPolicy = { baseMs: 250, maxMs: 5_000 };

export type QueueListener = (queue: string) => void;

/** One LISTEN connection for one store; `emit` hears each queue name notified. */
export class NotifyListener {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private stopped = false;

  constructor(
    private readonly target: PgTarget,
    private readonly channel: string,
    /** Queues with due jobs, asked after each (re)connect. */
    private readonly dueQueues: () => Promise<string[]>,
    private readonly emit: QueueListener,
  ) {}

  start(): void {
    this.stopped = false;
    if (!this.client && !this.timer) void this.connect();
  }

  private async connect(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    const client = new pg.Client(clientConfig(this.target));
    this.client = client;
    client.on("error", () => this.lost(client));
    client.on("end", () => this.lost(client));
    client.on("notification", (msg) => {
      if (msg.channel === this.channel && msg.payload) this.emit(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.channel)}`);
    } catch {
      this.lost(client);
      return;
    }
    if (this.client !== client) return;
    this.failures = 0;
    try {
      for (const queue of await this.dueQueues()) this.emit(queue);
    } catch {
      // The pool will report the outage on its next query; polling covers the gap.
    }
  }

  /** Drops a broken connection and schedules the next attempt (once per connection). */
  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    client.end().catch(() => {});
    if (this.stopped) return;
    const delay = backoffDelay(RECONNECT, ++this.failures);
    this.timer = setTimeout(() => void this.connect(), delay);
    // A pending reconnect must not keep a process alive that has nothing else to do.
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const client = this.client;
    this.client = null;
    if (client) await client.end().catch(() => {});
  }
}
