/** `vigil queues list [--json] | pause QUEUE | resume QUEUE`. */
import type { Command } from "commander";
import { formatDuration } from "../core/duration.js";
import { BadInputError } from "../core/errors.js";
import { withStore } from "./context.js";
import { fmtTime, printJson, printTable } from "./output.js";

export function register(program: Command): void {
  const queues = program.command("queues").description("list queues; pause and resume them");

  queues
    .command("list")
    .description("queues: paused or not, job counts, flow control (rate, limit, group)")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const { listQueues } = await import("../health/queues.js");
      await withStore(cmd, async (store, ctx) => {
        const list = await listQueues(store, ctx.config);
        if (flags.json) return printJson(list);
        const now = Date.now();
        printTable(
          ["QUEUE", "STATE", "WAITING", "ACTIVE", "COMPLETED", "DEAD", "RATE", "LIMIT", "GROUP", "LAST HELD"],
          list.map((q) => [
            q.name,
            q.paused ? `paused since ${fmtTime(q.pausedAt)}` : "running",
            q.counts?.waiting ?? 0,
            q.counts?.active ?? 0,
            q.counts?.completed ?? 0,
            q.counts?.dead ?? 0,
            q.rate,
            q.limit,
            q.group ? [q.group.by, q.group.limit !== undefined ? `limit ${q.group.limit}` : "", q.group.rate ? `rate ${q.group.rate}` : ""].filter(Boolean).join(" ") : undefined,
            q.heldAt ? `${formatDuration(now - q.heldAt)} ago: ${q.heldReason}` : undefined,
          ]),
        );
      });
    });

  for (const verb of ["pause", "resume"] as const) {
    queues
      .command(verb)
      .description(
        verb === "pause"
          ? "start no new jobs of a queue (running ones finish); kept in the store across restarts"
          : "start jobs of a paused queue again",
      )
      .argument("<queue>", "queue name")
      .option("--json", "print the queue's state as JSON")
      .action(async (queue: string, flags: { json?: boolean }, cmd: Command) => {
        await withStore(cmd, async (store, ctx) => {
          // A typo must not pause a queue nobody runs: the name must be one the config or the store knows.
          const known = new Set([...Object.keys(ctx.config?.queues ?? {}), ...Object.keys(await store.stats()), ...(await store.queueStates()).map((q) => q.name)]);
          if (!known.has(queue)) {
            throw new BadInputError(`unknown queue "${queue}": ${known.size ? `known queues are ${[...known].sort().join(", ")}` : "no queue is defined or has jobs"}`);
          }
          const state = await store.setPaused(queue, verb === "pause");
          if (flags.json) return printJson(state);
          process.stdout.write(
            verb === "pause"
              ? `queue ${queue} is paused: no new job starts; running jobs finish (vigil queues resume ${queue} to start again)\n`
              : `queue ${queue} is running again\n`,
          );
        });
      });
  }
}
