/**
 * `vigil incidents [--json] [--since 24h] [--service S]`: stalls, crashes, restarts and
 * stops with their recovery times, newest first. The table shows ISO times; `--json`
 * gives `[{ service, cause, detectedAt, recoveredAt, detail, id, host }]` with times in
 * ms since the epoch, like every other JSON Vigil prints.
 */
import type { Command } from "commander";
import { formatDuration, requireDuration } from "../core/duration.js";
import type { Incident } from "../core/types.js";
import { withStore } from "./context.js";
import { fmtTime, printJson, printTable } from "./output.js";

export function register(program: Command): void {
  program
    .command("incidents")
    .description("stalls, crashes, restarts and stops, with recovery times (newest first)")
    .option("--since <duration>", "only incidents detected within this long", "24h")
    .option("--service <name>", "only this service (workers matches workers:1, workers:2)")
    .option("--limit <n>", "at most this many", "200")
    .option("--json", "print JSON (times in ms since the epoch)")
    .action(async (flags: { since: string; service?: string; limit: string; json?: boolean }, cmd: Command) => {
      const since = Date.now() - requireDuration(flags.since, "--since");
      await withStore(cmd, async (store) => {
        const list = await store.listIncidents({ since, service: flags.service, limit: Number(flags.limit) || 200 });
        if (flags.json) {
          return printJson(list.map((i) => ({ service: i.service, cause: i.cause, detectedAt: i.detectedAt, recoveredAt: i.recoveredAt, detail: i.detail, id: i.id, host: i.host })));
        }
        printTable(
          ["DETECTED", "HOST", "SERVICE", "CAUSE", "RECOVERED IN", "WHAT"],
          list.map((i) => [fmtTime(i.detectedAt), i.host || "-", i.service, i.cause, i.recoveredAt ? formatDuration(i.recoveredAt - i.detectedAt) : "open", summary(i)]),
        );
      });
    });
}

/** One line about an incident for the table. */
export function summary(i: Incident): string {
  const d = i.detail as Record<string, unknown>;
  const parts: string[] = [];
  if (d.manual) parts.push("manual");
  if (typeof d.reason === "string") parts.push(d.reason);
  if (d.code !== undefined || d.signal !== undefined) parts.push(`exit ${d.code ?? "-"}/${d.signal ?? "-"}`);
  if (d.crashLooping) parts.push("crash-looping");
  if (typeof d.procState === "string") parts.push(d.procState);
  if (typeof d.blockedIn === "string") parts.push(`in ${d.blockedIn}`);
  if (typeof d.jobId === "number") parts.push(`job ${d.jobId}${typeof d.queue === "string" ? ` (${d.queue})` : ""}`);
  if (typeof d.error === "string") parts.push(d.error);
  const text = parts.join("; ");
  return text.length > 100 ? text.slice(0, 99) + "…" : text;
}
