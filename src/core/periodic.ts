/**
 * One periodic task: a named job run every `every` ms, never two runs at once, optionally
 * only while holding a store leader lock (one process at a time across hosts), its
 * failures logged and retried at the next run. Retention, the health watch and the
 * workers' lease reaping are each one of these.
 *
 * The next run is timed from the end of the last, so a slow run (a big prune, a store
 * that answers late) delays the next instead of piling runs up. The timer is unref'd:
 * housekeeping never keeps a process alive.
 */

/** The part of a store a leader lock needs (store.ts `tryLock`, `unlock`). */
export interface LeaderLockStore {
  tryLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  unlock(name: string, owner: string): Promise<void>;
}

/** A leader lock: taken (or renewed) before every run, given up on stop. */
export interface LeaderLock {
  store: LeaderLockStore;
  name: string;
  owner: string;
  /**
   * How long the lock outlives its holder's last run: long enough that a run or two that
   * come late do not hand it over, short enough that another process takes over soon
   * after the holder is gone.
   */
  ttlMs: number;
}

export interface PeriodicTaskOptions<T> {
  /** What the log calls it: a failure is logged as "NAME failed; will try again". */
  name: string;
  /** ms from the end of one run to the start of the next. */
  every: number;
  /** ms before the first run (0: at once; default `every`). */
  firstAfter?: number;
  /** Run only while holding this lock; a run another process's lock keeps out is `null`. */
  lock?: LeaderLock;
  run: () => Promise<T>;
  /** Where a failed run is logged (warn, the error as `err`) when `onError` is not given. */
  log?: { warn(obj: object, msg: string): void };
  /** Called instead of logging with the error of a failed timed run. */
  onError?: (err: unknown) => void;
}

/** A running periodic task. */
export interface PeriodicTask<T> {
  /** Runs now (or joins the run in flight); null when the lock is another process's. Throws what the run throws. */
  runOnce(): Promise<T | null>;
  /** No more runs: waits for one in flight, then gives up the lock. */
  stop(): Promise<void>;
}

/** Starts `opts.run` every `opts.every` ms; see the file comment. */
export function startPeriodic<T>(opts: PeriodicTaskOptions<T>): PeriodicTask<T> {
  let running: Promise<T | null> | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;

  const once = async (): Promise<T | null> => {
    const lock = opts.lock;
    if (lock && !(await lock.store.tryLock(lock.name, lock.owner, lock.ttlMs))) return null;
    return opts.run();
  };

  const runOnce = (): Promise<T | null> => {
    running ??= once().finally(() => {
      running = null;
    });
    return running;
  };

  const failed = (err: unknown): void => {
    if (opts.onError) opts.onError(err);
    else opts.log?.warn({ err }, `${opts.name} failed; will try again`);
  };

  const schedule = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      runOnce()
        .catch(failed)
        .finally(() => schedule(opts.every));
    }, ms);
    timer.unref();
  };
  schedule(opts.firstAfter ?? opts.every);

  return {
    runOnce,
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running?.catch(() => undefined);
      const lock = opts.lock;
      if (lock) await lock.store.unlock(lock.name, lock.owner).catch(() => undefined);
    },
  };
}
