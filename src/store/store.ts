/**
 * The store: the single source of truth for jobs, trigger cursors, incidents and leader
 * locks. It speaks the domain, not SQL, so SQLite and PostgreSQL adapters implement the
 * same verbs and the same contract (`test/store-contract/`).
 *
 * Every method is one transaction. Times are ms since the epoch, from the store's clock.
 */
import type {
  EnqueueItem,
  EnqueueOptions,
  EnqueueResult,
  Incident,
  Job,
  JobErrorInfo,
  JobFilter,
  Lease,
  LeaseRef,
  NewIncident,
  NextJob,
  QueueCounts,
  QueueReport,
  RejectedRecord,
} from "../core/types.js";
import type { Clock } from "../core/clock.js";
import type { RunDetail, RunFilter, RunPage } from "./runs.js";

/** Which open incidents `resolveIncidents` marks recovered, and when. */
export interface ResolveIncidentsOptions {
  at?: number;
  id?: number;
  host?: string;
}

/** What differs between engines. */
export interface StoreCaps {
  /** Idle workers are woken when jobs arrive (no busy polling). */
  notify: boolean;
  /** Several hosts may share this store. */
  multiHost: boolean;
  /**
   * Optional: jobs enqueued for later (scheduled) are announced too, not only jobs that can
   * run now. With this and `nextDueAt`, an idle worker sets one timer for the next due job
   * and polls only rarely; without it a worker polls every second.
   */
  notifyScheduled?: boolean;
  /**
   * Optional: how many jobs a claim should ask for to amortise a round trip. A worker may
   * use it as the floor of its default claim-ahead (`prefetch`) for queues whose handlers
   * are quick, where the store's per-round-trip cost, not the handlers, sets the pace.
   * Absent: the store is cheap to ask often. (SQLite sets it too: there a commit, not a
   * round trip, is the cost a bigger batch spreads.)
   */
  claimBatchHint?: number;
  /**
   * Optional: how many transactions of completions (each with its worker's next claim) a
   * worker may have in flight at once (default 1). More than one pays where the store is a
   * server that works while the worker does: the worker parses one transaction's results
   * and runs its jobs while the server executes the next. With more than one, the jobs a
   * transaction claims also wait to start until the next transaction is sent.
   */
  commitLanes?: number;
}

export interface ClaimRequest {
  workerId: string;
  /** How many jobs at most, per queue, this worker can take now (its free concurrency). */
  queues: Record<string, number>;
  /** Lease length in ms (default 10 s). */
  leaseMs: number;
  /**
   * Flow control of some of these queues (config `rate`, `limit`, `group`), enforced by
   * the store inside the claim's transaction against what every worker and host did.
   * The numbers travel with each claim rather than living in the store: see
   * docs/flow-control.md for why, and what hosts with different configs get.
   */
  flow?: Record<string, QueueFlow>;
  /**
   * Told when a queue gave fewer jobs than it has due because of its flow control or a
   * pause: `until` is the earliest time (ms since the epoch, the caller's clock) another
   * claim may get more (null: no known time; a wake-up or poll will tell), `reason` a
   * sentence for people.
   */
  onHold?(queue: string, until: number | null, reason: string): void;
}

/** `N` starts per `intervalMs`, guaranteed over every sliding window of that length. */
export interface FlowRate {
  count: number;
  intervalMs: number;
}

/** One queue's flow control (see ClaimRequest.flow). */
export interface QueueFlow {
  /** Job starts per interval over every worker and host. */
  rate?: FlowRate;
  /** Active jobs of the queue over every worker and host. */
  limit?: number;
  /** The same per value of a payload field (`by`: its path below the payload, e.g. `customer`). */
  group?: { by: string; limit?: number; rate?: FlowRate };
}

/** A queue as `vigil queues list` shows it. */
export interface QueueState {
  name: string;
  paused: boolean;
  /** When it was paused (ms since the epoch), null when running. */
  pausedAt: number | null;
  /** The last time a claim was held back by the queue's flow control, and why. */
  heldAt: number | null;
  heldReason: string | null;
}

export interface CompleteItem {
  lease: LeaseRef;
  result: unknown;
  /** Jobs of the next stage, created in the same transaction. */
  next?: NextJob[];
}

export type CompleteOutcome = { ok: true; next: Job[] } | { ok: false; error: Error };

/** What `completeAndClaim` returns: each completion's outcome, and the new leases. */
export interface CompleteAndClaimResult {
  outcomes: CompleteOutcome[];
  leases: Lease[];
}

export interface FailOptions {
  /** Retry at this time (state `failed`, then `waiting`); absent: the job is dead. */
  retryAt?: number;
}

/**
 * Stalls before a freed job is dead. A job enqueued with a limit (its own `maxStalls`, or
 * its queue's from the enqueuing store's `queueMaxStalls`) keeps it; these decide for the
 * others (enqueued before stores kept it, or to a queue the enqueuing store did not know).
 */
export interface ReapOptions {
  /** For queues no `queueMaxStalls` names (default 3). */
  maxStalls?: number;
  /** Per queue; over the store's own `queueMaxStalls`. */
  queueMaxStalls?: Record<string, number>;
}

/** How the store itself is doing, for the store-upkeep health checks and `/metrics`. */
export interface StoreUpkeep {
  engine: "sqlite" | "postgres";
  /** Bytes the store takes: SQLite its file and WAL; PostgreSQL its schema's tables with their indexes. */
  sizeBytes: number;
  /** Jobs the store holds (PostgreSQL: the planner's estimate, not a count). */
  jobsHeld: number;
  /** SQLite: the WAL file's size in bytes. */
  walBytes?: number;
  /** PostgreSQL: the schema's tables where jobs and their counts live. */
  tables?: StoreTableUpkeep[];
  /** PostgreSQL: ms the oldest transaction open on the database has run (null: none besides this one). */
  oldestTransactionMs?: number | null;
}

/** One PostgreSQL table's vacuum state. */
export interface StoreTableUpkeep {
  table: string;
  liveTuples: number;
  deadTuples: number;
  /** Transactions since the table was last frozen (`age(relfrozenxid)`): autovacuum must freeze it before wraparound. */
  xidAge: number;
  /** ms since its last vacuum or autovacuum (null: never). */
  lastVacuumAgeMs: number | null;
}

export interface PruneOptions {
  /** Completed jobs finished before this time are removed. */
  completedBefore?: number;
  /** Dead jobs finished before this time are removed (and cancelled ones, unless `cancelledBefore`). */
  deadBefore?: number;
  /** Cancelled jobs finished before this time are removed (default: `deadBefore`). */
  cancelledBefore?: number;
  /**
   * Per-minute counts and failed attempts from before this time are folded into one row
   * per hour and queue, so long reports read hours (see store/rollups.ts).
   */
  foldBefore?: number;
  /** Rows per transaction, so pruning never holds the store long (default 500). */
  batch?: number;
}

/** A trigger's persisted position; opaque to the store. */
export interface TriggerCursor {
  cursor: unknown;
  /** Bumped by every commit; a commit that expects an older version is refused. */
  version: number;
}

export interface TriggerCommit {
  trigger: string;
  /** The version read; the commit fails (returns false) if it moved since. */
  expectVersion: number;
  cursor: unknown;
  jobs: EnqueueItem[];
  rejected?: RejectedRecord[];
}

export interface Store {
  readonly kind: "sqlite" | "postgres";
  readonly caps: StoreCaps;
  /** A human form of where the store lives (file path or database/schema), no password. */
  readonly location: string;
  readonly clock: Clock;

  // --- jobs -------------------------------------------------------------------------
  /** Adds a job; with `key`, returns the existing live job instead of a second one. */
  enqueue(queue: string, payload: unknown, opts?: EnqueueOptions): Promise<EnqueueResult>;
  /** Adds many jobs in one transaction: all or none. */
  enqueueMany(items: EnqueueItem[]): Promise<EnqueueResult[]>;
  /** Leases up to the requested number of due jobs per queue, highest priority first. */
  claim(req: ClaimRequest): Promise<Lease[]>;
  /** Extends one lease; throws `LeaseLostError` if the token is no longer the job's. */
  renew(lease: LeaseRef, leaseMs: number): Promise<number>;
  /** Extends many leases in one transaction; returns the job ids whose lease was lost. */
  renewMany(leases: LeaseRef[], leaseMs: number): Promise<number[]>;
  /** Stores the result (and next-stage jobs); throws `LeaseLostError` on a stale token. */
  complete(lease: LeaseRef, result: unknown, next?: NextJob[]): Promise<Job[]>;
  /** Group commit: many completions in one transaction, each checked on its own. */
  completeMany(items: CompleteItem[]): Promise<CompleteOutcome[]>;
  /**
   * Optional: `completeMany(items)` and then `claim(claim)` in ONE transaction, so a busy
   * worker pays one commit per cycle instead of two. Outcomes are as `completeMany`'s, in
   * item order; `leases` is empty when `claim` is null. A refused completion does not stop
   * the claim. Workers fall back to the two calls when an adapter lacks it.
   */
  completeAndClaim?(items: CompleteItem[], claim: ClaimRequest | null): Promise<CompleteAndClaimResult>;
  /** Records a failed attempt; retries at `retryAt` or marks the job dead. */
  fail(lease: LeaseRef, error: JobErrorInfo, opts?: FailOptions): Promise<Job>;
  /** Gives a job back unrun (graceful stop): `waiting`, the attempt not counted. */
  release(lease: LeaseRef): Promise<void>;
  /**
   * `release` for many jobs in one statement (one transaction; on PostgreSQL one NOTIFY
   * per queue): a worker gives back a whole claim-ahead buffer or a late claim at once.
   * A lease that no longer holds (stale token, job no longer active) is skipped, not an
   * error. Returns the ids of the jobs released.
   */
  releaseMany(leases: readonly LeaseRef[]): Promise<number[]>;
  /** Cancels a job that has not finished. An active job's later completion is refused. */
  cancel(id: number): Promise<Job>;
  /** Puts a dead, failed or cancelled job back to `waiting` with fresh attempts. */
  retry(id: number): Promise<Job>;
  /** Frees every lease a (dead) worker held, at once; each counts as a stall. */
  releaseWorker(workerId: string, reason?: string, opts?: ReapOptions): Promise<number>;
  /** Returns jobs whose lease ran out to `waiting` (or `dead` after `maxStalls`). */
  reapExpired(opts?: ReapOptions): Promise<number>;
  get(id: number): Promise<Job | null>;
  list(filter?: JobFilter): Promise<Job[]>;
  /**
   * How many jobs of pipeline run `rootId` (the root itself included) are on `queue`,
   * counting no further than `atMost`: the `maxRounds` check, one number however long the
   * run's lineage has grown.
   */
  countRounds(rootId: number, queue: string, atMost: number): Promise<number>;
  /** Counts per queue and state; completed/dead counts include pruned jobs. */
  stats(): Promise<Record<string, QueueCounts>>;
  /**
   * Optional: when (ms since the epoch) the earliest scheduled or failed job of these
   * queues comes due, or null when none is pending. Lets an idle worker set one timer
   * instead of polling; workers poll every second when an adapter lacks it.
   */
  nextDueAt?(queues: string[]): Promise<number | null>;
  /** Age in ms of the oldest due waiting job per queue (absent when none waits). */
  oldestWaiting(): Promise<Record<string, number>>;
  /** Throughput and durations per queue for jobs finished since `since`. */
  report(since: number): Promise<QueueReport[]>;
  /** What the store-upkeep health checks and gauges read: size, WAL, vacuum, old transactions. */
  upkeep(): Promise<StoreUpkeep>;
  /**
   * Removes old finished jobs in small batches, one transaction each, letting the event
   * loop and other writers in between; totals survive.
   */
  prune(opts: PruneOptions): Promise<{ completed: number; dead: number }>;
  /**
   * Pauses or resumes a queue: a paused queue's waiting jobs are not claimed (its running
   * jobs finish); the state is stored, so it survives restarts. Resuming wakes workers.
   * Returns the queue's state after the change.
   */
  setPaused(queue: string, paused: boolean): Promise<QueueState>;
  /**
   * Wakes the workers of these queues in every process, through the store's own wake-ups:
   * a slot of a queue's `limit` (or of a group's) freed, so workers held back by it claim
   * again at once (the worker whose job completed or failed calls it once that is stored).
   * Without it, held workers find the slot at their next recheck.
   */
  announce?(queues: string[]): Promise<void>;
  /** Every queue with a stored state (paused, or once held by its flow control). */
  queueStates(): Promise<QueueState[]>;
  /**
   * A handler's `ctx.rateLimited(ms)` (its provider answered "too many requests"): the job
   * goes back unrun, its attempt not counted, to its place in the queue; and its whole queue,
   * or with `group` only that group of it, starts nothing until then (now + `ms`).
   * Throws `LeaseLostError` on a stale token. Returns the hold's end.
   */
  rateLimited(lease: LeaseRef, ms: number, opts?: { group?: string; reason?: string }): Promise<number>;
  // --- runs (a root job and every job handed on from it; see runs.ts) ---------------
  /** Runs newest first, keyset-paged by root id; bounded work per page whatever the filter. */
  listRuns(filter?: RunFilter): Promise<RunPage>;
  /** The run that job `id` (root or not) belongs to, its jobs in id order; null if unknown. */
  getRun(id: number): Promise<RunDetail | null>;
  /**
   * Starts a new run at `fromQueue` with the input that stage's job had in run `id` (or
   * `payload`); its root's `source` points at the original (`rerunOf`, `fromJob`).
   */
  rerun(id: number, fromQueue: string, payload?: unknown): Promise<Job>;
  /**
   * How many waiting jobs of its queue a claim takes before waiting job `id` (claim order),
   * counted up to `cap` (default 10 000) so the answer stays cheap; null when not waiting.
   */
  jobsAhead(id: number, cap?: number): Promise<number | null>;
  /** Called (from any process) when jobs may have become available on a queue. */
  subscribe(listener: (queue: string) => void): () => void;

  // --- triggers ---------------------------------------------------------------------
  getCursor(trigger: string): Promise<TriggerCursor | null>;
  /** Enqueues the jobs, keeps the rejected records and moves the cursor in one transaction. */
  commitTrigger(commit: TriggerCommit): Promise<boolean>;
  listRejected(trigger?: string, limit?: number): Promise<RejectedRecord[]>;

  // --- incidents --------------------------------------------------------------------
  addIncident(incident: NewIncident): Promise<Incident>;
  /**
   * Marks open incidents of a service recovered at `at` (default now): all of them, or the
   * one with `id`; only those of `host` when given (service names repeat across hosts).
   */
  resolveIncidents(service: string, opts?: ResolveIncidentsOptions): Promise<number>;
  updateIncident(id: number, detail: Record<string, unknown>): Promise<void>;
  /** Newest first; `service` matches that name and its processes' (`workers`: `workers:1`, `workers:2`). */
  listIncidents(opts?: { since?: number; service?: string; limit?: number }): Promise<Incident[]>;

  // --- leader locks (one trigger runner, one reaper across hosts) --------------------
  /** Takes or renews the named lock for `owner` for `ttlMs`; false if another holds it. */
  tryLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  unlock(name: string, owner: string): Promise<void>;

  // --- upkeep -------------------------------------------------------------------------
  /** Applies pending migrations; returns how many ran. Done by `openStore` too. */
  migrate(): Promise<number>;
  /** A quick integrity check: null when fine, else what is wrong. */
  check(): Promise<string | null>;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** `normal` (default) or `full` (fsync every commit): SQLite's synchronous setting. */
  durability?: "normal" | "full";
  /** Largest payload or result in bytes (default 1 MiB). */
  maxPayload?: number;
  /** Default attempts for a job (default 5). */
  defaultAttempts?: number;
  /** PostgreSQL schema (default `vigil`). */
  schema?: string;
  /**
   * Each queue's `maxStalls` (the config's): kept with every job enqueued to that queue,
   * so `releaseWorker` and `reapExpired` judge it by its own queue's limit whichever
   * process or host calls them; also the limit for that queue's jobs that carry none.
   */
  queueMaxStalls?: Record<string, number>;
  /**
   * Each queue's `onDuplicate` (the config's): with `replace`, every enqueue into that
   * queue (the API, triggers, a stage's hand-off) whose key a live job holds puts its
   * payload on that job if it has not started. An item's own `onDuplicate` wins.
   */
  queueOnDuplicate?: Record<string, "keep" | "replace">;
  /**
   * Each queue's `group.by` (the config's): every job enqueued to that queue keeps its
   * group's value in a column, so a grouped claim reads no payloads. Jobs enqueued by a
   * process that did not know it (no config) are given it when a store that knows opens.
   */
  queueGroupBy?: Record<string, string>;
  /** Open without migrating or writing (CLI reads, doctor). */
  readOnly?: boolean;
  /**
   * SQLite: how long a transaction waits for another process's write lock before it fails
   * with STORE_UNREACHABLE (default 30 s). The wait never blocks the event loop.
   */
  lockWaitMs?: number;
  clock?: Clock;
}

export const DEFAULT_MAX_PAYLOAD = 1 << 20;
export const DEFAULT_ATTEMPTS = 5;
export const DEFAULT_MAX_STALLS = 3;
/**
 * Lease length. A frozen worker on a host that vanished keeps its jobs at most this long
 * (the supervisor frees a dead local worker's jobs at once). Shorter means faster recovery
 * from a lost machine but more renewals; renewals happen every lease/3.
 */
export const DEFAULT_LEASE_MS = 10_000;

/**
 * The stall limits of one `releaseWorker` or `reapExpired` call, as the JSON its statement
 * reads per job (`queues[queue]`, else `default`): the store's per-queue limits, the
 * call's over them, and the call's `maxStalls` (else 3) for every other queue.
 */
export function stallLimits(store: Record<string, number> | undefined, opts: ReapOptions): string {
  return JSON.stringify({
    queues: { ...store, ...opts.queueMaxStalls },
    default: opts.maxStalls ?? DEFAULT_MAX_STALLS,
  });
}
