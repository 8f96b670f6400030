/**
 * What every verb of the PostgreSQL store runs on: the connection pool (db.ts) and the
 * statements of its schema, the refusal of writes when opened read-only, the LISTEN
 * connection shared by every subscriber (started with the first, stopped with the last;
 * listen.ts), and closing it all. The verbs themselves are in store.ts.
 */
import { systemClock, type Clock } from "../../core/clock.js";
import { VigilError } from "../../core/errors.js";
import { DEFAULT_ATTEMPTS, DEFAULT_MAX_PAYLOAD, type StoreOptions } from "../store.js";
import { createPool, quoteIdent, type PgTarget } from "./connection.js";
import { Db } from "./db.js";
import type * as w from "./job-writes.js";
import { jobStatements } from "./jobs-sql.js";
import { flowStatements } from "./flow.js";
import { NotifyListener } from "./listen.js";

/** The pool, the statements and the LISTEN subscription; `PostgresStore` (store.ts) adds the verbs. */
export abstract class PostgresStoreCore {
  readonly location: string;
  readonly clock: Clock;
  readonly db: Db;
  protected readonly S: string;
  protected readonly ctx: w.JobContext;
  private readonly listeners = new Set<(queue: string) => void>();
  private listener: NotifyListener | null = null;
  private closed = false;

  constructor(
    protected readonly target: PgTarget,
    protected readonly opts: StoreOptions,
  ) {
    this.location = target.location;
    this.clock = opts.clock ?? systemClock;
    this.S = quoteIdent(target.schema);
    // An idle connection's error (a server restart ends them all) needs no action: the pool
    // drops that connection, and the next query opens a new one or fails STORE_UNREACHABLE.
    const pool = createPool(target, () => {}, opts.readOnly === true);
    this.db = new Db(pool, target.location);
    this.ctx = {
      db: this.db,
      sql: jobStatements(this.S),
      clock: this.clock,
      channel: `${target.schema}:jobs`,
      maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      defaultAttempts: opts.defaultAttempts ?? DEFAULT_ATTEMPTS,
      queueMaxStalls: opts.queueMaxStalls,
      queueOnDuplicate: opts.queueOnDuplicate,
      queueGroupBy: opts.queueGroupBy,
      flow: flowStatements(this.S),
    };
  }

  protected writable(): void {
    if (this.opts.readOnly) throw new VigilError("BAD_INPUT", `store ${this.location} was opened read-only`);
  }

  /** Each queue's oldest claimable job (a verb of the store, job-reads.ts). */
  abstract oldestWaiting(): Promise<Record<string, number>>;

  subscribe(listener: (queue: string) => void): () => void {
    this.listeners.add(listener);
    if (!this.listener && !this.closed) {
      this.listener = new NotifyListener(
        this.target,
        this.ctx.channel,
        () => this.dueQueues(),
        (queue) => {
          for (const l of [...this.listeners]) l(queue);
        },
      );
      this.listener.start();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.listener) {
        void this.listener.stop();
        this.listener = null;
      }
    };
  }

  /** Queues with a job ready to claim now (told to listeners after a reconnect). */
  private async dueQueues(): Promise<string[]> {
    return Object.keys(await this.oldestWaiting());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    const listener = this.listener;
    this.listener = null;
    await listener?.stop();
    await this.db.pool.end().catch(() => {});
  }
}
