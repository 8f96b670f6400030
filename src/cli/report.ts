/** `vigil report [--since 24h] [--json]`: uptime, MTBF, MTTR, restarts/day, throughput. */
import type { Command } from "commander";
import { BadInputError } from "../core/errors.js";
import { fmtTime, printJson, printTable } from "./output.js";

/** Adds `vigil report` to the program. */
export function register(program: Command): void {
  program
    .command("report")
    .description("uptime %, MTBF, MTTR, restarts/day per service; throughput and p50/p95 per queue")
    .option("--since <duration>", "window to report on, back from now", "24h")
    .option("--json", "print JSON")
    .action(async (flags: { since: string; json?: boolean }, cmd: Command) => {
      const { parseDuration, formatDuration } = await import("../core/duration.js");
      const { withStore } = await import("./context.js");
      const { buildReport } = await import("../health/report.js");
      const { readStatusFile } = await import("../project/status-file.js");
      const window = parseDuration(flags.since);
      if (window === undefined || window <= 0) {
        throw new BadInputError(`--since "${flags.since}" is not a duration; write it like 1h, 24h or 7d`);
      }
      await withStore(cmd, async (store, ctx) => {
        const status = readStatusFile(ctx.paths.root);
        const r = await buildReport(store, {
          since: store.clock.now() - window,
          services: status?.snapshot.services.map((s) => s.name),
          host: status?.snapshot.supervisor?.host,
        });
        if (flags.json) return printJson(r);
        process.stdout.write(`report from ${fmtTime(r.since)} to ${fmtTime(r.until)} (${formatDuration(r.windowMs)})\n\nservices\n`);
        printTable(
          ["HOST", "SERVICE", "UPTIME", "MTBF", "MTTR", "RESTARTS", "PER DAY", "MANUAL", "INCIDENTS", "OPEN"],
          r.services.map((s) => [
            s.host ?? "-",
            s.service,
            `${s.uptimePct.toFixed(3)}%`,
            formatDuration(s.mtbfMs),
            formatDuration(s.mttrMs),
            s.restarts,
            s.restartsPerDay,
            s.manualInterventions,
            s.incidents,
            s.open,
          ]),
        );
        process.stdout.write("\nqueues\n");
        printTable(
          ["QUEUE", "COMPLETED", "PER HOUR", "P50", "P95", "DEAD", "FAILED TRIES", "ALL-TIME DONE", "ALL-TIME DEAD"],
          r.queues.map((q) => [
            q.queue,
            q.completed,
            q.throughputPerHour,
            formatDuration(q.p50Ms),
            formatDuration(q.p95Ms),
            q.dead,
            q.failedAttempts,
            q.totals?.completed,
            q.totals?.dead,
          ]),
        );
        const { REPORT_DURATION_SAMPLE } = await import("../store/common.js");
        process.stdout.write(`P50 and P95 are over the newest ${REPORT_DURATION_SAMPLE.toLocaleString("en")} jobs completed in the window (all queues together).\n`);
        process.stdout.write(`\nmanual interventions: ${r.manualInterventions}; dead jobs: ${r.deadJobs}\n`);
      });
    });
}
