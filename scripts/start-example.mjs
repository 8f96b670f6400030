#!/usr/bin/env node
// `npm start`: runs the ideas pipeline example under Vigil's supervisor, in the foreground,
// on the embedded SQLite store. Prints where to look, then a line each time an idea is
// done. Ctrl-C stops everything cleanly.
//
//   npm start                 the example as it is
//   npm start -- --chaos      handlers occasionally crash, hang or block (also: npm run start:chaos)
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const VIGIL = join(ROOT, "bin", "vigil");
const CONFIG = join(ROOT, "examples", "ideas-pipeline", "vigil.yaml");
const CONFIG_REL = relative(process.cwd(), CONFIG) || CONFIG;
/**
 * How often progress is read from the store (through `vigil jobs list`). Each read is a
 * short CLI process; 2 s shows progress promptly and costs a few percent of one core.
 * Once every idea is done it slows to 10 s, enough to notice ideas added later.
 */
const PROGRESS_EVERY_MS = 2000;
const IDLE_PROGRESS_EVERY_MS = 10_000;

const { values } = parseArgs({
  options: { chaos: { type: "boolean" }, help: { type: "boolean", short: "h" } },
});
if (values.help) {
  process.stdout.write("usage: npm start [-- --chaos]\n");
  process.exit(0);
}
if (!existsSync(join(ROOT, "dist", "cli", "main.js"))) {
  process.stderr.write("vigil is not built yet: run `npm install` (or `npm run build`) first\n");
  process.exit(1);
}

const { ensureSeeded, readIdeas } = await import("../examples/ideas-pipeline/scripts/seed.mjs");
const seeded = ensureSeeded();
const chaos = values.chaos || process.env.VIGIL_CHAOS === "1";
const env = { ...process.env, ...(chaos ? { VIGIL_CHAOS: "1" } : {}) };
const cli = (...args) => `./bin/vigil ${args.join(" ")} -c ${CONFIG_REL}`;

process.stdout.write(
  [
    `Vigil: running the ideas pipeline (${CONFIG_REL}) on SQLite${chaos ? ", with chaos on" : ""}.`,
    seeded ? `  seeded data/ideas.log with ${readIdeas().length} ideas` : `  ideas: ${readIdeas().length} in data/ideas.log`,
    `  status:     ${cli("status")}`,
    `  incidents:  ${cli("incidents")}`,
    `  jobs:       ${cli("jobs list")}`,
    `  dashboard:  http://127.0.0.1:7420/`,
    `  add ideas:  node examples/ideas-pipeline/scripts/add-idea.mjs "Title" "description"`,
    `  output:     examples/ideas-pipeline/data/ (outlines/, implementations/, qa-issues.jsonl)`,
    chaos ? "  chaos:      handlers will crash, hang and block now and then; watch Vigil recover" : "  chaos:      npm run start:chaos (or npm start -- --chaos)",
    "Ctrl-C stops everything.",
    "",
  ].join("\n"),
);

const started = Date.now();
const supervisor = spawn(process.execPath, [VIGIL, "start", "-c", CONFIG], { cwd: ROOT, env, stdio: "inherit" });
supervisor.on("error", (err) => {
  process.stderr.write(`could not start vigil: ${err.message}\n`);
  process.exitCode = 1;
});

// Ctrl-C in a terminal reaches the whole foreground process group, the supervisor
// included; a SIGTERM sent to this script alone (npm, a service manager) is passed on.
let stopping = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (!stopping) process.stdout.write("\nstopping Vigil (it lets running jobs finish)...\n");
    stopping = true;
    if (supervisor.exitCode === null) supervisor.kill(sig === "SIGINT" ? "SIGINT" : "SIGTERM");
  });
}

/** Ideas whose QA passed, by id, read from the store through the CLI's JSON. */
function doneIdeas() {
  const res = spawnSync(process.execPath, [VIGIL, "jobs", "list", "--queue", "qa", "--state", "completed", "--limit", "0", "--json", "-c", CONFIG], {
    cwd: ROOT,
    encoding: "utf8",
    // A read that takes longer than this is skipped; the next poll tries again.
    timeout: 15_000,
  });
  if (res.status !== 0) return null;
  try {
    const done = new Set();
    for (const job of JSON.parse(res.stdout)) {
      if (job.result?.verdict === "pass" && typeof job.result.idea === "string") done.add(job.result.idea);
    }
    return done;
  } catch {
    return null;
  }
}

let reported = 0;
let allDoneSaid = false;
let timer = setTimeout(poll, PROGRESS_EVERY_MS);
function poll() {
  if (stopping || supervisor.exitCode !== null) return;
  const done = doneIdeas();
  const total = readIdeas().length;
  if (done && done.size !== reported) {
    reported = done.size;
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    process.stdout.write(`[${secs} s] ideas done: ${done.size}/${total}\n`);
    if (done.size >= total && !allDoneSaid) {
      allDoneSaid = true;
      process.stdout.write(
        `All ${total} ideas are done (outline -> implement -> qa) in ${secs} s. ` +
          `See ${cli("status")}, or add one with add-idea.mjs. Ctrl-C to stop.\n`,
      );
    }
  }
  if (done && done.size < total) allDoneSaid = false;
  timer = setTimeout(poll, allDoneSaid ? IDLE_PROGRESS_EVERY_MS : PROGRESS_EVERY_MS);
}

supervisor.on("exit", (code, signal) => {
  clearTimeout(timer);
  if (!stopping) {
    process.stderr.write(`vigil start exited (${signal ?? `code ${code}`}); see the messages above\n`);
  }
  process.exit(code ?? (stopping ? 0 : 1));
});
