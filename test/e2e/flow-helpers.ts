/**
 * What the flow-control process tests share: a handler that writes each run (its start,
 * end and process) to a ledger file in its project folder, and the checks read from it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const LEDGER_FILES = {
  // One line per run, written when it ends: its start and end times and its process.
  "ledger.mjs": `import { appendFileSync, existsSync, writeFileSync } from "node:fs";
export default async function ledger(job, ctx) {
  const start = Date.now();
  // r429: the first run of this job is told "too many requests" and holds its queue.
  const marker = new URL("./r429-" + job.id, import.meta.url);
  if (job.payload.r429 && !existsSync(marker)) {
    writeFileSync(marker, String(start));
    ctx.rateLimited(Number(job.payload.r429), "HTTP 429");
  }
  // block=ms: hold this process's event loop (the next handlers of its claim start late).
  const block = Number(job.payload.block ?? 0);
  while (Date.now() - start < block) {}
  const hold = Number(job.payload.hold ?? 0);
  if (hold > 0) await new Promise((r) => setTimeout(r, hold));
  const line = { id: job.id, customer: job.payload.customer ?? null, start, end: Date.now(), pid: process.pid };
  appendFileSync(new URL("./ledger-" + job.queue + ".log", import.meta.url), JSON.stringify(line) + "\\n");
  return null;
}`,
};

export interface Run {
  id: number;
  customer: string | null;
  start: number;
  end: number;
  pid: number;
}

/** The runs of `queue` in a project folder's ledger. */
export function ledger(p: { dir: string }, queue: string): Run[] {
  try {
    return readFileSync(join(p.dir, `ledger-${queue}.log`), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Run);
  } catch {
    return [];
  }
}

/** The most times in any half-open window [t, t + ms). */
export function maxInWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** The most runs going at once ([start, end) intervals). */
export function maxOverlap(runs: Run[]): number {
  const edges = runs.flatMap((r) => [
    [r.start, 1],
    [r.end, -1],
  ]) as [number, number][];
  // Ends before starts at the same instant: a run that ended at t and one that began at t do not overlap.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let best = 0;
  for (const [, d] of edges) best = Math.max(best, (now += d));
  return best;
}
