/**
 * Numbered, forward-only migrations, bundled here so the runtime reads no SQL files.
 * `migrate` runs under a transaction-scoped advisory lock keyed on the schema, so two
 * hosts starting at once both succeed: the second waits, then finds nothing to do.
 * Never edit a released migration; add the next number.
 */
import { VigilError } from "../../core/errors.js";
import type { Db } from "./db.js";

export interface Migration {
  version: number;
  name: string;
  /** The SQL, given the quoted schema name. */
  sql: (s: string) => string;
}

/** Jobs that may still run or still hold their key. */
const LIVE = "state NOT IN ('dead', 'cancelled')";

/**
 * Migration 11's trigger function job_live_<name>: adds to job_live, per queue and live
 * state, the sum of `d` over `deltas` (rows of queue, state, d from the transition tables),
 * one upsert per (queue, state) that changed, in key order.
 */
function liveCounter(S: string, name: string, deltas: string): string {
  return `CREATE FUNCTION ${S}.job_live_${name}() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO ${S}.job_live AS c (queue, state, shard, n)
    SELECT queue, state, pg_backend_pid() % 16, sum(d) FROM (${deltas}) x
    WHERE state IN ('waiting', 'scheduled', 'failed', 'active') GROUP BY queue, state HAVING sum(d) <> 0 ORDER BY queue, state
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END $f$;`;
}

/** The statement triggers that keep job_live (migration 11) on the jobs table (again in migration 12). */
function liveTriggers(S: string): string {
  return `CREATE TRIGGER job_live_ins AFTER INSERT ON ${S}.jobs REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ${S}.job_live_ins();
CREATE TRIGGER job_live_upd AFTER UPDATE ON ${S}.jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ${S}.job_live_upd();
CREATE TRIGGER job_live_del AFTER DELETE ON ${S}.jobs REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ${S}.job_live_del();`;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "jobs, totals, cursors, rejected records, incidents, locks",
    sql: (S) => `
CREATE TABLE ${S}.jobs (
  id            bigserial PRIMARY KEY,
  queue         text    NOT NULL,
  state         text    NOT NULL CHECK (state IN ('scheduled','waiting','active','completed','failed','dead','cancelled')),
  key           text,
  payload       text    NOT NULL,
  result        text,
  error         text,
  attempt       integer NOT NULL DEFAULT 0,
  max_attempts  integer NOT NULL,
  stalls        integer NOT NULL DEFAULT 0,
  priority      integer NOT NULL DEFAULT 0,
  run_at        bigint  NOT NULL,
  created_at    bigint  NOT NULL,
  started_at    bigint,
  finished_at   bigint,
  parent_id     bigint,
  root_id       bigint,
  source        text,
  worker_id     text,
  token         text,
  lease_until   bigint,
  history       jsonb   NOT NULL DEFAULT '[]'
);
-- The idempotency key: unique among jobs that are not dead or cancelled.
CREATE UNIQUE INDEX jobs_key ON ${S}.jobs (key) WHERE key IS NOT NULL AND ${LIVE};
-- What claim walks: due candidates per queue in claim order.
CREATE INDEX jobs_due ON ${S}.jobs (queue, priority DESC, run_at, id) WHERE state IN ('waiting','scheduled','failed');
-- Active jobs by lease end: reaping, and freeing a dead worker's leases.
CREATE INDEX jobs_active ON ${S}.jobs (lease_until) WHERE state = 'active';
CREATE INDEX jobs_queue_state ON ${S}.jobs (queue, state, id);
CREATE INDEX jobs_finished ON ${S}.jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_root ON ${S}.jobs (root_id) WHERE root_id IS NOT NULL;

-- Counts of pruned jobs, so totals survive pruning.
CREATE TABLE ${S}.job_totals (
  queue text   NOT NULL,
  state text   NOT NULL,
  n     bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (queue, state)
);

CREATE TABLE ${S}.cursors (
  trigger    text   PRIMARY KEY,
  cursor     text   NOT NULL,
  version    bigint NOT NULL,
  updated_at bigint NOT NULL
);

CREATE TABLE ${S}.rejected (
  id       bigserial PRIMARY KEY,
  trigger  text   NOT NULL,
  reason   text   NOT NULL,
  sample   text   NOT NULL,
  path     text,
  "offset" bigint,
  at       bigint NOT NULL
);
CREATE INDEX rejected_trigger ON ${S}.rejected (trigger, id);

CREATE TABLE ${S}.incidents (
  id           bigserial PRIMARY KEY,
  service      text   NOT NULL,
  host         text   NOT NULL,
  cause        text   NOT NULL,
  detected_at  bigint NOT NULL,
  recovered_at bigint,
  detail       text   NOT NULL DEFAULT '{}'
);
CREATE INDEX incidents_open ON ${S}.incidents (service) WHERE recovered_at IS NULL;
CREATE INDEX incidents_detected ON ${S}.incidents (detected_at);

CREATE TABLE ${S}.locks (
  name       text   PRIMARY KEY,
  owner      text   NOT NULL,
  expires_at bigint NOT NULL
);

-- Wake idle workers: every statement that inserts waiting jobs notifies each of their
-- queues once on the channel '<schema>:jobs' (delivered at commit, folded per transaction).
CREATE FUNCTION ${S}.jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(TG_TABLE_SCHEMA || ':jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_rows WHERE state = 'waiting') q;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify AFTER INSERT ON ${S}.jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${S}.jobs_notify();
`,
  },
  {
    version: 2,
    name: "fewer indexes on the claim and completion path",
    // Every claim and completion changes `state`, so each is a new row version with an entry
    // in every index whose predicate it meets: (queue, state, id) took one on both, about a
    // third of their index work. Its replacement covers only the states the hot path never
    // writes (a claim or completion leaves no entry), for list() by queue and state; waiting
    // jobs are found through jobs_due, active ones through jobs_active, completed ones
    // newest first through the primary key.
    sql: (S) => `
DROP INDEX ${S}.jobs_queue_state;
CREATE INDEX jobs_rest ON ${S}.jobs (queue, state, id) WHERE state IN ('scheduled', 'failed', 'dead', 'cancelled');
`,
  },
  {
    version: 3,
    name: "each job's stall limit",
    // Stamped at enqueue from the job's queue's maxStalls, so every host frees it by the
    // same limit; NULL (older jobs, queues the enqueuing store did not know): the freeing
    // call's limit for its queue. Adding a nullable column rewrites nothing.
    sql: (S) => `
ALTER TABLE ${S}.jobs ADD COLUMN max_stalls integer;
`,
  },
  {
    version: 4,
    name: "root jobs by key, for runs search",
    // `runs list --search` finds root jobs by key prefix as an index range ("C" collation:
    // byte order, so a prefix is one range whatever the database's collation). Only keyed
    // root jobs are in it, not the stage jobs they hand on.
    sql: (S) => `
CREATE INDEX jobs_run_key ON ${S}.jobs ((key COLLATE "C"), id) WHERE root_id IS NULL AND key IS NOT NULL;
`,
  },
  {
    version: 5,
    name: "failed attempts for the report without reading every job",
    // report() counted failed attempts by reading every job finished in its window (a
    // sequential scan of the table at a million jobs). Only jobs with a history are in this
    // index, and the hot path never writes one (a completion without a failure leaves none).
    sql: (S) => `
CREATE INDEX jobs_failures ON ${S}.jobs (finished_at) WHERE history <> '[]';
`,
  },
  {
    version: 6,
    name: "flow control: queue state (paused, last hold) and recent starts",
    // A queue's row is also what a flow-controlled claim locks, so claimers of one queue
    // take its budget one at a time. Starts: one row per claim and queue (grp '') or group.
    sql: (S) => `
CREATE TABLE ${S}.queues (
  name        text    PRIMARY KEY,
  paused      boolean NOT NULL DEFAULT false,
  paused_at   bigint,
  held_at     bigint,
  held_reason text
);
CREATE TABLE ${S}.queue_starts (
  queue text    NOT NULL,
  grp   text    NOT NULL,
  at    bigint  NOT NULL,
  n     integer NOT NULL
);
CREATE INDEX queue_starts_at ON ${S}.queue_starts (queue, at);
-- A handler's ctx.rateLimited(ms): the queue (grp '') or one group held until then.
CREATE TABLE ${S}.queue_holds (
  queue  text   NOT NULL,
  grp    text   NOT NULL,
  until  bigint NOT NULL,
  reason text   NOT NULL,
  PRIMARY KEY (queue, grp)
);
`,
  },
  {
    version: 7,
    name: "counters for status and report: completions per queue, per minute and per hour, failed attempts",
    // status and report counted the jobs table (a sequential scan, 150 ms and more at a
    // million jobs). Now each completion adds to its queue's row of job_counts and to its
    // minute's row of job_minutes in the statement that completes it; each death to its
    // minute; each failed attempt is a row of job_failures. Rows are sharded by the writing
    // connection (pg_backend_pid() % 16), so concurrent workers rarely wait on each other's
    // commit for a counter row. Retention folds minutes and failures older than two days into
    // job_hours. Completed jobs pruned before this migration move from job_totals into
    // job_counts (job_totals keeps only pruned dead and cancelled jobs). Seeded from the jobs
    // the store holds.
    sql: (S) => `
CREATE TABLE ${S}.job_counts (
  queue     text    NOT NULL,
  shard     integer NOT NULL,
  completed bigint  NOT NULL DEFAULT 0,
  PRIMARY KEY (queue, shard)
);
INSERT INTO ${S}.job_counts (queue, shard, completed)
  SELECT queue, 0, sum(n) FROM (
    SELECT queue, count(*) AS n FROM ${S}.jobs WHERE state = 'completed' GROUP BY queue
    UNION ALL
    SELECT queue, n FROM ${S}.job_totals WHERE state = 'completed'
  ) c GROUP BY queue;
DELETE FROM ${S}.job_totals WHERE state = 'completed';
CREATE TABLE ${S}.job_minutes (
  minute    bigint  NOT NULL,
  queue     text    NOT NULL,
  shard     integer NOT NULL,
  completed bigint  NOT NULL DEFAULT 0,
  dead      bigint  NOT NULL DEFAULT 0,
  PRIMARY KEY (minute, queue, shard)
);
INSERT INTO ${S}.job_minutes (minute, queue, shard, completed, dead)
  SELECT finished_at / 60000, queue, 0, count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'dead')
  FROM ${S}.jobs WHERE state IN ('completed', 'dead') AND finished_at IS NOT NULL GROUP BY 1, 2;
CREATE TABLE ${S}.job_failures (
  id    bigserial PRIMARY KEY,
  at    bigint NOT NULL,
  queue text   NOT NULL
);
CREATE INDEX job_failures_at ON ${S}.job_failures (at, queue);
INSERT INTO ${S}.job_failures (at, queue)
  SELECT (h->>'at')::bigint, j.queue FROM ${S}.jobs j, jsonb_array_elements(j.history) h WHERE j.history <> '[]';
CREATE TABLE ${S}.job_hours (
  hour      bigint NOT NULL,
  queue     text   NOT NULL,
  completed bigint NOT NULL DEFAULT 0,
  dead      bigint NOT NULL DEFAULT 0,
  failed    bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (hour, queue)
);
-- Listing dead (or cancelled, failed, scheduled) jobs of every queue, newest first.
CREATE INDEX jobs_rest_id ON ${S}.jobs (state, id) WHERE state IN ('scheduled', 'failed', 'dead', 'cancelled');
`,
  },
  {
    version: 8,
    name: "vacuum the jobs table after 2 % of it is dead, not 20 %",
    // Every claim and completion leaves a dead row version, and a dead entry in the claim
    // index (jobs_due). A transaction held open keeps them all: bench/soak, a 2-minute read
    // at 1,000 jobs/s grew jobs_due from a few pages to 1,343 and claims from 2 to 30 ms,
    // and claims stayed slow after the read until a vacuum gave those pages back. By
    // default a vacuum waits for 20 % of the table to be dead: behind 10 million finished
    // jobs that is 2 million dead rows, a quarter of an hour of such churn (no vacuum ran
    // in the 7 minutes measured). A vacuum of that table reads every index whole (43 s
    // there), so its trigger stays a share of the table, a tenth of the default one.
    sql: (S) => `
ALTER TABLE ${S}.jobs SET (autovacuum_vacuum_scale_factor = 0.02);
`,
  },
  {
    version: 9,
    name: "flow control: a queue's own recent starts in its row",
    // A claim of a queue whose only flow control is its rate reads and spends the window in
    // one statement: updating the queue's row takes its lock and sees its newest version,
    // so the starts must be in that row (a read of queue_starts in the same statement would
    // see the snapshot from before the lock). took: what the last such claim took. Group
    // starts stay in queue_starts.
    sql: (S) => `
ALTER TABLE ${S}.queues ADD COLUMN start_at bigint[] NOT NULL DEFAULT '{}',
  ADD COLUMN start_n integer[] NOT NULL DEFAULT '{}', ADD COLUMN took integer;
INSERT INTO ${S}.queues (name, start_at, start_n)
  SELECT queue, array_agg(at ORDER BY at), array_agg(n ORDER BY at) FROM ${S}.queue_starts WHERE grp = '' GROUP BY queue
  ON CONFLICT (name) DO UPDATE SET start_at = excluded.start_at, start_n = excluded.start_n;
DELETE FROM ${S}.queue_starts WHERE grp = '';
`,
  },
  {
    version: 10,
    name: "each job's group value",
    // The value of its queue's `group.by` field, set when it is enqueued, so a grouped claim
    // counts a group's active jobs from an index and leaves full groups out of its scan
    // without parsing payloads. NULL: enqueued without the queue's group known; a store
    // opened with the config fills those (postgres/store.ts, fillGroups).
    sql: (S) => `
ALTER TABLE ${S}.jobs ADD COLUMN grp text;
CREATE INDEX jobs_grp_active ON ${S}.jobs (queue, grp) WHERE state = 'active';
`,
  },
  {
    version: 11,
    name: "counters of the live states: waiting, scheduled, failed and active jobs per queue",
    // stats() counted the live jobs from jobs_due: 180,000 waiting jobs took 150-340 ms to
    // count at a million jobs, on every status, queues, report and /metrics read. Now three
    // statement-level triggers keep job_live: each statement that inserts, updates or
    // deletes jobs adds, per queue and live state, what it moved in and out (one upsert per
    // (queue, state) it changed, from its transition tables, in key order), so every write
    // path counts, flow control's included. Rows are sharded by the writing connection like
    // job_counts; a shard's row may go below zero (claimed by another connection than the
    // one that enqueued), the sum per queue and state is the count. Seeded from the jobs.
    sql: (S) => `
CREATE TABLE ${S}.job_live (
  queue text    NOT NULL,
  state text    NOT NULL,
  shard integer NOT NULL,
  n     bigint  NOT NULL DEFAULT 0,
  PRIMARY KEY (queue, state, shard)
);
INSERT INTO ${S}.job_live (queue, state, shard, n)
  SELECT queue, state, 0, count(*) FROM ${S}.jobs WHERE state IN ('waiting', 'scheduled', 'failed', 'active') GROUP BY queue, state;
${liveCounter(S, "ins", "SELECT queue, state, 1 AS d FROM new_rows")}
${liveCounter(S, "upd", "SELECT queue, state, 1 AS d FROM new_rows UNION ALL SELECT queue, state, -1 FROM old_rows")}
${liveCounter(S, "del", "SELECT queue, state, -1 AS d FROM old_rows")}
${liveTriggers(S)}
`,
  },
  {
    version: 12,
    name: "finished jobs in job_history, idempotency keys in job_keys",
    // Finished jobs (completed, dead, cancelled) move out of `jobs` into `job_history` in
    // the statement that finishes them, so claims, renewals and each vacuum of `jobs` read
    // a table of unfinished jobs only (a vacuum of a jobs table behind 10 million finished
    // jobs took 41-163 s). No job is copied: the old table, history and all, is renamed to
    // job_history (its triggers and claim indexes dropped, autovacuum back to the server's
    // default: it only takes inserts and retention's deletes), a new `jobs` made like it
    // takes the few unfinished rows, and the id sequence moves to it, so ids stay unique
    // across both. A key is held by a job that is not dead or cancelled, wherever it is:
    // job_keys holds every held key (an enqueue takes the key there first, a death, a
    // cancellation or pruning gives it back), seeded from the old unique index: the one
    // copy this makes, 3.3-3.7 s for a million held keys. Every process must be stopped
    // first: an older one's statements know a single jobs table (docs/store.md).
    sql: (S) => `
CREATE TABLE ${S}.job_keys (
  key    text   PRIMARY KEY,
  job_id bigint NOT NULL
);
INSERT INTO ${S}.job_keys (key, job_id) SELECT key, id FROM ${S}.jobs WHERE key IS NOT NULL AND ${LIVE};
ALTER TABLE ${S}.jobs RENAME TO job_history;
DROP TRIGGER jobs_notify ON ${S}.job_history;
DROP TRIGGER job_live_ins ON ${S}.job_history;
DROP TRIGGER job_live_upd ON ${S}.job_history;
DROP TRIGGER job_live_del ON ${S}.job_history;
ALTER INDEX ${S}.jobs_pkey RENAME TO job_history_pkey;
ALTER INDEX ${S}.jobs_finished RENAME TO job_history_finished;
ALTER INDEX ${S}.jobs_root RENAME TO job_history_root;
ALTER INDEX ${S}.jobs_rest RENAME TO job_history_rest;
ALTER INDEX ${S}.jobs_rest_id RENAME TO job_history_rest_id;
ALTER INDEX ${S}.jobs_run_key RENAME TO job_history_run_key;
ALTER INDEX ${S}.jobs_failures RENAME TO job_history_failures;
CREATE TABLE ${S}.jobs (LIKE ${S}.job_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (id));
ALTER TABLE ${S}.job_history RENAME CONSTRAINT jobs_state_check TO job_history_state_check;
ALTER SEQUENCE ${S}.jobs_id_seq OWNED BY ${S}.jobs.id;
ALTER TABLE ${S}.job_history ALTER COLUMN id DROP DEFAULT;
-- The unfinished rows, found through the claim indexes while the old table still has them.
INSERT INTO ${S}.jobs
  SELECT * FROM ${S}.job_history WHERE state IN ('waiting', 'scheduled', 'failed')
  UNION ALL SELECT * FROM ${S}.job_history WHERE state = 'active';
DELETE FROM ${S}.job_history WHERE id = ANY (ARRAY(SELECT id FROM ${S}.jobs));
DROP INDEX ${S}.jobs_key, ${S}.jobs_due, ${S}.jobs_active, ${S}.jobs_grp_active;
ALTER TABLE ${S}.job_history RESET (autovacuum_vacuum_scale_factor);
ALTER TABLE ${S}.jobs SET (autovacuum_vacuum_scale_factor = 0.02);
CREATE INDEX jobs_due ON ${S}.jobs (queue, priority DESC, run_at, id) WHERE state IN ('waiting','scheduled','failed');
CREATE INDEX jobs_active ON ${S}.jobs (lease_until) WHERE state = 'active';
CREATE INDEX jobs_grp_active ON ${S}.jobs (queue, grp) WHERE state = 'active';
CREATE INDEX jobs_root ON ${S}.jobs (root_id) WHERE root_id IS NOT NULL;
CREATE INDEX jobs_rest ON ${S}.jobs (queue, state, id) WHERE state IN ('scheduled', 'failed');
CREATE INDEX jobs_rest_id ON ${S}.jobs (state, id) WHERE state IN ('scheduled', 'failed');
CREATE INDEX jobs_run_key ON ${S}.jobs ((key COLLATE "C"), id) WHERE root_id IS NULL AND key IS NOT NULL;
CREATE TRIGGER jobs_notify AFTER INSERT ON ${S}.jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${S}.jobs_notify();
${liveTriggers(S)}
ANALYZE ${S}.jobs;
`,
  },
];

/** The newest schema version this build knows. */
export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Advisory lock namespace for migrations ("vigl" in ASCII); the second key is a hash of
 * the schema, so stores in different schemas of one database migrate independently.
 */
const LOCK_CLASS = 0x7669676c;

/** Applies the pending migrations in one transaction; returns how many ran. */
export async function migrate(db: Db, schema: string, quoted: string): Promise<number> {
  return db.tx(async (q) => {
    // Held until commit: a second process blocks here, then sees the finished work.
    await q.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [LOCK_CLASS, schema]);
    await q.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    const tables = await q.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1",
      [schema],
    );
    const names = new Set(tables.map((t) => t.name));
    if (!names.has("vigil_migrations")) {
      if (names.size > 0) {
        throw new VigilError(
          "STORE_FOREIGN",
          `schema "${schema}" already holds tables that Vigil did not create (${[...names].slice(0, 5).join(", ")}); ` +
            "point Vigil at another schema with ?schema=NAME in the store URL",
        );
      }
      await q.query(
        `CREATE TABLE ${quoted}.vigil_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
      );
    }
    const rows = await q.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${quoted}.vigil_migrations`);
    const current = rows[0]?.v ?? 0;
    if (current > LATEST_VERSION) throw tooNew(schema, current);
    let ran = 0;
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await q.query(m.sql(quoted));
      await q.query(`INSERT INTO ${quoted}.vigil_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [
        m.version,
        m.name,
        Date.now(),
      ]);
      ran++;
    }
    return ran;
  });
}

/** The schema version in the database (0: none), without writing anything. */
export async function schemaVersion(db: Db, schema: string, quoted: string): Promise<number> {
  const exists = await db.query<{ ok: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'vigil_migrations') AS ok",
    [schema],
  );
  if (!exists[0]?.ok) return 0;
  const rows = await db.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${quoted}.vigil_migrations`);
  return rows[0]?.v ?? 0;
}

export function tooNew(schema: string, version: number): VigilError {
  return new VigilError(
    "STORE_TOO_NEW",
    `schema "${schema}" is at version ${version}, newer than this Vigil knows (${LATEST_VERSION}); upgrade Vigil`,
  );
}
