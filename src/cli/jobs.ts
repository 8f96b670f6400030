/** `vigil jobs list|show|retry|cancel`. */
import type { Command } from "commander";
import { BadInputError, NotFoundError } from "../core/errors.js";
import { formatDuration } from "../core/duration.js";
import { FINAL_STATES, JOB_STATES, type Job, type JobState } from "../core/types.js";
import type { Store } from "../store/store.js";
import { withStore } from "./context.js";
import { fmtTime, printJson, printTable } from "./output.js";

export function register(program: Command): void {
  const jobs = program.command("jobs").description("list, inspect, retry and cancel jobs");

  jobs
    .command("list")
    .description("jobs, newest first")
    .option("--queue <queue>", "only this queue")
    .option("--state <state>", `only this state (${JOB_STATES.join(", ")})`)
    .option("--limit <n>", "at most this many (0 for all)", "50")
    .option("--before <id>", "only jobs older than this id (the next page: the last id shown)")
    .option("--json", "print JSON")
    .action(async (flags: { queue?: string; state?: string; limit: string; before?: string; json?: boolean }, cmd: Command) => {
      if (flags.state && !JOB_STATES.includes(flags.state as JobState)) {
        throw new BadInputError(`--state "${flags.state}" is not a state; use one of ${JOB_STATES.join(", ")}`);
      }
      if (!/^\d+$/.test(flags.limit)) throw new BadInputError(`--limit "${flags.limit}" is not a whole number`);
      if (flags.before !== undefined && !/^\d+$/.test(flags.before)) throw new BadInputError(`--before "${flags.before}" is not a job id`);
      await withStore(cmd, async (store) => {
        // The table shows no payload or result: leave them in the store.
        const preview = flags.json ? undefined : 0;
        const list = await store.list({ queue: flags.queue, state: flags.state as JobState | undefined, limit: Number(flags.limit), preview,
          beforeId: flags.before === undefined ? undefined : Number(flags.before) });
        if (flags.json) return printJson(list);
        printTable(
          ["ID", "QUEUE", "STATE", "ATTEMPT", "KEY", "CREATED", "TOOK", "ERROR"],
          list.map((j) => [j.id, j.queue, j.state, `${j.attempt}/${j.maxAttempts}`, j.key, fmtTime(j.createdAt), took(j), clip(j.error, 60)]),
        );
      });
    });

  jobs
    .command("show")
    .description("one job: payload, result, attempt history and its whole pipeline lineage")
    .argument("<id>", "job id")
    .option("--json", "print JSON")
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, ctx) => {
        const job = await mustGet(store, id);
        const why = await jobWhy(cmd, store, job, ctx.config?.services, ctx.config?.supervision.stallAfter);
        const lineage = await store.list({ rootId: job.rootId ?? job.id, limit: 0, preview: 0 });
        const root = job.rootId ? await store.get(job.rootId) : null;
        const family = [...(root ? [root] : []), ...lineage.filter((j) => j.id !== root?.id)].sort((a, b) => a.id - b.id);
        if (flags.json) return printJson({ ...job, why, lineage: family.map(brief) });
        printJob(job);
        if (why) process.stdout.write(`\nwhy: ${why}\n`);
        if (family.length > 1) {
          process.stdout.write("\nlineage (root first):\n");
          printTable(
            ["ID", "QUEUE", "STATE", "PARENT", "ATTEMPT", "FINISHED"],
            family.map((j) => [`${j.id === job.id ? "*" : " "}${j.id}`, j.queue, j.state, j.parentId, j.attempt, fmtTime(j.finishedAt)]),
          );
        }
      });
    });

  for (const verb of ["retry", "cancel"] as const) {
    jobs
      .command(verb)
      .description(verb === "retry" ? "put a dead, failed or cancelled job back to waiting with fresh attempts" : "cancel a job that has not finished")
      .argument("<id>", "job id")
      .option("--json", "print the job as JSON")
      .action(async (id: string, flags: { json?: boolean }, cmd: Command) => {
        await withStore(cmd, async (store) => {
          const job = verb === "retry" ? await store.retry(jobId(id)) : await store.cancel(jobId(id));
          if (flags.json) printJson(job);
          else process.stdout.write(`job ${job.id} is now ${job.state}\n`);
        });
      });
  }
}

/** Why the job is not finished (null if it is), from the store and the live status. */
async function jobWhy(cmd: Command, store: Store, job: Job, services: Record<string, object> | undefined, stallAfter: number | undefined): Promise<string | null> {
  if (FINAL_STATES.includes(job.state)) return null;
  const [{ readSnapshot }, { whyNotFinished, queueServicesOf }] = await Promise.all([import("./status.js"), import("../health/why.js")]);
  const snapshot = await readSnapshot(cmd).catch(() => null);
  return whyNotFinished(job, { store, snapshot, queueServices: services ? queueServicesOf(services) : null, stallAfter });
}

function jobId(id: string): number {
  if (!/^\d+$/.test(id)) throw new BadInputError(`"${id}" is not a job id (a whole number)`);
  return Number(id);
}

async function mustGet(store: { get(id: number): Promise<Job | null> }, id: string): Promise<Job> {
  const job = await store.get(jobId(id));
  if (!job) throw new NotFoundError(`job ${id}`);
  return job;
}

function brief(j: Job) {
  return { id: j.id, queue: j.queue, state: j.state, parentId: j.parentId, attempt: j.attempt, finishedAt: j.finishedAt };
}

function took(j: Job): string {
  return j.startedAt && j.finishedAt ? formatDuration(j.finishedAt - j.startedAt) : "-";
}

function clip(s: string | null, n: number): string | null {
  if (!s) return s;
  const one = s.replace(/\s+/g, " ");
  return one.length > n ? one.slice(0, n - 1) + "…" : one;
}

function printJob(j: Job): void {
  const lines: [string, string][] = [
    ["id", String(j.id)],
    ["queue", j.queue],
    ["state", j.state],
    ["key", j.key ?? "-"],
    ["attempt", `${j.attempt} of ${j.maxAttempts} (stalls: ${j.stalls})`],
    ["priority", String(j.priority)],
    ["created", fmtTime(j.createdAt)],
    ["run at", fmtTime(j.runAt)],
    ["started", fmtTime(j.startedAt)],
    ["finished", fmtTime(j.finishedAt)],
    ["parent / root", `${j.parentId ?? "-"} / ${j.rootId ?? "-"}`],
    ["source", j.source ? JSON.stringify(j.source) : "-"],
    ["worker", j.workerId ?? "-"],
    ["payload", JSON.stringify(j.payload)],
    ["result", j.result === null || j.result === undefined ? "-" : JSON.stringify(j.result)],
    ["error", j.error ?? "-"],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  process.stdout.write(lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n") + "\n");
  if (j.history.length) {
    process.stdout.write("\nattempt history:\n");
    for (const h of j.history) {
      process.stdout.write(`  #${h.attempt} ${h.outcome} at ${fmtTime(h.at)}${h.workerId ? ` on ${h.workerId}` : ""}: ${h.message}\n`);
      if (h.stack) process.stdout.write(h.stack.split("\n").slice(1, 6).map((l) => `      ${l.trim()}\n`).join(""));
    }
  }
}
