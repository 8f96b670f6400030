/**
 * The small slice of `pg` the store uses: one-statement queries and short transactions,
 * with driver errors mapped to Vigil errors. Hot statements are named so each connection
 * parses and plans them once.
 */
import type pg from "pg";
import { toStoreError } from "./connection.js";

/**
 * A statement's values, or how to build them once the statement holds its connection:
 * values that must not predate a wait for the pool (a claim's time, job-claim.ts).
 */
export type Values = unknown[] | (() => unknown[]);

/** Something that runs SQL: the pool, or one client inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: Values, name?: string): Promise<R[]>;
}

const valuesOf = (values: Values): unknown[] => (typeof values === "function" ? values() : values);

/** SQLSTATEs worth one more try: serialization failure and deadlock. */
const RETRY_STATES = new Set(["40001", "40P01"]);
const TX_TRIES = 3;

function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && RETRY_STATES.has(code);
}

export class Db implements Queryable {
  constructor(
    readonly pool: pg.Pool,
    private readonly location: string,
  ) {}

  /**
   * One statement, one round trip, its own transaction. A statement chosen as a deadlock
   * victim rolled back whole, so it is simply run again (a completion batch and a renewal
   * batch of one worker touch the same rows at once). Values given as a function are
   * built once a pooled connection is held, and again for each try.
   */
  async query<R extends pg.QueryResultRow>(text: string, values: Values = [], name?: string): Promise<R[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (typeof values !== "function") return (await this.pool.query<R>(name ? { name, text, values } : { text, values })).rows;
        return await this.onClient<R>(text, values, name);
      } catch (err) {
        if (attempt < TX_TRIES && isRetryable(err)) continue;
        throw toStoreError(err, this.location);
      }
    }
  }

  /** `pool.query`, its values built after the connection is acquired. */
  private async onClient<R extends pg.QueryResultRow>(text: string, values: () => unknown[], name?: string): Promise<R[]> {
    const client = await this.pool.connect();
    try {
      const v = values();
      const rows = (await client.query<R>(name ? { name, text, values: v } : { text, values: v })).rows;
      client.release();
      return rows;
    } catch (err) {
      // As `pool.query` does: a connection whose statement failed is not reused.
      client.release(err as Error);
      throw err;
    }
  }

  /** Runs `fn` in a transaction on one client; retried on deadlock or serialization failure. */
  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw toStoreError(err, this.location);
      }
      let broken: Error | undefined;
      try {
        await client.query("BEGIN");
        const q: Queryable = {
          query: async <R extends pg.QueryResultRow>(text: string, values: Values = [], name?: string) => {
            const v = valuesOf(values);
            return (await client.query<R>(name ? { name, text, values: v } : { text, values: v })).rows;
          },
        };
        const out = await fn(q);
        await client.query("COMMIT");
        return out;
      } catch (err) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackErr) {
          // The connection itself is gone: hand it back broken so the pool discards it.
          broken = rollbackErr as Error;
        }
        if (attempt < TX_TRIES && isRetryable(err)) continue;
        throw toStoreError(err, this.location);
      } finally {
        client.release(broken);
      }
    }
  }
}
