/**
 * The job statements, prepared once per connection. Each is written so SQLite answers it
 * from an index (see migrations.ts): the claim is a SELECT of ids over `jobs_claim`
 * followed by UPDATEs by primary key, never `UPDATE … WHERE id IN (SELECT … LIMIT k)`,
 * which builds a temporary b-tree and ran about 20× slower.
 *
 * `jobs` holds unfinished jobs only; a statement that finishes a job is followed, in the
 * same transaction, by its move into `job_history` (`moveOut`, then `dropLive`), and a
 * retry moves it back (`moveBack`, `dropFinished`). A completion moves the row in one
 * INSERT … SELECT (`complete`) instead of an UPDATE and a copy.
 */
import type Database from "better-sqlite3";
import { CLAIM_COLUMNS, ROW_COLUMNS } from "./rows.js";

export type Stmt = Database.Statement<unknown[], unknown>;

/**
 * A new job's id: one above the largest id in `jobs`, in `job_history` and among pruned jobs
 * (`vigil_meta` row `job_id_floor`, raised by pruning), so no id is handed out twice, also
 * after `jobs` empties or retention deletes the newest jobs. Three reads of the end of a
 * b-tree; AUTOINCREMENT would do the same with a write of `sqlite_sequence` per INSERT, one
 * more page in every commit, which made a one-job enqueue about 12 % dearer in CPU (see
 * docs/store.md, "Ids").
 */
export const NEXT_ID = `1 + max(coalesce((SELECT max(id) FROM jobs), 0), coalesce((SELECT max(id) FROM job_history), 0),
  coalesce((SELECT CAST(value AS INTEGER) FROM vigil_meta WHERE name = 'job_id_floor'), 0))`;

/** The history entry a stall appends, built inside SQL so a whole batch is one UPDATE. */
const STALL_ENTRY = `json_patch('{}', json_object('attempt', attempt, 'outcome', 'stall',
  'message', @message, 'workerId', worker_id, 'at', @now))`;

/**
 * A stall is final after the job's own `max_stalls` stalls (set at enqueue from its queue's
 * `maxStalls`), else its queue's in `@limits` (see `stallLimits` in store.ts), or when the
 * stalled attempt was the last.
 */
const STALL_DEAD = `(stalls + 1 >= coalesce(max_stalls, json_extract(@limits, '$.queues."' || queue || '"'), json_extract(@limits, '$.default'))
  OR attempt >= max_attempts)`;

const STALL_SET = `
  stalls = stalls + 1,
  state = CASE WHEN ${STALL_DEAD} THEN 'dead' ELSE 'waiting' END,
  finished_at = CASE WHEN ${STALL_DEAD} THEN @now ELSE NULL END,
  error = @message,
  history = json_insert(history, '$[#]', ${STALL_ENTRY}),
  token = NULL, worker_id = NULL, lease_until = NULL`;

export type JobStatements = Record<
  "insert" | "byKey" | "byId" | "moveOut" | "dropLive" | "moveBack" | "dropFinished" | "promoteDue" | "nextDue" | "nextJobs" | "lease" | "renew" | "complete" | "rootOf" | "countCompleted" | "countMinute" | "countDead" | "countFailure" | "fail" | "release" | "cancel" | "retry" | "stallWorker" | "stallExpired",
  Stmt
>;

export function prepareJobStatements(db: Database.Database): JobStatements {
  const p = (sql: string): Stmt => db.prepare(sql);
  return {
    // The id is one above every id held in either table and every id pruned (NEXT_ID).
    insert: p(`INSERT INTO jobs (id, queue, state, key, payload, max_attempts, max_stalls, priority, run_at,
        created_at, parent_id, root_id, source, grp)
      VALUES (${NEXT_ID}, @queue, @state, @key, @payload, @maxAttempts, @maxStalls, @priority, @runAt,
        @now, @parentId, @rootId, @source, @grp)`),
    // The job holding a key: any unfinished one (jobs_live_key), else a completed one
    // (job_history's jobs_key, whose predicate the second WHERE repeats so it is used).
    // Read inside the enqueue's IMMEDIATE transaction: no other writer can take the key
    // between this read and the insert.
    byKey: p(`SELECT ${ROW_COLUMNS} FROM jobs WHERE key = @key
      UNION ALL SELECT ${ROW_COLUMNS} FROM job_history WHERE key = @key AND state NOT IN ('dead', 'cancelled')
      LIMIT 1`),
    byId: p(`SELECT ${ROW_COLUMNS} FROM jobs WHERE id = @id
      UNION ALL SELECT ${ROW_COLUMNS} FROM job_history WHERE id = @id`),
    moveOut: p(`INSERT INTO job_history (${ROW_COLUMNS}) SELECT ${ROW_COLUMNS} FROM jobs WHERE id = ?`),
    dropLive: p(`DELETE FROM jobs WHERE id = ?`),
    moveBack: p(`INSERT INTO jobs (${ROW_COLUMNS}) SELECT ${ROW_COLUMNS} FROM job_history WHERE id = ?`),
    dropFinished: p(`DELETE FROM job_history WHERE id = ?`),

    promoteDue: p(`UPDATE jobs SET state = 'waiting'
      WHERE state IN ('scheduled', 'failed') AND run_at <= ? RETURNING queue`),
    // Raw arrays of the columns a lease needs (see rows.ts, CLAIM_COLUMNS): building a full
    // row object per job, or UPDATE … RETURNING *, cost about half as much again per claim.
    nextJobs: p(`SELECT ${CLAIM_COLUMNS.join(", ")} FROM jobs WHERE state = 'waiting' AND queue = ?
      ORDER BY priority DESC, run_at, id LIMIT ?`).raw(),
    // When the earliest scheduled or failed job of some queues comes due (`jobs_due` in
    // run_at order; the queues as a JSON array).
    nextDue: p(`SELECT run_at FROM jobs WHERE state IN ('scheduled', 'failed')
      AND queue IN (SELECT value FROM json_each(?)) ORDER BY run_at LIMIT 1`).pluck(),
    // Positional parameters on the hot path: binding a named object costs a property
    // lookup per parameter per job. The token is the claim's random prefix plus the id.
    // (better-sqlite3 binds only plain `?` positionally: keep the argument order.)
    lease: p(`UPDATE jobs SET state = 'active', token = ? || id, worker_id = ?,
        attempt = attempt + 1, started_at = ?, lease_until = ?
      WHERE id = ? AND state = 'waiting'`),

    renew: p(`UPDATE jobs SET lease_until = @leaseUntil
      WHERE id = @id AND token = @token AND state = 'active'`),
    // The completed row written straight into job_history from the active one (the caller
    // then deletes it from jobs, `dropLive`). No RETURNING on the hot path (it costs a
    // temporary table per statement). worker_id stays: the worker that completed the job.
    complete: p(`INSERT INTO job_history (${ROW_COLUMNS})
      SELECT id, queue, 'completed', key, payload, ?, NULL, attempt, max_attempts, stalls,
        priority, run_at, created_at, started_at, ?, parent_id, root_id, source,
        worker_id, NULL, NULL, history, max_stalls, grp
      FROM jobs WHERE id = ? AND token = ? AND state = 'active'`),
    rootOf: p(`SELECT coalesce(root_id, id) FROM job_history WHERE id = ?`).pluck(),
    // Every completion is counted here, in its own transaction (stats read completed from
    // it): one statement per batch, given the completed (moved) ids as a JSON array.
    countCompleted: p(`INSERT INTO queue_totals (queue, completed)
      SELECT queue, count(*) FROM job_history WHERE id IN (SELECT value FROM json_each(?)) GROUP BY queue
      ON CONFLICT(queue) DO UPDATE SET completed = completed + excluded.completed`),
    // ... and in the minute it finished (job_minutes, for report()): the batch's ids again,
    // with the minute of the transaction's clock, which every completion in it was stamped with.
    countMinute: p(`INSERT INTO job_minutes (minute, queue, completed)
      SELECT ?, queue, count(*) FROM job_history WHERE id IN (SELECT value FROM json_each(?)) GROUP BY queue
      ON CONFLICT(minute, queue) DO UPDATE SET completed = completed + excluded.completed`),
    // Off the hot path: deaths, and each failed attempt (a history entry: a failure, a stall,
    // a cancel of a running job).
    countDead: p(`INSERT INTO job_minutes (minute, queue, dead) VALUES (?, ?, ?)
      ON CONFLICT(minute, queue) DO UPDATE SET dead = dead + excluded.dead`),
    countFailure: p(`INSERT INTO job_failures (at, queue) VALUES (?, ?)`),
    fail: p(`UPDATE jobs SET
        state = CASE WHEN @retryAt IS NULL THEN 'dead' ELSE 'failed' END,
        run_at = coalesce(@retryAt, run_at),
        finished_at = CASE WHEN @retryAt IS NULL THEN @now ELSE NULL END,
        error = @message,
        -- json_patch onto {} drops null members (no stack, no worker)
        history = json_insert(history, '$[#]', json_patch('{}', json_object('attempt', attempt,
          'outcome', @outcome, 'message', @message, 'stack', @stack, 'workerId', worker_id, 'at', @now))),
        token = NULL, worker_id = NULL, lease_until = NULL
      WHERE id = @id AND token = @token AND state = 'active' RETURNING *`),
    release: p(`UPDATE jobs SET state = 'waiting', attempt = max(attempt - 1, 0),
        token = NULL, worker_id = NULL, lease_until = NULL
      WHERE id = @id AND token = @token AND state = 'active' RETURNING queue`),
    cancel: p(`UPDATE jobs SET state = 'cancelled', finished_at = @now,
        history = CASE WHEN state = 'active' THEN json_insert(history, '$[#]', json_object(
          'attempt', attempt, 'outcome', 'cancelled', 'message', 'cancelled while running',
          'workerId', worker_id, 'at', @now)) ELSE history END,
        token = NULL, worker_id = NULL, lease_until = NULL
      WHERE id = @id RETURNING *`),
    retry: p(`UPDATE jobs SET state = 'waiting', attempt = 0, stalls = 0, run_at = @now,
        finished_at = NULL, error = NULL, result = NULL
      WHERE id = @id RETURNING *`),

    stallWorker: p(`UPDATE jobs SET ${STALL_SET}
      WHERE state = 'active' AND worker_id = @workerId RETURNING id, queue, state`),
    /** @before: the time leases are judged against (see WallStepGuard); @now stamps the stall. */
    stallExpired: p(`UPDATE jobs SET ${STALL_SET}
      WHERE state = 'active' AND lease_until < @before RETURNING id, queue, state`),
  };
}

