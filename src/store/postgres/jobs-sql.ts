/**
 * The job statements, written once per schema. The hot ones (enqueue, claim, renew,
 * complete) are single statements over arrays, so a batch of any size is one round trip
 * and one transaction; their names let each connection parse them once (each run is still
 * planned for its own arguments: see `SESSION_OPTIONS` in connection.ts).
 *
 * Where a job lives (migration 12): `jobs` holds the unfinished ones (scheduled, waiting,
 * active, failed), `job_history` the finished ones (completed, dead, cancelled). The
 * statement that finishes a job deletes it from `jobs` and inserts it into `job_history`
 * (`moveJobs`), so claims never meet history; a retry moves it back. Idempotency keys are
 * held in `job_keys` (`insertJobs` takes a key there before inserting its job; a death or
 * a cancellation gives it back, `releaseKeys`; a completion keeps it).
 */
import { createHash } from "node:crypto";
import { jobColumns, STORED_COLUMNS } from "./rows.js";

/*
 * Batch statements find their rows with `id = ANY (array)`, a primary-key lookup: joined
 * to an unnest or a CTE instead, the planner guesses the batch at 100s-1000s of rows and
 * hashes the whole table, which makes every claim cost as much as the backlog is long.
 *
 * Batches of active jobs (completions, renewals) are found with ACTIVE_BATCH. A plain
 * `id = ANY ($1) AND state = 'active'` let the planner AND in a bitmap scan of the partial
 * index `jobs_active`, which keeps an entry for every job active since the last vacuum:
 * under a steady drain that scan grew with the recent history and was a quarter of the
 * server's time (perf, 300k jobs). Hiding the state test in a CASE rules that index out;
 * handing the id array over through a sub-select keeps its size from the planner, which
 * then takes the primary key whatever the table's size (shown the array, it chose a
 * sequential scan while the table was small). Single drains of 300k jobs at c10: 31.3k and
 * 32.1k before, 35.0k, 39.6k and 42.5k after; 20k drains unchanged (alternating runs).
 */
/** The jobs of the id array $1 that are still active (see above). */
const ACTIVE_BATCH = "j.id = ANY ((SELECT $1::bigint[])::bigint[]) AND (CASE WHEN j.state = 'active' THEN true ELSE false END)";

/**
 * Claims and renewals commit without waiting for the WAL to reach disk (an fsync costs
 * about 3 ms here, more than the statement itself). Losing one in a server crash is
 * harmless: a lost claim leaves the job waiting, as if never claimed (its handler may run
 * again, which at-least-once delivery allows, and the stale token cannot complete it); a
 * lost renewal only shortens a lease. Any later durable commit (a completion, a failure,
 * an enqueue) flushes them too. Everything else waits for the disk as usual. Set with
 * `set_config(…, true)` inside the statement: local to its own transaction, one round trip.
 */
const NO_FSYNC_WAIT = "set_config('synchronous_commit', 'off', true) IS NOT NULL";

/** The database's clock in ms: holds (`queue_holds`) are set and read on it, as rate windows. */
export const DB_NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/**
 * The database server's time, in ms since the epoch, as the statement began. Lease
 * deadlines are set and judged by this one clock: hosts sharing the store may disagree
 * about the time by seconds (a host whose clock runs 30 s ahead reaped every other
 * host's fresh leases while they were judged by each client's Date.now()), and a host's
 * clock may be stepped. A client sends only the lease's length. The statement's start,
 * not the transaction's: a claim after completions in one transaction gets its full
 * length, measured from no earlier than the client sent it. A sub-select, so it is
 * computed once per statement: as a plain expression it cost 0.3 µs more per row updated
 * (200k-row UPDATE: 149 ms against 91 ms for a parameter; as a sub-select, 89 ms).
 */
export const SERVER_MS = "(SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint)";

/** A statement with a stable name for the driver's per-connection prepared-statement cache. */
export interface Stmt {
  name: string;
  text: string;
}

export function stmt(text: string): Stmt {
  return { name: `vigil_${createHash("sha1").update(text).digest("hex").slice(0, 20)}`, text };
}

/** The columns an insert fills, in the order of the arrays passed to `insertMany`. */
const INSERT_ARRAYS = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[],
    $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $12::int[], $13::text[]) WITH ORDINALITY
    AS t(queue, state, key, payload, max_attempts, priority, run_at, parent_id, root_id, source, max_stalls, grp, ord)`;

/** What a new job's row is given besides its id. */
const NEW_COLUMNS = "queue, state, key, payload, max_attempts, priority, run_at, created_at, parent_id, root_id, source, max_stalls, grp";

/** The id sequence of both tables (migration 12 gave `jobs` the old table's sequence). */
function idSequence(S: string): string {
  return `nextval('${S.replace(/'/g, "''")}.jobs_id_seq')`;
}

/**
 * CTEs (the first without a leading comma) inserting new jobs: `src` is a query returning
 * NEW_COLUMNS and `ord`, their order. Each row takes its id from the sequence in `ord`
 * order; a keyed row is inserted only when it takes its key in job_keys, which holds every
 * key a job holds (unfinished or completed, in either table): the first of a batch in
 * `ord` order wins, and keys are taken in key order, so two batches never deadlock on
 * them. A key another transaction is taking or giving back makes the statement wait for
 * it; one taken by a transaction that committed after this statement began is skipped
 * here and its holder not yet visible (callers then try again). `name` returns `returning`
 * of the inserted rows. `keyed` false: no row has a key, and the rows are inserted as they
 * come (ids from the column's default, in `ord` order), without job_keys: the statement
 * of unkeyed batches, the common case, costs what it did before keys had their table (a
 * 20,000-job enqueue in batches of 1000 took 30 % longer through job_keys: medians of 6
 * runs alternating with the code before; 200 alternating batches: 18.8 ms before, 18.0 ms
 * as here).
 */
function insertJobs(S: string, name: string, src: string, returning: string, keyed: boolean): string {
  if (!keyed) return `${name} AS (${insertUnkeyed(S, src, returning)})`;
  return `${name}_new AS (
      SELECT s.*, ${idSequence(S)} AS id FROM (${src}) s ORDER BY s.ord
    ), ${name}_keys AS (
      INSERT INTO ${S}.job_keys (key, job_id) SELECT key, id FROM ${name}_new WHERE key IS NOT NULL ORDER BY key, ord
      ON CONFLICT (key) DO NOTHING RETURNING job_id
    ), ${name} AS (
      INSERT INTO ${S}.jobs (id, ${NEW_COLUMNS}) SELECT id, ${NEW_COLUMNS} FROM ${name}_new
      WHERE key IS NULL OR id IN (SELECT job_id FROM ${name}_keys) ORDER BY ord
      RETURNING ${returning}
    )`;
}

/** The INSERT of insertJobs when no row has a key, as a statement of its own. */
function insertUnkeyed(S: string, src: string, returning: string): string {
  return `INSERT INTO ${S}.jobs (${NEW_COLUMNS}) SELECT ${NEW_COLUMNS} FROM (${src}) s ORDER BY s.ord RETURNING ${returning}`;
}

/** The jobs holding the keys of `keys` (SQL, a text[]), in either table: `cols` of each. */
function keyHolders(S: string, keys: string, cols: string): string {
  const of = (table: string) =>
    `SELECT ${cols} FROM ${S}.job_keys k JOIN ${S}.${table} j ON j.id = k.job_id WHERE k.key = ANY (${keys})`;
  return `${of("jobs")} UNION ALL ${of("job_history")}`;
}

interface Move {
  from: "jobs" | "job_history";
  /** Rows of `from` (alias j) to move, with `using` (a FROM list) when given. */
  where: string;
  using?: string;
  /** More columns for the moved rows, from `using` (e.g. `i.result AS new_result`). */
  extra?: string;
  /** Columns the moved row takes: SQL over the old row's columns, as an UPDATE's SET. */
  set: Record<string, string>;
  /** What `name` returns of each moved row. */
  returning: string;
}

/**
 * CTEs (the first without a leading comma) that move rows between `jobs` and
 * `job_history` in one statement: `${name}_out` deletes them from `m.from`, `${name}`
 * inserts them into the other table as `m.set` makes them, returning `m.returning`. The
 * row keeps its id. Its counters follow from the triggers on `jobs` (the delete or insert
 * there).
 */
function moveJobs(S: string, name: string, m: Move): string {
  const to = m.from === "jobs" ? "job_history" : "jobs";
  return `${name}_out AS (
      DELETE FROM ${S}.${m.from} j${m.using ? ` USING ${m.using}` : ""} WHERE ${m.where}
      RETURNING j.*${m.extra ? `, ${m.extra}` : ""}
    ), ${name} AS (
      INSERT INTO ${S}.${to} (${STORED_COLUMNS.join(", ")})
      SELECT ${STORED_COLUMNS.map((c) => m.set[c] ?? c).join(", ")} FROM ${name}_out
      RETURNING ${m.returning}
    )`;
}

/** A CTE (starting with a comma) giving back the keys of the rows of `rel` (with `id`, `key`): dead or cancelled. */
function releaseKeys(S: string, rel: string): string {
  return `, ${rel}_keys AS (DELETE FROM ${S}.job_keys k USING ${rel} m WHERE k.key = m.key AND k.job_id = m.id)`;
}

/** The history entry a stall appends; nulls (no worker) are left out. */
const STALL_ENTRY = `jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('attempt', attempt,
    'outcome', 'stall', 'message', $1::text, 'workerId', worker_id, 'at', $2::bigint)))`;

/**
 * A stall is final after the job's own `max_stalls` stalls (set at enqueue from its queue's
 * `maxStalls`), else its queue's in $3 (see `stallLimits` in store.ts), or when the stalled
 * attempt was the last.
 */
const STALL_DEAD = `(stalls + 1 >= coalesce(max_stalls, ($3::jsonb -> 'queues' ->> queue)::int, ($3::jsonb ->> 'default')::int)
    OR attempt >= max_attempts)`;

/** What a stall sets; `dead`: the stall was final (the row moves to job_history). */
function stallSet(dead: boolean): Record<string, string> {
  return {
    stalls: "stalls + 1",
    state: dead ? "'dead'" : "'waiting'",
    finished_at: dead ? "$2::bigint" : "NULL",
    error: "$1::text",
    history: `history || ${STALL_ENTRY}`,
    token: "NULL",
    worker_id: "NULL",
    lease_until: "NULL",
  };
}

/**
 * The CTEs (the first without a leading comma) stalling the active jobs matching `where`:
 * `s` returns each one's queue and new state; final stalls move to job_history (`s_dead`,
 * their keys given back), the others wait again in `jobs`.
 */
function stallCtes(S: string, where: string): string {
  const set = stallSet(false);
  return `${moveJobs(S, "s_dead", { from: "jobs", where: `${where} AND coalesce(${STALL_DEAD}, false)`, set: stallSet(true), returning: "id, key, queue, state" })}
    ${releaseKeys(S, "s_dead")}, s_back AS (
      UPDATE ${S}.jobs j SET ${Object.entries(set).map(([c, e]) => `${c} = ${e}`).join(", ")}
      WHERE ${where} AND NOT coalesce(${STALL_DEAD}, false) RETURNING queue, state
    ), s AS (SELECT queue, state FROM s_dead UNION ALL SELECT queue, state FROM s_back)`;
}

/**
 * The counter row a connection writes (migration 7): concurrent workers on other
 * connections write other rows, so a completion rarely waits for another's commit. Rows of
 * one statement are written in queue order, so two statements sharing a shard never
 * deadlock.
 */
const SHARD = "(pg_backend_pid() % 16)";

/**
 * CTEs (each starting with a comma) that count the jobs of `rel` (with `queue`, and
 * `state` when `deadOnly`) finished at `now` (SQL): completions into their queue's total
 * and their minute; or, `deadOnly`, the dead ones into their minute.
 */
function countFinished(S: string, rel: string, now: string, deadOnly: boolean): string {
  const minute = (col: string, where: string) => `, count_${col} AS (
      INSERT INTO ${S}.job_minutes AS m (minute, queue, shard, ${col})
      SELECT ${now} / 60000, queue, ${SHARD}, count(*) FROM ${rel}${where} GROUP BY queue ORDER BY queue
      ON CONFLICT (minute, queue, shard) DO UPDATE SET ${col} = m.${col} + EXCLUDED.${col}
    )`;
  if (deadOnly) return minute("dead", " WHERE state = 'dead'");
  return `, count_total AS (
      INSERT INTO ${S}.job_counts AS c (queue, shard, completed)
      SELECT queue, ${SHARD}, count(*) FROM ${rel} GROUP BY queue ORDER BY queue
      ON CONFLICT (queue, shard) DO UPDATE SET completed = c.completed + EXCLUDED.completed
    )${minute("completed", "")}`;
}

/** A CTE (starting with a comma) adding a row of job_failures per row of `rel`, at `now`. */
function countFailures(S: string, rel: string, now: string): string {
  return `, count_failures AS (INSERT INTO ${S}.job_failures (at, queue) SELECT ${now}, queue FROM ${rel})`;
}

/** Notifies each distinct queue of the rows in `rel` that are now waiting; yields one row. */
function notifyWaiting(rel: string, channelParam: string): string {
  return `(SELECT count(pg_notify(${channelParam}::text, q.queue))
      FROM (SELECT DISTINCT queue FROM ${rel} WHERE state = 'waiting') q)`;
}

/** Where a claim finds its arguments: parameter numbers, so it can ride in a larger statement. */
export interface ClaimParams {
  queues: number;
  counts: number;
  now: number;
  worker: number;
  /** The lease's length in ms; it runs out that long after the server's SERVER_MS. */
  leaseMs: number;
  /** The claim's random token prefix; each job's token is the prefix and its id. */
  prefix: number;
}

const CLAIM_ALONE: ClaimParams = { queues: 1, counts: 2, now: 3, worker: 4, leaseMs: 5, prefix: 6 };

/**
 * The CTEs that lease, per queue, up to its count of due jobs in claim order; the last one,
 * `claimed`, returns the leased rows. Rows other claimers hold are skipped, not waited for;
 * a due `scheduled` or `failed` job is claimed as is. `commitMode` is a condition on each
 * request row (NO_FSYNC_WAIT, or "true").
 *
 * Per-row server cost matters at tens of thousands of jobs a second: the rows are found
 * again by `ctid` (the physical address the locking scan just returned, stable while the
 * row is locked), not by a second primary-key descent; and the token is one random prefix
 * per claim plus the id, not a fresh UUID per row. A row another statement changed between
 * this statement's snapshot and its lock is not found again and simply stays unclaimed.
 */
function claimCtes(S: string, p: ClaimParams, commitMode: string): string {
  // A paused queue, or one a handler's ctx.rateLimited holds, is left out (small tables).
  return `req AS (
      SELECT * FROM unnest($${p.queues}::text[], $${p.counts}::int[]) AS r(queue, n) WHERE ${commitMode}
        AND NOT EXISTS (SELECT 1 FROM ${S}.queues qs WHERE qs.name = r.queue AND qs.paused)
        AND NOT EXISTS (SELECT 1 FROM ${S}.queue_holds h WHERE h.queue = r.queue AND h.grp = '' AND h.until > ${DB_NOW})
    ), picked AS (
      SELECT c.ctid FROM req CROSS JOIN LATERAL (
        SELECT ctid FROM ${S}.jobs
        WHERE queue = req.queue AND state IN ('waiting', 'scheduled', 'failed') AND run_at <= $${p.now}::bigint
        ORDER BY priority DESC, run_at, id
        LIMIT req.n
        FOR UPDATE SKIP LOCKED
      ) c
    ), claimed AS (
      UPDATE ${S}.jobs j SET state = 'active', token = $${p.prefix}::text || j.id, worker_id = $${p.worker}::text,
        attempt = j.attempt + 1, started_at = $${p.now}::bigint, lease_until = ${SERVER_MS} + $${p.leaseMs}::bigint
      WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM picked))
      RETURNING ${jobColumns("j")}
    )`;
}

/** Where a batch of completions finds its arguments: the jobs' ids, tokens and results, the time. */
interface CompletionParams {
  ids: number;
  tokens: number;
  results: number;
  now: number;
}

/** The completions' parameters when they lead a statement: $1-$4. */
export const COMPLETIONS: CompletionParams = { ids: 1, tokens: 2, results: 3, now: 4 };

/**
 * The CTEs (the first without a leading comma) that complete every item whose token still
 * holds, `done` returning each one's id and queue, and count them; a claim may follow.
 */
export function completionCtes(S: string, p: CompletionParams): string {
  return `${completed(S, p, "id, queue")}${countFinished(S, "done", `$${p.now}::bigint`, false)}`;
}

/**
 * The CTEs (the first without a leading comma) moving every item whose token still holds
 * to job_history, completed; `done` returns `returning` of each. worker_id stays: the
 * worker that completed the job (reads of it as a lease holder also ask for state =
 * 'active'). Its key stays held.
 */
function completed(S: string, p: CompletionParams, returning: string): string {
  return moveJobs(S, "done", {
    from: "jobs",
    using: `unnest($${p.ids}::bigint[], $${p.tokens}::text[], $${p.results}::text[]) AS i(id, token, result)`,
    where: `${ACTIVE_BATCH} AND j.id = i.id AND j.token = i.token`,
    extra: "i.result AS new_result",
    set: {
      state: "'completed'",
      result: "new_result",
      finished_at: `$${p.now}::bigint`,
      error: "NULL",
      token: "NULL",
      lease_until: "NULL",
    },
    returning,
  });
}

/** The ids of the items `completionCtes` did NOT complete (their lease was lost): usually none. */
export function missedIds(p: CompletionParams): string {
  return `(SELECT coalesce(array_agg(m.id), '{}') FROM unnest($${p.ids}::bigint[]) AS m(id) WHERE m.id NOT IN (SELECT id FROM done))`;
}

function claimSql(S: string, commitMode: string): string {
  return `WITH ${claimCtes(S, CLAIM_ALONE, commitMode)} SELECT * FROM claimed`;
}

/**
 * The rows of `rows`, plus one more row carrying the aggregates of `from` (`name` → its SQL
 * expression); those columns are null in every other row, the other columns null in that
 * one. An id array repeated in every row would be parsed once per row: quadratic in the
 * batch size (it was most of a 500-job cycle's client time).
 */
export function rowsAndOneAggregate(rows: string, from: string, aggs: Record<string, string>): string {
  const names = Object.keys(aggs);
  return `SELECT ${names.map((n) => `a.${n}`).join(", ")}, r.*
      FROM (SELECT ${names.map((n) => `${aggs[n]} AS ${n}`).join(", ")} FROM ${from}) a LEFT JOIN ${rows} r ON false
    UNION ALL
    SELECT ${names.map(() => "NULL").join(", ")}, r.* FROM ${rows} r`;
}

/** What a failed attempt sets, besides its state, run time and finish. */
const FAIL_SET: Record<string, string> = {
  error: "$5::text",
  history: `history || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('attempt', attempt,
          'outcome', $7::text, 'message', $5::text, 'stack', $6::text, 'workerId', worker_id, 'at', $4::bigint)))`,
  token: "NULL",
  worker_id: "NULL",
  lease_until: "NULL",
};

/** What a retry sets ($2: now). */
const RETRY_SET: [string, string][] = [
  ["state", "'waiting'"],
  ["attempt", "0"],
  ["stalls", "0"],
  ["run_at", "$2::bigint"],
  ["finished_at", "NULL"],
  ["error", "NULL"],
  ["result", "NULL"],
];

/** enqueueOne's row, from its parameters. */
const ONE_SRC = `SELECT $1::text AS queue, $2::text AS state, $3::text AS key, $4::text AS payload, $5::int AS max_attempts,
        $6::int AS priority, $7::bigint AS run_at, $11::bigint AS created_at, $8::bigint AS parent_id, $9::bigint AS root_id,
        $10::text AS source, $12::int AS max_stalls, $13::text AS grp, 1 AS ord`;

/** insertMany's rows, from its arrays. */
const MANY_SRC = `SELECT queue, state, key, payload, max_attempts, priority, run_at, $11::bigint AS created_at, parent_id, root_id,
        source, max_stalls, grp, ord FROM ${INSERT_ARRAYS}`;

/**
 * Completes every item whose token still holds and inserts the next-stage jobs of those
 * that did, in one statement. `done_ids` (and their `done_roots`) list the completed jobs;
 * the other columns are the created next jobs, one per row (none: one row of nulls).
 * `keyed`: some next job has a key (see insertJobs).
 */
function completeManySql(S: string, keyed: boolean): string {
  return `WITH ${completed(S, COMPLETIONS, "id, coalesce(root_id, id) AS root_id, queue")}${countFinished(S, "done", "$4::bigint", false)}, nx AS (
      SELECT * FROM unnest($5::bigint[], $6::text[], $7::text[], $8::text[], $9::int[], $10::int[],
        $11::bigint[], $12::text[], $13::int[], $14::text[]) WITH ORDINALITY
        AS n(parent_id, queue, state, key, priority, max_attempts, run_at, payload, max_stalls, grp, ord)
    ), ${insertJobs(
      S,
      "ins",
      `SELECT n.queue, n.state, n.key, n.payload, n.max_attempts, n.priority, n.run_at, $4::bigint AS created_at,
        n.parent_id, d.root_id, NULL::text AS source, n.max_stalls, n.grp, n.ord FROM nx n JOIN done d ON d.id = n.parent_id`,
      jobColumns(),
      keyed,
    )}
    ${rowsAndOneAggregate("ins", "done", {
      done_ids: "coalesce(array_agg(id), '{}')",
      done_roots: "coalesce(array_agg(root_id), '{}')",
    })}`;
}

export function jobStatements(S: string) {
  const cols = jobColumns();
  return {
    /** One job, or the job holding its key (`created` false). Zero rows: lost a race, retry. */
    enqueueOne: stmt(`WITH ${insertJobs(S, "ins", ONE_SRC, cols, true)}
    SELECT true AS created, ${cols} FROM ins
    UNION ALL
    SELECT false, * FROM (${keyHolders(S, "ARRAY[$3::text]", jobColumns("j"))}) h WHERE NOT EXISTS (SELECT 1 FROM ins)`),
    /** One job without a key ($3 null): enqueueOne's arguments. */
    enqueuePlain: stmt(insertUnkeyed(S, ONE_SRC, `true AS created, ${cols}`)),

    /** Many jobs in item order (ids ascend with it); keyed items whose key is held are skipped. */
    insertMany: stmt(`WITH ${insertJobs(S, "ins", MANY_SRC, cols, true)} SELECT * FROM ins`),
    /** Many jobs none of which has a key: insertMany's arguments. */
    insertPlain: stmt(insertUnkeyed(S, MANY_SRC, cols)),

    /** The jobs holding these keys (not dead or cancelled), in either table. */
    byKeys: stmt(keyHolders(S, "$1::text[]", jobColumns("j"))),
    byId: stmt(`SELECT ${cols} FROM ${S}.jobs WHERE id = $1 UNION ALL SELECT ${cols} FROM ${S}.job_history WHERE id = $1`),
    /** The job locked, in either table; no row also when it moved since this statement began (read again). */
    byIdForUpdate: stmt(`WITH a AS (SELECT ${cols} FROM ${S}.jobs WHERE id = $1 FOR UPDATE),
      b AS (SELECT ${cols} FROM ${S}.job_history WHERE id = $1 FOR UPDATE)
      SELECT * FROM a UNION ALL SELECT * FROM b`),
    /** Takes a key back for job $2 (a retry); no row when another job holds it. */
    takeKey: stmt(`INSERT INTO ${S}.job_keys (key, job_id) VALUES ($1::text, $2::bigint) ON CONFLICT (key) DO NOTHING RETURNING job_id`),

    /** Leases due jobs (see claimSql); commits without waiting for the disk. */
    claim: stmt(claimSql(S, NO_FSYNC_WAIT)),
    /** The same claim inside a transaction whose commit must reach the disk. */
    claimDurable: stmt(claimSql(S, "true")),

    /** $3: the lease's length in ms, from the server's time (SERVER_MS). */
    renewMany: stmt(`UPDATE ${S}.jobs j SET lease_until = ${SERVER_MS} + $3::bigint
      FROM unnest($1::bigint[], $2::text[]) AS l(id, token)
      WHERE ${NO_FSYNC_WAIT} AND ${ACTIVE_BATCH} AND j.id = l.id AND j.token = l.token
      RETURNING j.id, l.token`),

    /** See completeManySql: next jobs with keys. */
    completeMany: stmt(completeManySql(S, true)),
    /** See completeManySql: no next job has a key. */
    completeManyPlain: stmt(completeManySql(S, false)),

    /**
     * `completeAndClaim` in one statement, so one round trip and one commit when no item
     * has next-stage jobs (which a claim in the same statement could not see): completes
     * every item whose token holds ($1-$4, as completeMany), then leases due jobs ($5-$9,
     * as claim). `missed_ids` lists the items NOT completed (their lease was lost): usually
     * none, so a full batch's ids are not sent back only to be parsed again. The other
     * columns are the leased jobs, one per row (none: one row of nulls). The two parts
     * touch disjoint rows: one updates active jobs, the other due ones. Its commit waits for
     * the disk.
     */
    completeAndClaim: stmt(`WITH ${completionCtes(S, COMPLETIONS)}, ${claimCtes(S, { queues: 5, counts: 6, now: 4, worker: 7, leaseMs: 8, prefix: 9 }, "true")}
    ${rowsAndOneAggregate("claimed", "(SELECT 1) AS one", { missed_ids: missedIds(COMPLETIONS) })}`),

    /**
     * Fails an attempt, counting it (job_failures) and, when it was the last ($3 null), the
     * death: the job moves to job_history and gives its key back.
     */
    fail: stmt(`WITH ${moveJobs(S, "f_dead", {
      from: "jobs",
      where: "j.id = $1 AND j.token = $2 AND j.state = 'active' AND $3::bigint IS NULL",
      set: { state: "'dead'", finished_at: "$4::bigint", ...FAIL_SET },
      returning: cols,
    })}${releaseKeys(S, "f_dead")}, f_retry AS (
      UPDATE ${S}.jobs SET state = 'failed', run_at = $3::bigint, finished_at = NULL,
        ${Object.entries(FAIL_SET).map(([c, e]) => `${c} = ${e}`).join(", ")}
      WHERE id = $1 AND token = $2 AND state = 'active' AND $3::bigint IS NOT NULL RETURNING ${cols}
    ), f AS (SELECT * FROM f_dead UNION ALL SELECT * FROM f_retry)
      ${countFailures(S, "f", "$4::bigint")}${countFinished(S, "f", "$4::bigint", true)}
    SELECT * FROM f`),

    /** A failed attempt (a running job cancelled). */
    countFailure: stmt(`INSERT INTO ${S}.job_failures (at, queue) VALUES ($1::bigint, $2::text)`),

    /** Gives jobs back unrun (one or many leases): one statement, one NOTIFY per queue. */
    releaseMany: stmt(`WITH r AS (
      UPDATE ${S}.jobs j SET state = 'waiting', attempt = greatest(attempt - 1, 0),
        token = NULL, worker_id = NULL, lease_until = NULL
      FROM unnest($1::bigint[], $2::text[]) AS l(id, token)
      WHERE ${ACTIVE_BATCH} AND j.id = l.id AND j.token = l.token RETURNING j.id, j.queue, j.state)
    SELECT coalesce(array_agg(id), '{}') AS ids, ${notifyWaiting("r", "$3")} AS notified FROM r`),

    /** Cancels an unfinished job: it moves to job_history and gives its key back. */
    cancel: stmt(`WITH ${moveJobs(S, "c", {
      from: "jobs",
      where: "j.id = $1",
      set: {
        state: "'cancelled'",
        finished_at: "$2::bigint",
        history: `CASE WHEN state = 'active' THEN history || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
          'attempt', attempt, 'outcome', 'cancelled', 'message', 'cancelled while running',
          'workerId', worker_id, 'at', $2::bigint))) ELSE history END`,
        token: "NULL",
        worker_id: "NULL",
        lease_until: "NULL",
      },
      returning: cols,
    })}${releaseKeys(S, "c")} SELECT * FROM c`),

    /** Retries a failed job (still in `jobs`). */
    retry: stmt(`UPDATE ${S}.jobs SET ${RETRY_SET.map(([c, e]) => `${c} = ${e}`).join(", ")}
      WHERE id = $1 AND state = 'failed' RETURNING ${cols}`),

    /** Retries a dead or cancelled job: back from job_history (its key taken back first, takeKey). */
    retryFinished: stmt(`WITH ${moveJobs(S, "r", {
      from: "job_history",
      where: "j.id = $1 AND j.state IN ('dead', 'cancelled')",
      set: Object.fromEntries(RETRY_SET),
      returning: cols,
    })} SELECT * FROM r`),

    /** Stalls every active job of a worker ($4); notifies the queues of those back to waiting ($5). */
    stallWorker: stmt(`WITH ${stallCtes(S, "j.state = 'active' AND j.worker_id = $4::text")}
      ${countFailures(S, "s", "$2::bigint")}${countFinished(S, "s", "$2::bigint", true)}
    SELECT count(*)::int AS n, ${notifyWaiting("s", "$5")} AS notified FROM s`),

    /** Stalls every active job whose lease ended by the server's clock ($2 only stamps the stall). */
    stallExpired: stmt(`WITH ${stallCtes(S, `j.state = 'active' AND j.lease_until < ${SERVER_MS}`)}
      ${countFailures(S, "s", "$2::bigint")}${countFinished(S, "s", "$2::bigint", true)}
    SELECT count(*)::int AS n, ${notifyWaiting("s", "$4")} AS notified FROM s`),

    notify: stmt(`SELECT pg_notify($1::text, $2::text)`),
  };
}

export type JobStatements = ReturnType<typeof jobStatements>;
