/** `vigil enqueue QUEUE JSON` and `vigil enqueue QUEUE -` (JSON lines from stdin, one transaction). */
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { BadInputError } from "../core/errors.js";
import { parseDuration } from "../core/duration.js";
import type { EnqueueItem, EnqueueOptions } from "../core/types.js";
import type { VigilConfig } from "../config/schema.js";
import { withStore } from "./context.js";
import { printJson } from "./output.js";

/** Lines read between two progress lines on stderr when the input is large. */
const PROGRESS_EVERY = 50_000;

interface EnqueueFlags {
  key?: string;
  delay?: string;
  priority?: string;
  attempts?: string;
  replace?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command("enqueue")
    .description("add a job: JSON payload as an argument, or `-` for one JSON payload per stdin line (one transaction)")
    .argument("<queue>", "queue name (must be defined in the config when there is one)")
    .argument("<json>", "the payload as JSON, or - to read JSON lines from stdin")
    .option("--key <key>", "idempotency key: enqueueing the same key again returns the existing job")
    .option("--delay <duration>", "run no earlier than this from now (500ms, 2s, 5m)")
    .option("--priority <n>", "higher runs first (default 0)")
    .option("--attempts <n>", "attempts before the job is dead (default: the queue's, else 5)")
    .option("--replace", "with --key: a waiting job holding the key takes this payload (default: the queue's onDuplicate, else keep it)")
    .option("--json", "print the job(s) as JSON")
    .action(async (queue: string, json: string, flags: EnqueueFlags, cmd: Command) => {
      await withStore(cmd, async (store, ctx) => {
        checkQueueKnown(queue, ctx.config);
        const base = enqueueOptions(flags, ctx.config?.queues[queue]?.attempts);
        if (flags.replace && flags.key === undefined) throw new BadInputError("--replace needs --key: it replaces the payload of the waiting job holding that key");
        if (flags.replace || ctx.config?.queues[queue]?.onDuplicate === "replace") base.onDuplicate = "replace";
        if (json === "-") {
          if (flags.key) throw new BadInputError("--key applies to one job; with `-` give each line its own job");
          const items = await readPayloadLines(queue, base);
          if (items.length === 0) throw new BadInputError("no JSON lines on stdin; nothing enqueued");
          if (items.length >= PROGRESS_EVERY) process.stderr.write(`writing ${items.length} jobs in one transaction...\n`);
          const results = await store.enqueueMany(items);
          const created = results.filter((r) => r.created).length;
          if (flags.json) printJson({ enqueued: created, existing: results.length - created, ids: results.map((r) => r.job.id) });
          else process.stdout.write(`enqueued ${created} jobs on ${queue}${created < results.length ? ` (${results.length - created} already existed)` : ""}\n`);
          return;
        }
        const payload = parsePayload(json, "the payload argument");
        const { job, created, replaced } = await store.enqueue(queue, payload, base);
        if (flags.json) printJson(job);
        else process.stdout.write(`${created ? "enqueued" : replaced ? "replaced the payload of" : "exists:"} job ${job.id} on ${queue} (${job.state})\n`);
      });
    });
}

function checkQueueKnown(queue: string, config: VigilConfig | null): void {
  if (!config) return;
  if (!(queue in config.queues)) {
    const known = Object.keys(config.queues);
    throw new BadInputError(
      `unknown queue "${queue}": ${known.length ? `the config defines ${known.join(", ")}` : "the config defines no queues"}`,
    );
  }
}

function enqueueOptions(flags: EnqueueFlags, queueAttempts: number | undefined): EnqueueOptions {
  const opts: EnqueueOptions = {};
  if (flags.key !== undefined) opts.key = flags.key;
  if (flags.delay !== undefined) {
    const ms = parseDuration(flags.delay);
    if (ms === undefined) throw new BadInputError(`--delay "${flags.delay}" is not a duration; write it like 500ms, 2s, 5m`);
    opts.delayMs = ms;
  }
  if (flags.priority !== undefined) opts.priority = integer(flags.priority, "--priority");
  const attempts = flags.attempts !== undefined ? integer(flags.attempts, "--attempts") : queueAttempts;
  if (attempts !== undefined) {
    if (attempts < 1) throw new BadInputError("--attempts must be at least 1");
    opts.maxAttempts = attempts;
  }
  return opts;
}

function integer(v: string, what: string): number {
  if (!/^-?\d+$/.test(v.trim())) throw new BadInputError(`${what} "${v}" is not a whole number`);
  return Number(v);
}

function parsePayload(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadInputError(`${where} is not valid JSON (${(err as Error).message}); quote it like '{"idea":"..."}'`);
  }
}

/** Reads every non-blank stdin line as a payload; a bad line names its number and nothing is written. */
async function readPayloadLines(queue: string, opts: EnqueueOptions): Promise<EnqueueItem[]> {
  const items: EnqueueItem[] = [];
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (line.trim() === "") continue;
    items.push({ ...opts, queue, payload: parsePayload(line, `stdin line ${n}`) });
    if (n % PROGRESS_EVERY === 0) process.stderr.write(`read ${n} lines...\n`);
  }
  return items;
}
