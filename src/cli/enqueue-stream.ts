/**
 * `vigil enqueue QUEUE -`: one JSON payload per stdin line, streamed into the store in
 * bounded transactions. Lines are read as they come (readline pauses stdin while a batch
 * is written), so memory stays flat however long the input; each batch is one
 * `enqueueMany`, and the event loop turns between batches, so the store's lock is never
 * held for long and other processes keep working meanwhile.
 *
 * A bad line stops the run after everything before it was enqueued, and the error says
 * how to resume (`--skip N`); with `--key-field` a plain re-run adds nothing twice.
 */
import { createInterface } from "node:readline";
import { BadInputError, VigilError } from "../core/errors.js";
import type { EnqueueItem, EnqueueOptions } from "../core/types.js";
import type { Store } from "../store/store.js";

/**
 * Lines per transaction (1,000): a few ms of inserts (bulk enqueue runs at 100k+ jobs/s),
 * so other writers wait at most that long, while the commit's cost is still spread over
 * many jobs.
 */
const BATCH_LINES = 1000;
/** Payload bytes per transaction (4 MiB), so a batch of large payloads stays short too. */
const BATCH_BYTES = 4 << 20;
/** Lines between two progress lines on stderr (only long inputs get any). */
const PROGRESS_EVERY = 50_000;

export interface StreamOptions {
  queue: string;
  /** Options every job gets (priority, delay, attempts). */
  base: EnqueueOptions;
  /** Take each job's idempotency key from this payload field. */
  keyField?: string;
  /** Lines to skip first (to resume after a bad line). */
  skip: number;
  /** Keep every job's id, for `--json`. */
  keepIds: boolean;
  input: NodeJS.ReadableStream;
  progress: (line: string) => void;
}

export interface StreamTotals {
  /** Lines read, skipped ones included. */
  lines: number;
  created: number;
  existing: number;
  ids: number[];
}

/** Streams JSON lines from `opts.input` into `store`; see the file comment. */
export async function enqueueStream(store: Store, opts: StreamOptions): Promise<StreamTotals> {
  const totals: StreamTotals = { lines: 0, created: 0, existing: 0, ids: [] };
  const started = Date.now();
  let batch: EnqueueItem[] = [];
  let lineNos: number[] = [];
  let bytes = 0;

  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const items = batch;
    const nos = lineNos;
    batch = [];
    lineNos = [];
    bytes = 0;
    try {
      count(totals, await store.enqueueMany(items), opts.keepIds);
    } catch (err) {
      if (!isBadItem(err)) throw stopped(err, nos[0]!, totals, opts);
      // One item of the batch was refused and nothing of it written: enqueue them one by
      // one to write what came before it and name its line.
      for (let i = 0; i < items.length; i++) {
        try {
          count(totals, [await store.enqueue(opts.queue, items[i]!.payload, items[i])], opts.keepIds);
        } catch (e) {
          if (!isBadItem(e)) throw stopped(e, nos[i]!, totals, opts);
          throw badLine(nos[i]!, `was refused (${(e as Error).message})`, totals, opts);
        }
      }
    }
  };

  const rl = createInterface({ input: opts.input, crlfDelay: Infinity });
  try {
    for await (const line of rl) {
      const n = ++totals.lines;
      if (n <= opts.skip || line.trim() === "") continue;
      let payload: unknown;
      try {
        payload = JSON.parse(line);
      } catch (err) {
        await flush();
        throw badLine(n, `is not valid JSON (${(err as Error).message})`, totals, opts);
      }
      const item: EnqueueItem = { ...opts.base, queue: opts.queue, payload };
      if (opts.keyField !== undefined) {
        const key = keyOf(payload, opts.keyField);
        if (key === null) {
          await flush();
          throw badLine(n, `has no "${opts.keyField}" field (a string or a number) for --key-field`, totals, opts);
        }
        item.key = key;
      }
      batch.push(item);
      lineNos.push(n);
      bytes += line.length;
      if (batch.length >= BATCH_LINES || bytes >= BATCH_BYTES) await flush();
      if (n % PROGRESS_EVERY === 0) opts.progress(progressLine(totals, started));
    }
    await flush();
  } finally {
    rl.close();
  }
  return totals;
}

function count(totals: StreamTotals, results: { job: { id: number }; created: boolean }[], keepIds: boolean): void {
  for (const r of results) {
    if (r.created) totals.created++;
    else totals.existing++;
    if (keepIds) totals.ids.push(r.job.id);
  }
}

/** The key a payload gives through `--key-field`, or null when it has none. */
function keyOf(payload: unknown, field: string): string | null {
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) return null;
  const v = (payload as Record<string, unknown>)[field];
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return null;
}

function isBadItem(err: unknown): boolean {
  return err instanceof VigilError && (err.code === "BAD_INPUT" || err.code === "PAYLOAD_TOO_LARGE");
}

function progressLine(t: StreamTotals, started: number): string {
  const secs = Math.max(0.001, (Date.now() - started) / 1000);
  return `read ${t.lines} lines, enqueued ${t.created}${t.existing ? ` (${t.existing} already existed)` : ""}, ${Math.round(t.lines / secs)} lines/s\n`;
}

/** What was written, and how to go on from line `n` (the first line not enqueued). */
function resumeAdvice(n: number, t: StreamTotals, opts: StreamOptions): string {
  const done = `${t.created} new job(s)${t.existing ? `, ${t.existing} already there` : ""}`;
  const before = n > 1 ? `every line before line ${n} was enqueued (${done})` : "nothing was enqueued";
  const rerun = opts.keyField !== undefined
    ? "; or run the whole input again: --key-field adds nothing twice"
    : "; or, to be able to run the whole input again safely, give each line a key field and pass --key-field FIELD";
  return `${before}, nothing from line ${n} on. To resume at line ${n}, run the same command with --skip ${n - 1}${rerun}`;
}

/** `why` completes "stdin line N ...": "is not valid JSON (...)", "was refused (...)". */
function badLine(n: number, why: string, t: StreamTotals, opts: StreamOptions): BadInputError {
  return new BadInputError(`stdin line ${n} ${why}; ${resumeAdvice(n, t, opts)}`);
}

function stopped(err: unknown, n: number, t: StreamTotals, opts: StreamOptions): unknown {
  if (!(err instanceof VigilError)) return err;
  return new VigilError(err.code, `${err.message}; ${resumeAdvice(n, t, opts)}`, { cause: err });
}
