/**
 * Health checks: named, each with a status and one sentence a person can act on. The
 * overall status is the worst of them. `vigil health` prints them and exits 0 (ok),
 * 1 (degraded) or 2 (unhealthy); `/healthz` answers 200 or 503 from the same checks.
 *
 * The checks read what already exists — the supervisor's pid file and status file, a live
 * snapshot when run inside the supervisor, and the store — and never write anything.
 */
import { pausedQueues } from "./queues.js";
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { formatDuration } from "../core/duration.js";
import type { Store } from "../store/store.js";
import { readPidFile } from "../project/pid-file.js";
import { readStatusFile } from "../project/status-file.js";
import { DEFAULT_STORE_LIMITS, storeChecks, type StoreLimits } from "./store-checks.js";
import type { ServiceStatus, StatusSnapshot } from "../core/status.js";

/** A check's verdict; the overall status is the worst of them. */
export type CheckStatus = "ok" | "degraded" | "unhealthy";

/** One named check and its one-sentence verdict. */
export interface HealthCheck {
  /**
   * Stable name: supervisor, services, crash-loop, store, waiting-age, dead-jobs, disk,
   * store-size, store-wal (SQLite) or store-vacuum and store-transactions (PostgreSQL), status-file.
   */
  name: string;
  status: CheckStatus;
  /** One sentence: what is wrong and what to do, or what is fine. */
  message: string;
}

/** Every check and the overall status (`vigil health --json`, `/healthz`). */
export interface HealthReport {
  status: CheckStatus;
  /** ms since the epoch */
  at: number;
  checks: HealthCheck[];
}

/** The `health:` section of the config, in ms and bytes (the store's own limits default as in store-checks.ts). */
export interface HealthLimits extends Partial<StoreLimits> {
  /** Oldest due waiting job older than this is degraded (default 5 m). */
  maxWaitingAge: number;
  /** More dead jobs in the last hour than this is degraded (default 10). */
  maxDeadPerHour: number;
  /** Less free disk beside the store is degraded, under a tenth of it unhealthy (default 500 MiB). */
  minFreeDisk: number;
}

/** What the checks read; everything optional has a default. */
export interface HealthInput {
  /** The store, or null when it could not be opened (then `storeError` says why). */
  store: Store | null;
  storeError?: string;
  /** The state folder (`.vigil/`) holding supervisor.pid and status.json. */
  stateDir: string;
  limits: HealthLimits;
  /** A heartbeat older than this is stale (default 5 s, `supervision.stallAfter`). */
  stallAfter?: number;
  /** How often the status file is rewritten (default 2 s, `supervision.statusEvery`). */
  statusEvery?: number;
  /** A live snapshot (inside the supervisor); otherwise the status file is read. */
  snapshot?: StatusSnapshot | null;
  /** The SQLite file, for the disk check; null for PostgreSQL. */
  storeFile?: string | null;
  /** Time of the checks, ms since the epoch (default: now). */
  now?: number;
  /** The longest one check may take, in ms (default 5 s); a store that hangs is unhealthy. */
  checkTimeout?: number;
  /** How long completed jobs are kept (`retention.completed`), for where the store's size levels off. */
  retention?: number;
}

const RANK: Record<CheckStatus, number> = { ok: 0, degraded: 1, unhealthy: 2 };

/** The worse of statuses; `ok` for none. */
export function worst(statuses: readonly CheckStatus[]): CheckStatus {
  return statuses.reduce<CheckStatus>((a, b) => (RANK[b] > RANK[a] ? b : a), "ok");
}

/** Exit code of `vigil health` for a status: 0, 1 or 2. */
export function exitCodeFor(status: CheckStatus): number {
  return RANK[status];
}

/** Runs every check (in parallel, each bounded by `checkTimeout`) and returns the report. */
export async function runHealthChecks(input: HealthInput): Promise<HealthReport> {
  const now = input.now ?? Date.now();
  const stallAfter = input.stallAfter ?? 5000;
  const statusEvery = input.statusEvery ?? 2000;
  const timeout = input.checkTimeout ?? 5000;
  const pid = readPidFile(input.stateDir);
  const file = readStatusFile(input.stateDir, now);
  const snapshot = input.snapshot ?? file?.snapshot ?? null;
  const inSupervisor = input.snapshot?.source === "supervisor";

  const checks: [string, () => Promise<Omit<HealthCheck, "name">>][] = [
    [
      "supervisor",
      async () => {
        if (inSupervisor) return ok(`The supervisor is running (pid ${process.pid}).`);
        if (pid.pid === null) {
          return bad("unhealthy", `No supervisor is running (no ${pid.path}); start it with \`vigil start --detach\`.`);
        }
        if (!pid.alive) {
          return bad(
            "unhealthy",
            `The supervisor (pid ${pid.pid}) is not running but left ${pid.path}; \`vigil start --detach\` cleans up and starts it.`,
          );
        }
        return ok(`The supervisor is running (pid ${pid.pid}).`);
      },
    ],
    ["services", async () => servicesCheck(snapshot, stallAfter, now)],
    [
      "crash-loop",
      async () => {
        const looping = (snapshot?.services ?? []).filter((s) => s.state === "crash-looping");
        if (looping.length === 0) return ok("No service is crash-looping.");
        return bad(
          "unhealthy",
          `${names(looping)} ${looping.length === 1 ? "is" : "are"} crash-looping; read \`vigil logs ${looping[0]!.service}\` and \`vigil incidents\`, fix the cause, then \`vigil restart ${looping[0]!.service}\`.`,
        );
      },
    ],
    [
      "store",
      async () => {
        if (!input.store) return bad("unhealthy", `The store cannot be opened: ${input.storeError ?? "unknown error"}.`);
        // A read that touches the schema, not the full integrity check: that reads every
        // page (seconds at millions of jobs) and a probe may run every few seconds.
        // `vigil doctor`, and `vigil start` after an unclean shutdown, run the full check.
        await input.store.listIncidents({ limit: 1 });
        return ok(`The store (${input.store.location}) opened and answers; \`vigil doctor\` runs the full integrity check.`);
      },
    ],
    [
      "waiting-age",
      async () => {
        if (!input.store) return bad("unhealthy", "Waiting jobs cannot be checked without the store.");
        const [all, paused] = await Promise.all([input.store.oldestWaiting(), pausedQueues(input.store)]);
        // A paused queue's jobs wait on purpose: shown as paused, never as stuck.
        const ages = Object.entries(all).filter(([q]) => !paused.includes(q)).sort((a, b) => b[1] - a[1]);
        const [queue, age] = ages[0] ?? [null, 0];
        const held = paused.filter((q) => all[q] !== undefined);
        const pausedNote = held.length ? ` Paused, so not counted: ${held.join(", ")}.` : "";
        if (queue === null) return ok(held.length ? `No job is waiting on a running queue.${pausedNote}` : "No job is waiting.");
        if (age > input.limits.maxWaitingAge) {
          return bad(
            "degraded",
            `The oldest waiting job on queue ${queue} has waited ${formatDuration(age)} (limit ${formatDuration(input.limits.maxWaitingAge)}); check that a worker serves ${queue} and is not stalled (\`vigil status\`), or add instances.`,
          );
        }
        return ok(`The oldest waiting job (queue ${queue}) has waited ${formatDuration(age)}.${pausedNote}`);
      },
    ],
    [
      "dead-jobs",
      async () => {
        if (!input.store) return bad("unhealthy", "Dead jobs cannot be counted without the store.");
        const rows = await input.store.report(now - 3_600_000);
        const dead = rows.reduce((n, r) => n + r.dead, 0);
        if (dead > input.limits.maxDeadPerHour) {
          const top = rows.filter((r) => r.dead > 0).sort((a, b) => b.dead - a.dead)[0]!;
          return bad(
            "degraded",
            `${dead} jobs died in the last hour (limit ${input.limits.maxDeadPerHour}), most on queue ${top.queue}; read their errors with \`vigil jobs list --state dead --queue ${top.queue}\`.`,
          );
        }
        return ok(`${dead} jobs died in the last hour (limit ${input.limits.maxDeadPerHour}).`);
      },
    ],
    ["disk", async () => diskCheck(input)],
    ...storeUpkeepChecks(input, now),
    [
      "status-file",
      async () => {
        // Three missed rewrites (and never less than 10 s, for a loaded machine) mean the
        // supervisor's loop is stuck: the very symptom of the stall Vigil was built against.
        const staleAfter = Math.max(3 * statusEvery, 10_000);
        if (!file) {
          return inSupervisor || pid.alive
            ? bad("degraded", "The status file has not been written yet; it appears within seconds of `vigil start`.")
            : bad("unhealthy", "There is no status file: Vigil is not running here; start it with `vigil start --detach`.");
        }
        if (file.ageMs > staleAfter) {
          return bad(
            "unhealthy",
            `The status file ${file.path} is ${formatDuration(file.ageMs)} old (rewritten every ${formatDuration(statusEvery)}); the supervisor is stuck or gone — \`vigil doctor\` says which.`,
          );
        }
        return ok(`The status file was written ${formatDuration(file.ageMs)} ago.`);
      },
    ],
  ];

  const results = await Promise.all(
    checks.map(async ([name, run]): Promise<HealthCheck> => {
      try {
        return { name, ...(await withTimeout(run(), timeout, name)) };
      } catch (err) {
        return { name, status: "unhealthy", message: `The ${name} check failed: ${(err as Error).message}.` };
      }
    }),
  );
  return { status: worst(results.map((c) => c.status)), at: now, checks: results };
}

/**
 * The store's own checks (store-checks.ts): `store-size` and, by engine, `store-wal` or
 * `store-vacuum` and `store-transactions`; one read of `store.upkeep()` serves them all.
 */
function storeUpkeepChecks(input: HealthInput, now: number): [string, () => Promise<Omit<HealthCheck, "name">>][] {
  const names = ["store-size", ...(input.storeFile ? ["store-wal"] : ["store-vacuum", "store-transactions"])];
  const limits = { ...DEFAULT_STORE_LIMITS, ...definedOf(input.limits) };
  let read: Promise<Map<string, Omit<HealthCheck, "name">>> | null = null;
  const verdicts = () =>
    (read ??= (async () => {
      const store = input.store!;
      const [u, day] = await Promise.all([store.upkeep(), input.retention === undefined ? null : store.report(now - 86_400_000)]);
      const growth = day ? { finishedPerDay: day.reduce((n, r) => n + r.completed + r.dead, 0), retentionMs: input.retention! } : null;
      return new Map(storeChecks(u, limits, growth));
    })());
  return names.map((name) => [
    name,
    async () => {
      if (!input.store) return bad("unhealthy", "The store cannot be checked without opening it.");
      return (await verdicts()).get(name) ?? ok("Does not apply to this store.");
    },
  ]);
}

/** The fields of `o` that are set. */
function definedOf<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function servicesCheck(snapshot: StatusSnapshot | null, stallAfter: number, now: number): Omit<HealthCheck, "name"> {
  if (!snapshot) return bad("unhealthy", "No service status is available (no live supervisor and no status file).");
  const rows = snapshot.services;
  if (rows.length === 0) return ok("No services are configured.");
  // A heartbeat age is as of the snapshot; the snapshot itself may be a second or two old.
  const since = Math.max(0, now - snapshot.at);
  const age = (s: ServiceStatus): number | null => (s.heartbeatAgeMs === null ? null : s.heartbeatAgeMs + since);
  const stale = rows.filter((s) => s.state === "running" && (age(s) ?? 0) > stallAfter);
  const notRunning = rows.filter((s) => s.state !== "running" && s.state !== "crash-looping");
  const up = rows.filter((s) => s.state === "running" && !stale.includes(s));
  // Stalled, restarting and starting processes are being healed by the supervisor: that is
  // degraded. Only when nothing runs and nothing is on its way back is it unhealthy.
  const healing = rows.filter((s) => s.state === "starting" || s.state === "restarting" || s.state === "stalled" || stale.includes(s));
  if (up.length === 0 && healing.length === 0) {
    return bad(
      "unhealthy",
      `No service process is running (${rows.map((s) => `${s.name} ${s.state}`).join(", ")}); see \`vigil status\` and \`vigil incidents\`.`,
    );
  }
  const problems = [
    ...stale.map((s) => `${s.name} has not sent a heartbeat for ${formatDuration(age(s))}`),
    ...notRunning.map((s) => `${s.name} is ${s.state}`),
  ];
  if (problems.length > 0) {
    return bad(
      "degraded",
      `${problems.join("; ")}; the supervisor restarts stalled processes by itself — if this persists, see \`vigil incidents\`.`,
    );
  }
  return ok(`All ${rows.length} service processes are running with fresh heartbeats.`);
}

async function diskCheck(input: HealthInput): Promise<Omit<HealthCheck, "name">> {
  if (!input.storeFile) return ok("The store is not a local file; watch its disk on the database server.");
  const dir = dirname(input.storeFile);
  const st = await statfs(dir);
  const free = Number(st.bavail) * Number(st.bsize);
  const limit = input.limits.minFreeDisk;
  const mb = (n: number): string => `${Math.round(n / (1 << 20))} MiB`;
  if (free < limit) {
    return bad(
      free < limit / 10 ? "unhealthy" : "degraded",
      `Only ${mb(free)} free beside the store in ${dir} (limit ${mb(limit)}); free space or shorten retention (docs/troubleshooting.md, "Disk full").`,
    );
  }
  return ok(`${mb(free)} free beside the store in ${dir}.`);
}

function ok(message: string): Omit<HealthCheck, "name"> {
  return { status: "ok", message };
}

function bad(status: CheckStatus, message: string): Omit<HealthCheck, "name"> {
  return { status, message };
}

function names(rows: { name: string }[]): string {
  return rows.map((r) => r.name).join(", ");
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${formatDuration(ms)}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
