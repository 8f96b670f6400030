/** `vigil runs list|show|rerun`: a run is a root job and every job handed on from it. */
import type { Command } from "commander";
import { BadInputError, NotFoundError } from "../core/errors.js";
import { formatDuration } from "../core/duration.js";
import { RUN_STATES, type RunDetail, type RunState } from "../store/runs.js";
import { withStore } from "./context.js";
import { fmtTime, printJson, printTable } from "./output.js";

export function register(program: Command): void {
  const runs = program.command("runs").description("pipeline runs: list them, show one, rerun one from a stage");

  runs
    .command("list")
    .description("runs, newest first (one row per root job)")
    .option("--state <state>", `only this run state (${RUN_STATES.join(", ")})`)
    .option("--queue <queue>", "only runs with a job on this queue")
    .option("--search <text>", "a key prefix, else text in a root's key or payload (the newest 5000 roots)")
    .option("--limit <n>", "at most this many (1 to 500)", "50")
    .option("--before <id>", "only runs older than this run id (the previous page's last)")
    .option("--json", "print JSON")
    .action(async (flags: { state?: string; queue?: string; search?: string; limit: string; before?: string; json?: boolean }, cmd: Command) => {
      if (flags.state && !RUN_STATES.includes(flags.state as RunState)) {
        throw new BadInputError(`--state "${flags.state}" is not a run state; use one of ${RUN_STATES.join(", ")}`);
      }
      const limit = whole(flags.limit, "--limit");
      if (limit < 1 || limit > 500) throw new BadInputError("--limit must be from 1 to 500");
      await withStore(cmd, async (store) => {
        const page = await store.listRuns({
          state: flags.state as RunState | undefined,
          queue: flags.queue,
          search: flags.search,
          limit,
          beforeId: flags.before === undefined ? undefined : whole(flags.before, "--before"),
        });
        if (flags.json) return printJson(page.runs);
        printTable(
          ["RUN", "KEY", "STATE", "CREATED", "TOOK", "STAGES"],
          page.runs.map((r) => [r.id, r.key, r.state, fmtTime(r.createdAt), r.finishedAt ? formatDuration(r.finishedAt - r.createdAt) : "-", stagesLine(r.stages, r.jobCount)]),
        );
        if (page.nextBefore !== null) process.stdout.write(`\nmore: vigil runs list --before ${page.nextBefore}${page.searchedBy === "text" ? " (text search looks at 5000 runs per page)" : ""}\n`);
      });
    });

  runs
    .command("show")
    .description("one run: its jobs in order, with waits, run times, workers, errors and results")
    .argument("<id>", "the run's id (any job id of the run)")
    .option("--json", "print JSON")
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store) => {
        const run = await store.getRun(whole(id, "run id"));
        if (!run) throw new NotFoundError(`run ${id}`);
        if (flags.json) return printJson(run);
        printRun(run);
      });
    });

  runs
    .command("rerun")
    .description("start a new run at a stage, with the input that stage had in this run")
    .argument("<id>", "the run's id")
    .requiredOption("--from <queue>", "the stage (queue) to start at")
    .option("--payload <json>", "use this payload instead of the original input")
    .option("--json", "print the new root job as JSON")
    .action(async (id: string, flags: { from: string; payload?: string; json?: boolean }, cmd: Command) => {
      let payload: unknown;
      if (flags.payload !== undefined) {
        try {
          payload = JSON.parse(flags.payload);
        } catch {
          throw new BadInputError(`--payload is not JSON: ${flags.payload.slice(0, 80)}`);
        }
      }
      await withStore(cmd, async (store) => {
        const job = await store.rerun(whole(id, "run id"), flags.from, payload);
        if (flags.json) return printJson({ id: job.id, rerunOf: job.source?.["rerunOf"] ?? null, job });
        process.stdout.write(`run ${job.id} started at ${job.queue} (a rerun of run ${String(job.source?.["rerunOf"])}, from job ${String(job.source?.["fromJob"])})\n`);
      });
    });
}

function whole(s: string, what: string): number {
  if (!/^\d+$/.test(s)) throw new BadInputError(`${what} "${s}" is not a whole number`);
  return Number(s);
}

function stagesLine(stages: { queue: string; state: string; attempt: number }[], count: number): string {
  const shown = stages.slice(0, 6).map((s) => `${s.queue}:${s.state}${s.attempt > 1 ? `#${s.attempt}` : ""}`);
  return shown.join(" → ") + (count > shown.length ? ` (+${count - shown.length})` : "");
}

function printRun(r: RunDetail): void {
  const took = r.finishedAt ? `, took ${formatDuration(r.finishedAt - r.createdAt)}` : "";
  process.stdout.write(`run ${r.id}${r.key ? ` (key ${r.key})` : ""}: ${r.state}, ${r.jobCount} job${r.jobCount === 1 ? "" : "s"}, created ${fmtTime(r.createdAt)}${took}${r.rerunOf ? `, a rerun of run ${r.rerunOf}` : ""}\n\n`);
  printTable(
    ["JOB", "QUEUE", "STATE", "ATTEMPT", "HOST", "WORKER", "WAITED", "RAN", "ERROR / RESULT"],
    r.jobs.map((j) => [
      j.id,
      j.queue,
      j.state,
      `${j.attempt}/${j.maxAttempts}`,
      j.host,
      j.workerId,
      formatDuration(j.queueDelayMs),
      formatDuration(j.runMs),
      clip(j.error ?? (j.result === null ? null : typeof j.result === "string" && j.resultTruncated ? j.result : JSON.stringify(j.result)), 60),
    ]),
  );
  for (const j of r.jobs.filter((x) => x.history.length > 0)) {
    process.stdout.write(`\njob ${j.id} (${j.queue}) attempts:\n`);
    for (const h of j.history) process.stdout.write(`  #${h.attempt} ${h.outcome} at ${fmtTime(h.at)}${h.workerId ? ` on ${h.workerId}` : ""}: ${clip(h.message, 100)}\n`);
  }
  if (r.jobsTruncated) process.stdout.write("\n(only the first 1000 jobs of this run are shown)\n");
}

function clip(s: string | null, n: number): string | null {
  if (!s) return s;
  const one = s.replace(/\s+/g, " ");
  return one.length > n ? one.slice(0, n - 1) + "…" : one;
}
