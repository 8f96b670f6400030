#!/usr/bin/env node
// Runs a benchmark script: `node bench/run.mjs NAME [args]` → bench/NAME.ts under tsx.
// A plain launcher so `npm run bench -- NAME` needs no build step.
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [name, ...args] = process.argv.slice(2);
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.slice(0, -3));

if (!name || !/^[a-z0-9-]+$/.test(name) || !existsSync(join(here, `${name}.ts`))) {
  process.stderr.write(
    `usage: npm run bench -- NAME [args]; NAME is one of: ${available.join(", ") || "(none yet)"}\n`,
  );
  process.exit(2);
}

const child = spawn(process.execPath, ["--import", "tsx", join(here, `${name}.ts`), ...args], {
  stdio: "inherit",
  shell: false,
});
child.on("error", (err) => {
  process.stderr.write(`bench: could not start ${name}: ${err.message}\n`);
  process.exit(1);
});
// Ctrl-C reaches the child through the terminal's process group; forward a plain
// SIGTERM ourselves so the script can clean up its stores and child processes.
process.on("SIGTERM", () => child.kill("SIGTERM"));
process.on("SIGINT", () => {});
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
