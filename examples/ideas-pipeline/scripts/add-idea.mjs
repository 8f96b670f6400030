#!/usr/bin/env node
// Appends an idea to data/ideas.log; the `ideas` trigger turns it into an `outline` job
// within a poll (1 s). Seeds the log first if it does not exist yet.
//
//   node examples/ideas-pipeline/scripts/add-idea.mjs "Title" ["description"] [--id ID]
//   node examples/ideas-pipeline/scripts/add-idea.mjs --seed      (only seed the log)
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { IDEAS_LOG, ensureSeeded, readIdeas } from "./seed.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { id: { type: "string" }, seed: { type: "boolean" }, help: { type: "boolean", short: "h" } },
});

if (values.help || (!values.seed && positionals.length === 0)) {
  process.stdout.write('usage: add-idea.mjs "Title" ["description"] [--id ID] | add-idea.mjs --seed\n');
  process.exit(values.help ? 0 : 1);
}

const seeded = ensureSeeded();
if (seeded) process.stdout.write(`seeded ${IDEAS_LOG} with ${readIdeas().length} ideas\n`);
if (values.seed) process.exit(0);

const [title, description = ""] = positionals;
if (!title?.trim()) {
  process.stderr.write("add-idea: the title must not be empty\n");
  process.exit(1);
}
const taken = new Set(readIdeas().map((i) => i.id));
let id = values.id ?? `idea-${taken.size + 1}`;
for (let n = taken.size + 2; !values.id && taken.has(id); n++) id = `idea-${n}`;
if (taken.has(id)) {
  process.stderr.write(`add-idea: ${id} is already in ${IDEAS_LOG}; pick another --id\n`);
  process.exit(1);
}
// One complete line in one append: the trigger only reads lines that end in a newline.
appendFileSync(IDEAS_LOG, JSON.stringify({ id, title: title.trim(), description: description.trim() }) + "\n");
process.stdout.write(`added ${id} to ${IDEAS_LOG}\n`);
