/**
 * The embedded ceiling: a bare better-sqlite3 job loop (WAL, synchronous NORMAL, one
 * connection, in the benchmark process) doing what a store must do per job — insert;
 * claim with a fresh lease token; complete with a fenced update — and nothing else.
 * Whatever Vigil on SQLite adds on top of this is the price of its features.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { preciseNow } from "./target.js";

const SCHEMA = `
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  run_at INTEGER NOT NULL,
  payload TEXT NOT NULL,
  result TEXT,
  token TEXT,
  lease_until INTEGER,
  attempt INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  finished_at INTEGER
);
-- Partial index in claim order: the claim walks it and never sorts (no temp b-tree).
CREATE INDEX jobs_due ON jobs (queue, priority DESC, run_at, id) WHERE state = 'waiting';
`;

/** Settings printed for the raw loop's rows. */
export const RAW_SETTINGS =
  "better-sqlite3, WAL, synchronous NORMAL, one connection in the benchmark process; " +
  "claim = SELECT due ids by index + UPDATE with a fresh token; complete = UPDATE … WHERE token = ?";

/** A fresh database file in a temp folder; `close()` removes it. */
export class RawSqlite {
  private readonly dir = mkdtempSync(join(tmpdir(), "vigil-bench-raw-"));
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly due: Database.Statement;
  private readonly lease: Database.Statement;
  private readonly finish: Database.Statement;

  constructor() {
    this.db = new Database(join(this.dir, "raw.db"));
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(SCHEMA);
    this.insert = this.db.prepare(
      "INSERT INTO jobs (queue, state, run_at, payload, created_at) VALUES ('bench', 'waiting', ?, ?, ?)",
    );
    this.due = this.db
      .prepare(
        "SELECT id FROM jobs WHERE queue = 'bench' AND state = 'waiting' AND run_at <= ? " +
          "ORDER BY priority DESC, run_at, id LIMIT ?",
      )
      .pluck();
    this.lease = this.db.prepare(
      "UPDATE jobs SET state = 'active', token = ?, lease_until = ?, attempt = attempt + 1 " +
        "WHERE id = ? AND state = 'waiting' RETURNING id, payload",
    );
    this.finish = this.db.prepare(
      "UPDATE jobs SET state = 'completed', result = 'null', finished_at = ?, token = NULL " +
        "WHERE id = ? AND token = ? AND state = 'active'",
    );
  }

  /** Inserts `n` jobs, `perTx` to a transaction; returns jobs/s (capped at `capMs`). */
  enqueue(n: number, perTx: number, capMs: number): { rate: number; done: number } {
    const tx = this.db.transaction((from: number, count: number) => {
      const now = Date.now();
      for (let i = from; i < from + count; i++) this.insert.run(now, JSON.stringify({ i, t: preciseNow() }), now);
    });
    const start = performance.now();
    let done = 0;
    while (done < n && performance.now() - start < capMs) {
      const count = Math.min(perTx, n - done);
      tx(done, count);
      done += count;
    }
    return { rate: (done / (performance.now() - start)) * 1000, done };
  }

  /**
   * Claims and completes every waiting job, `perTx` at a time: one transaction claims a
   * batch, a second completes it (as a worker would, with the handler in between).
   */
  drain(perTx: number, capMs: number): { rate: number; done: number } {
    const claim = this.db.transaction((max: number) => {
      const now = Date.now();
      const ids = this.due.all(now, max) as number[];
      const leased: { id: number; token: string }[] = [];
      for (const id of ids) {
        const token = randomUUID();
        const row = this.lease.get(token, now + 10_000, id) as { id: number; payload: string } | undefined;
        if (row) {
          JSON.parse(row.payload);
          leased.push({ id, token });
        }
      }
      return leased;
    });
    const complete = this.db.transaction((leased: { id: number; token: string }[]) => {
      const now = Date.now();
      for (const l of leased) {
        if (this.finish.run(now, l.id, l.token).changes !== 1) throw new Error(`raw loop lost job ${l.id}`);
      }
    });
    const start = performance.now();
    let done = 0;
    while (performance.now() - start < capMs) {
      const leased = claim(perTx);
      if (leased.length === 0) break;
      complete(leased);
      done += leased.length;
    }
    return { rate: (done / (performance.now() - start)) * 1000, done };
  }

  close(): void {
    this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
