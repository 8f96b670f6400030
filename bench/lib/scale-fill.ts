/**
 * Stores of N finished jobs for bench/scale, made in seconds with set-based SQL instead of
 * N enqueue → claim → complete round trips. The rows look like what the store writes (three
 * queues, a 100-byte payload, a result; 1 % dead with one failed attempt in their history;
 * finish times spread evenly over the last 10 days, each run taking 4 ms), and the counters
 * the store keeps are kept as it keeps them: the rows go into `job_history`, where finished
 * jobs live (SQLite migration 10, PostgreSQL 12); SQLite counts completed jobs in
 * `queue_totals` and completed and dead ones per minute in `job_minutes`, failed attempts in
 * `job_failures`; PostgreSQL the same in `job_counts`, `job_minutes` and `job_failures`
 * (shard 0). The rows carry no idempotency key. Then, as
 * retention does in a store that has run for days, per-minute counts and failures older than
 * two days are folded into hours (`store.prune({ foldBefore })`, the store's own code).
 */
import { rmSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { openStore } from "../../src/store/open.js";
import { MINUTES_KEPT_MS } from "../../src/store/rollups.js";
import { PG_URL, dropSchema, freshSchema, pgQuery } from "./pg.js";

export const QUEUES = ["outline", "implement", "qa"] as const;
/** Finish times are spread evenly over this span, ending now. */
export const SPREAD_MS = 10 * 86_400_000;

export interface ScaleStore {
  engine: "sqlite" | "postgres";
  /** What `--store` takes (a SQLite path, or a PostgreSQL URL naming the schema). */
  url: string;
  /** SQLite: the file; PostgreSQL: the schema. */
  file?: string;
  schema?: string;
}

/** Opens (and so migrates) a new empty store. */
export async function createStore(engine: "sqlite" | "postgres", dir: string, label: string): Promise<ScaleStore> {
  const s: ScaleStore =
    engine === "sqlite"
      ? { engine, url: `${dir}/${label}.db`, file: `${dir}/${label}.db` }
      : (() => {
          const schema = freshSchema(`scale_${label}`);
          return { engine, url: `${PG_URL}?schema=${schema}`, schema };
        })();
  const store = await openStore(s.engine === "sqlite" ? `sqlite:${s.file}` : s.url);
  await store.close();
  return s;
}

export async function destroyStore(s: ScaleStore): Promise<void> {
  if (s.schema) await dropSchema(s.schema);
  if (s.file) for (const f of [s.file, `${s.file}-wal`, `${s.file}-shm`]) rmSync(f, { force: true });
}

/** Bytes the store takes on disk (SQLite: file and WAL; PostgreSQL: the schema's relations). */
export async function storeBytes(s: ScaleStore): Promise<number> {
  if (s.file) {
    let n = 0;
    for (const f of [s.file, `${s.file}-wal`]) n += statSync(f, { throwIfNoEntry: false })?.size ?? 0;
    return n;
  }
  const rows = await pgQuery<{ n: string }>(
    `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS n FROM pg_class c
     JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = $1 AND c.relkind = 'r'`,
    [s.schema],
  );
  return Number(rows[0]?.n ?? 0);
}

/** The columns every filled row gets, from a row number `i` in 1..n and the `now` parameter. */
function columns(i: string, n: string, now: string, int: string): string {
  // Whole milliseconds, as the store writes them (SQLite would keep a fraction).
  const finished = `CAST(${now} - ((${n} - ${i}) * ${SPREAD_MS}) / ${n} AS ${int})`;
  return `CASE (${i}) % 3 WHEN 0 THEN 'outline' WHEN 1 THEN 'implement' ELSE 'qa' END,
    CASE WHEN (${i}) % 100 = 0 THEN 'dead' ELSE 'completed' END,
    '{"i":' || (${i}) || ',"text":"' || '${"x".repeat(90)}' || '"}',
    CASE WHEN (${i}) % 100 = 0 THEN NULL ELSE '{"ok":true}' END,
    CASE WHEN (${i}) % 100 = 0 THEN 'boom' ELSE NULL END,
    1, CASE WHEN (${i}) % 100 = 0 THEN 1 ELSE 5 END,
    ${finished} - 10, ${finished} - 10, ${finished} - 4, ${finished}`;
}

const COLS = "queue, state, payload, result, error, attempt, max_attempts, run_at, created_at, started_at, finished_at, history";

/** Adds `n` finished jobs to the store. */
export async function fill(s: ScaleStore, n: number): Promise<void> {
  if (n === 0) return;
  const now = Date.now();
  if (s.engine === "sqlite") fillSqlite(s.file!, n, now);
  else await fillPostgres(s.schema!, n, now);
  const store = await openStore(s.engine === "sqlite" ? `sqlite:${s.file}` : s.url);
  try {
    await store.prune({ foldBefore: now - MINUTES_KEPT_MS, batch: 5000 });
  } finally {
    await store.close();
  }
  if (s.engine === "sqlite") checkpoint(s.file!);
  else await pgQuery(`VACUUM ANALYZE "${s.schema}".jobs, "${s.schema}".job_history, "${s.schema}".job_minutes, "${s.schema}".job_failures, "${s.schema}".job_hours`);
}

function checkpoint(file: string): void {
  const db = new Database(file);
  try {
    db.pragma("wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
}

function fillSqlite(file: string, n: number, now: number): void {
  const db = new Database(file);
  try {
    db.pragma("busy_timeout = 5000");
    const history = `CASE WHEN i % 100 = 0 THEN json_array(json_object('attempt', 1, 'outcome', 'error', 'message', 'boom', 'at', CAST(@now - ((@n - i) * ${SPREAD_MS}) / @n AS INTEGER) - 4)) ELSE '[]' END`;
    const step = 250_000;
    for (let from = 1; from <= n; from += step) {
      const to = Math.min(n, from + step - 1);
      db.transaction(() => {
        db.prepare(
          `WITH RECURSIVE c(i) AS (SELECT @from UNION ALL SELECT i + 1 FROM c WHERE i < @to)
           INSERT INTO job_history (${COLS}) SELECT ${columns("i", "@n", "@now", "INTEGER")}, ${history} FROM c`,
        ).run({ from, to, n, now });
        // As the completing transaction does (jobs-sql.ts countCompleted).
        db.prepare(
          `INSERT INTO queue_totals (queue, completed)
           SELECT queue, count(*) FROM job_history WHERE id > (SELECT coalesce(max(id), 0) FROM job_history) - @k AND state = 'completed' GROUP BY queue
           ON CONFLICT(queue) DO UPDATE SET completed = completed + excluded.completed`,
        ).run({ k: to - from + 1 });
      }).immediate();
    }
    // Per-minute counts and failed attempts (migration 4), as completions and failures add
    // them; absent in stores of older versions.
    const minutes = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'job_minutes'").get();
    if (minutes) {
      db.prepare(
        `INSERT INTO job_minutes (minute, queue, completed, dead)
         SELECT finished_at / 60000, queue, sum(state = 'completed'), sum(state = 'dead') FROM job_history
         WHERE state IN ('completed', 'dead') AND finished_at IS NOT NULL GROUP BY 1, 2
         ON CONFLICT(minute, queue) DO UPDATE SET completed = completed + excluded.completed, dead = dead + excluded.dead`,
      ).run();
      db.prepare(
        `INSERT INTO job_failures (at, queue)
         SELECT json_extract(h.value, '$.at'), j.queue FROM job_history j, json_each(j.history) h WHERE j.history <> '[]'`,
      ).run();
    }
    db.pragma("wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
}

/** Finished jobs go where the store keeps them, job_history, with ids from the one sequence of both tables. */
async function fillPostgres(schema: string, n: number, now: number): Promise<void> {
  const S = `"${schema}"`;
  const history = `CASE WHEN i % 100 = 0 THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'outcome', 'error', 'message', 'boom', 'at', $2::bigint - (($1::bigint - i) * ${SPREAD_MS}) / $1::bigint)) ELSE '[]'::jsonb END`;
  const step = 250_000;
  for (let from = 1; from <= n; from += step) {
    const to = Math.min(n, from + step - 1);
    await pgQuery(
      `INSERT INTO ${S}.job_history (id, ${COLS}) SELECT nextval('${S}.jobs_id_seq'), ${columns("i", "$1::bigint", "$2::bigint", "bigint")}, ${history}
       FROM generate_series($3::bigint, $4::bigint) AS i`,
      [n, now, from, to],
    );
  }
  // As the completing, failing and dying statements count them (jobs-sql.ts).
  await pgQuery(
    `INSERT INTO ${S}.job_counts (queue, shard, completed) SELECT queue, 0, count(*) FROM ${S}.job_history WHERE state = 'completed' GROUP BY queue
     ON CONFLICT (queue, shard) DO UPDATE SET completed = ${S}.job_counts.completed + EXCLUDED.completed`,
  );
  await pgQuery(
    `INSERT INTO ${S}.job_minutes (minute, queue, shard, completed, dead)
     SELECT finished_at / 60000, queue, 0, count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'dead')
     FROM ${S}.job_history WHERE state IN ('completed', 'dead') GROUP BY 1, 2
     ON CONFLICT (minute, queue, shard) DO UPDATE SET completed = ${S}.job_minutes.completed + EXCLUDED.completed,
       dead = ${S}.job_minutes.dead + EXCLUDED.dead`,
  );
  await pgQuery(
    `INSERT INTO ${S}.job_failures (at, queue)
     SELECT (h->>'at')::bigint, j.queue FROM ${S}.job_history j, jsonb_array_elements(j.history) h WHERE j.history <> '[]'`,
  );
}

export { PG_URL };
