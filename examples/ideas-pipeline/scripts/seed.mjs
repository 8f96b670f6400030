// Seeds data/ideas.log from seeds.jsonl the first time the example runs, so the committed
// example stays pristine and everything written at run time lives in data/ (ignored by git).
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The example's folder. */
export const EXAMPLE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The log the `ideas` tail trigger reads (see vigil.yaml). */
export const IDEAS_LOG = join(EXAMPLE_DIR, "data", "ideas.log");
const SEEDS = join(EXAMPLE_DIR, "seeds.jsonl");

/**
 * Creates data/ideas.log from seeds.jsonl if it does not exist yet; an existing log (and
 * the trigger's cursor into it) is left alone. Returns true when it seeded.
 */
export function ensureSeeded(log = IDEAS_LOG) {
  if (existsSync(log)) return false;
  mkdirSync(dirname(log), { recursive: true });
  // Copy then rename: the trigger never sees a half-written seed file.
  const tmp = `${log}.${process.pid}.tmp`;
  copyFileSync(SEEDS, tmp);
  renameSync(tmp, log);
  return true;
}

/** The ideas in the log (or the seeds when there is no log yet), parsed; bad lines skipped. */
export function readIdeas(log = IDEAS_LOG) {
  const text = readFileSync(existsSync(log) ? log : SEEDS, "utf8");
  const ideas = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      ideas.push(JSON.parse(line));
    } catch {
      // The trigger records such a line as rejected; it is not an idea to wait for.
    }
  }
  return ideas;
}
