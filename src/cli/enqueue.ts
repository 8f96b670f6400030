/** `vigil enqueue QUEUE JSON` and `vigil enqueue QUEUE -` (JSON lines from stdin, streamed: enqueue-stream.ts). */
import type { Command } from "commander";
import { BadInputError } from "../core/errors.js";
import { parseDuration } from "../core/duration.js";
import type { EnqueueOptions } from "../core/types.js";
import type { VigilConfig } from "../config/schema.js";
import { withStore } from "./context.js";
import { enqueueStream } from "./enqueue-stream.js";
import { printJson } from "./output.js";

interface EnqueueFlags {
  key?: string;
  keyField?: string;
  skip?: string;
  delay?: string;
  priority?: string;
  attempts?: string;
  replace?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command("enqueue")
    .description("add a job: JSON payload as an argument, or `-` for one JSON payload per stdin line (streamed, 1,000 lines per transaction)")
    .argument("<queue>", "queue name (must be defined in the config when there is one)")
    .argument("<json>", "the payload as JSON, or - to read JSON lines from stdin")
    .option("--key <key>", "idempotency key: enqueueing the same key again returns the existing job")
    .option("--key-field <field>", "with -: each job's key is this field of its payload, so running the same input again adds nothing twice")
    .option("--skip <n>", "with -: skip the first n lines (to resume after a bad line)")
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
        // Without --replace the store applies the queue's onDuplicate (openContextStore).
        if (flags.replace) base.onDuplicate = "replace";
        if (json === "-") {
          if (flags.key) throw new BadInputError("--key applies to one job; with `-` use --key-field FIELD to key each line by a field of its payload");
          if (flags.keyField !== undefined && flags.keyField.trim() === "") throw new BadInputError("--key-field needs a field name");
          const skip = flags.skip === undefined ? 0 : integer(flags.skip, "--skip");
          if (skip < 0) throw new BadInputError("--skip must be 0 or more");
          const t = await enqueueStream(store, {
            queue,
            base,
            keyField: flags.keyField,
            skip,
            keepIds: flags.json === true,
            input: process.stdin,
            progress: (line) => process.stderr.write(line),
          });
          const written = t.created + t.existing;
          if (written === 0) throw new BadInputError(`no JSON lines on stdin${skip ? ` after the ${skip} skipped` : ""}; nothing enqueued`);
          if (flags.json) printJson({ enqueued: t.created, existing: t.existing, ids: t.ids });
          else process.stdout.write(`enqueued ${t.created} jobs on ${queue}${t.existing ? ` (${t.existing} already existed)` : ""}\n`);
          return;
        }
        if (flags.keyField !== undefined || flags.skip !== undefined) throw new BadInputError("--key-field and --skip apply to `-` (JSON lines on stdin)");
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
