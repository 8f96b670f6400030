/**
 * Numbered, forward-only migrations of the SQLite store, bundled here so the runtime reads
 * no SQL files. Version N is `MIGRATIONS[N - 1]`; the applied version lives in
 * `vigil_meta(name = 'schema_version')`. Never edit a published migration: add one.
 */
import type Database from "better-sqlite3";
import { VigilError } from "../../core/errors.js";

export const MIGRATIONS: readonly string[] = [
  // 1: jobs, totals that survive pruning, trigger cursors, rejected records, incidents, locks.
  `
  CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    queue        TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    key          TEXT,
    payload      TEXT    NOT NULL,
    result       TEXT,
    error        TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    stalls       INTEGER NOT NULL DEFAULT 0,
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    parent_id    INTEGER,
    root_id      INTEGER,
    source       TEXT,
    worker_id    TEXT,
    token        TEXT,
    lease_until  INTEGER,
    history      TEXT    NOT NULL DEFAULT '[]'
  );
  -- claim: the next waiting jobs of a queue in claim order, without a temp b-tree
  CREATE INDEX jobs_claim ON jobs(queue, priority DESC, run_at, id) WHERE state = 'waiting';
  -- scheduled and failed jobs that have come due
  CREATE INDEX jobs_due ON jobs(run_at) WHERE state IN ('scheduled', 'failed');
  -- reapExpired and releaseWorker
  CREATE INDEX jobs_lease ON jobs(lease_until) WHERE state = 'active';
  CREATE INDEX jobs_worker ON jobs(worker_id) WHERE state = 'active';
  -- stats and list (covering; rowid order inside each queue/state)
  CREATE INDEX jobs_queue_state ON jobs(queue, state);
  -- prune and report
  CREATE INDEX jobs_finished ON jobs(state, finished_at) WHERE finished_at IS NOT NULL;
  CREATE INDEX jobs_root ON jobs(root_id) WHERE root_id IS NOT NULL;
  -- one live job per idempotency key
  CREATE UNIQUE INDEX jobs_key ON jobs(key) WHERE key IS NOT NULL AND state NOT IN ('dead', 'cancelled');

  CREATE TABLE queue_totals (
    queue     TEXT PRIMARY KEY,
    completed INTEGER NOT NULL DEFAULT 0,
    dead      INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0
  );

  CREATE TABLE trigger_cursors (
    trigger    TEXT PRIMARY KEY,
    cursor     TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  CREATE TABLE rejected_records (
    id      INTEGER PRIMARY KEY,
    trigger TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    sample  TEXT    NOT NULL,
    path    TEXT,
    offset  INTEGER,
    at      INTEGER NOT NULL
  );
  CREATE INDEX rejected_trigger ON rejected_records(trigger, id);

  CREATE TABLE incidents (
    id           INTEGER PRIMARY KEY,
    service      TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    cause        TEXT    NOT NULL,
    detected_at  INTEGER NOT NULL,
    recovered_at INTEGER,
    detail       TEXT    NOT NULL DEFAULT '{}'
  );
  CREATE INDEX incidents_detected ON incidents(detected_at);
  CREATE INDEX incidents_open ON incidents(service) WHERE recovered_at IS NULL;

  CREATE TABLE locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
  );
  `,
  // 2: fewer indexes to keep up on the hot path (enqueue → claim → complete now touches 5
  // index entries, not 9). Stats count waiting jobs from `jobs_claim`, active ones from
  // `jobs_lease` (few), completed ones from `queue_totals` (counted in the completing
  // transaction) and only the rest from `jobs_rest`. releaseWorker scans the small
  // active-only `jobs_lease` index instead of its own.
  `
  DROP INDEX jobs_worker;
  DROP INDEX jobs_queue_state;
  CREATE INDEX jobs_rest ON jobs(queue, state) WHERE state IN ('scheduled', 'failed', 'dead', 'cancelled');
  INSERT INTO queue_totals (queue, completed)
    SELECT queue, count(*) FROM jobs WHERE state = 'completed' GROUP BY queue
    ON CONFLICT(queue) DO UPDATE SET completed = completed + excluded.completed;
  `,
  // 3: report() counts failed attempts from the history of jobs that have one, by finish
  // time, without reading every job. Jobs that never failed (almost all) are not in it, so
  // the hot path does not maintain it.
  `
  CREATE INDEX jobs_failures ON jobs(finished_at) WHERE history <> '[]';
  `,
  // 4: each job's stall limit, stamped at enqueue from its queue's maxStalls (NULL: the
  // freeing call's limit for its queue, as before).
  `
  ALTER TABLE jobs ADD COLUMN max_stalls INTEGER;
  `,
  // 5: \`runs list --search\` finds root jobs by key prefix without a scan. Only keyed root
  // jobs are in it (trigger and enqueue roots), not the stage jobs they hand on.
  `
  CREATE INDEX jobs_run_key ON jobs(key, id) WHERE root_id IS NULL AND key IS NOT NULL;
  `,
  // 6: per-minute counts of completed and dead jobs, and one row per failed attempt (a
  // history entry: a failure, a stall, a cancel while running), so report() and the
  // dead-jobs health check read a few rows per minute of their window and an index of the
  // failures in it, instead of every job finished in it and its history (seconds at a
  // million jobs). Each is written in the transaction that completes, fails, stalls or
  // cancels the job; rows survive pruning. Seeded from the jobs the store still holds.
  `
  CREATE TABLE job_minutes (
    minute    INTEGER NOT NULL,
    queue     TEXT    NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    dead      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, queue)
  ) WITHOUT ROWID;
  INSERT INTO job_minutes (minute, queue, completed, dead)
    SELECT CAST(finished_at / 60000 AS INTEGER), queue, sum(state = 'completed'), sum(state = 'dead') FROM jobs
    WHERE state IN ('completed', 'dead') AND finished_at IS NOT NULL GROUP BY 1, 2;
  CREATE TABLE job_failures (
    id    INTEGER PRIMARY KEY,
    at    INTEGER NOT NULL,
    queue TEXT    NOT NULL
  );
  CREATE INDEX job_failures_at ON job_failures(at, queue);
  INSERT INTO job_failures (at, queue)
    SELECT json_extract(h.value, '$.at'), j.queue FROM jobs j, json_each(j.history) h WHERE j.history <> '[]';
  `,
  // 7: flow control. A queue's stored state (paused, and the last time its flow control
  // held a claim back and why), and the recent starts of queues (grp '') and groups with a
  // rate: one row per claim, pruned as it leaves the longest window.
  `
  CREATE TABLE queues (
    name        TEXT PRIMARY KEY,
    paused      INTEGER NOT NULL DEFAULT 0,
    paused_at   INTEGER,
    held_at     INTEGER,
    held_reason TEXT
  );
  CREATE TABLE queue_starts (
    queue TEXT    NOT NULL,
    grp   TEXT    NOT NULL,
    at    INTEGER NOT NULL,
    n     INTEGER NOT NULL
  );
  CREATE INDEX queue_starts_at ON queue_starts(queue, at);
  -- a handler's ctx.rateLimited(ms): the queue (grp '') or one group held until then
  CREATE TABLE queue_holds (
    queue  TEXT    NOT NULL,
    grp    TEXT    NOT NULL,
    until  INTEGER NOT NULL,
    reason TEXT    NOT NULL,
    PRIMARY KEY (queue, grp)
  );
  `,
  // 8: per-hour counts. Retention folds per-minute counts and failed attempts older than two
  // days into one row per hour and queue, so a 30-day report reads about 720 rows per queue
  // instead of 43,200 minutes and every failure of the month (see store/rollups.ts).
  `
  CREATE TABLE job_hours (
    hour      INTEGER NOT NULL,
    queue     TEXT    NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    dead      INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, queue)
  ) WITHOUT ROWID;
  `,
  // 9: each job's group value (its queue's `group.by` field), set when it is enqueued, so a
  // grouped claim counts a group's active jobs from an index and leaves full groups out of
  // its scan without reading payloads. NULL: enqueued without the queue's group known; a
  // store opened with the config fills those (sqlite/store.ts, fillGroups).
  `
  ALTER TABLE jobs ADD COLUMN grp TEXT;
  CREATE INDEX jobs_grp_active ON jobs(queue, grp) WHERE state = 'active';
  `,
  // 10: finished jobs (completed, dead, cancelled) live in `job_history`, moved there by the
  // transaction that finishes them, so `jobs` holds only unfinished ones and claims,
  // renewals and the claim indexes do not grow with history. Stop every process before it
  // runs: an older one's statements know a single jobs table (docs/store.md, Upgrading).
  // Quick at any size: the old
  // `jobs` is renamed (no row is copied) and keeps the indexes history reads use, under
  // their old names (SQLite cannot rename an index; rebuilding them would read every row):
  // jobs_finished, jobs_root, jobs_rest, jobs_failures, jobs_run_key and jobs_key (which
  // holds the keys of completed jobs). Only the unfinished rows move, found through the
  // claim-side partial indexes, which are then dropped (empty by then) and made again on
  // the new table. The new `jobs` has the same columns in the same order. Its ids are not
  // SQLite's max(rowid) + 1, which would hand out again the id of a job just moved to
  // history: an enqueue gives one above the largest id of both tables and of pruned jobs
  // (jobs-sql.ts, NEXT_ID; `job_id_floor`, which pruning raises, starts at the largest id).
  `
  ALTER TABLE jobs RENAME TO job_history;
  CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    queue        TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    key          TEXT,
    payload      TEXT    NOT NULL,
    result       TEXT,
    error        TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    stalls       INTEGER NOT NULL DEFAULT 0,
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    parent_id    INTEGER,
    root_id      INTEGER,
    source       TEXT,
    worker_id    TEXT,
    token        TEXT,
    lease_until  INTEGER,
    history      TEXT    NOT NULL DEFAULT '[]',
    max_stalls   INTEGER,
    grp          TEXT
  );
  INSERT INTO vigil_meta (name, value) SELECT 'job_id_floor', coalesce(max(id), 0) FROM job_history;
  INSERT INTO jobs SELECT * FROM job_history INDEXED BY jobs_claim WHERE state = 'waiting';
  INSERT INTO jobs SELECT * FROM job_history INDEXED BY jobs_lease WHERE state = 'active';
  INSERT INTO jobs SELECT * FROM job_history INDEXED BY jobs_due WHERE state IN ('scheduled', 'failed');
  DELETE FROM job_history WHERE id IN (SELECT id FROM jobs);
  DROP INDEX jobs_claim;
  DROP INDEX jobs_due;
  DROP INDEX jobs_lease;
  DROP INDEX jobs_grp_active;
  CREATE INDEX jobs_claim ON jobs(queue, priority DESC, run_at, id) WHERE state = 'waiting';
  CREATE INDEX jobs_due ON jobs(run_at) WHERE state IN ('scheduled', 'failed');
  CREATE INDEX jobs_lease ON jobs(lease_until) WHERE state = 'active';
  CREATE INDEX jobs_grp_active ON jobs(queue, grp) WHERE state = 'active';
  -- stats: scheduled and failed per queue (waiting and active come from the indexes above)
  CREATE INDEX jobs_live_rest ON jobs(queue, state) WHERE state IN ('scheduled', 'failed');
  -- runs: the live jobs of a pipeline run, and live keyed root jobs for \`runs list --search\`
  CREATE INDEX jobs_live_root ON jobs(root_id) WHERE root_id IS NOT NULL;
  CREATE INDEX jobs_live_run_key ON jobs(key, id) WHERE root_id IS NULL AND key IS NOT NULL;
  -- one unfinished job per idempotency key; enqueue also looks in job_history's jobs_key
  -- (completed jobs keep their key) inside its write transaction (see job-writes.ts)
  CREATE UNIQUE INDEX jobs_live_key ON jobs(key) WHERE key IS NOT NULL;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Reads the applied schema version; 0 when `vigil_meta` has no version row. */
export function schemaVersion(db: Database.Database): number {
  const row = db.prepare("SELECT value FROM vigil_meta WHERE name = 'schema_version'").get() as
    | { value: string }
    | undefined;
  return row ? Number(row.value) : 0;
}

/** The error for a file written by a newer Vigil. */
export function tooNewError(path: string, version: number): VigilError {
  return new VigilError(
    "STORE_TOO_NEW",
    `store ${path} has schema version ${version}, newer than this Vigil understands (${SCHEMA_VERSION}); upgrade Vigil, or point \`store:\` at another file`,
  );
}

/**
 * Applies pending migrations under the write lock (BEGIN IMMEDIATE), so processes opening
 * one fresh file at once run each migration exactly once; a process that finds the work
 * already done returns 0. Returns how many migrations this call ran. A store already at
 * this version is recognised by a read, without taking the write lock: opening it never
 * waits behind another process's long write.
 */
export function migrate(db: Database.Database, path: string): number {
  if (isCurrent(db, path)) return 0;
  const run = db.transaction((): number => {
    db.exec("CREATE TABLE IF NOT EXISTS vigil_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
    const current = schemaVersion(db);
    if (current > SCHEMA_VERSION) throw tooNewError(path, current);
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v - 1]!);
    if (current < SCHEMA_VERSION) {
      db.prepare(
        "INSERT INTO vigil_meta (name, value) VALUES ('schema_version', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
      ).run(String(SCHEMA_VERSION));
    }
    return SCHEMA_VERSION - current;
  });
  return run.immediate();
}

/** Whether the file is at this version already (a read; throws for a newer one). */
function isCurrent(db: Database.Database, path: string): boolean {
  const meta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vigil_meta'").get();
  if (!meta) return false;
  const version = schemaVersion(db);
  if (version > SCHEMA_VERSION) throw tooNewError(path, version);
  return version === SCHEMA_VERSION;
}
