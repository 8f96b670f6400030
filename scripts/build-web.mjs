#!/usr/bin/env node
// Bundles the dashboard (src/web/, Preact + uPlot in TSX) into dist/web/ — app.js, app.css
// and index.html — which src/http/static.ts serves. Run by `npm run build`, so `npm install`
// (whose prepare step builds) produces it. Fails when the page, gzipped, is over budget.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "dist", "web");
/** The whole page (HTML, JS, CSS) gzipped must stay under this: it loads fast over any link. */
export const BUDGET_GZIP_BYTES = 150 * 1024;

mkdirSync(OUT, { recursive: true });
await build({
  entryPoints: [join(ROOT, "src", "web", "main.tsx")],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  jsx: "automatic",
  jsxImportSource: "preact",
  outfile: join(OUT, "app.js"),
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync(join(ROOT, "src", "web", "index.html"), join(OUT, "index.html"));

const sizes = ["index.html", "app.js", "app.css"].map((f) => {
  const raw = readFileSync(join(OUT, f));
  return { f, raw: raw.length, gz: gzipSync(raw, { level: 9 }).length };
});
const total = sizes.reduce((n, s) => n + s.gz, 0);
const line = sizes.map((s) => `${s.f} ${(s.gz / 1024).toFixed(1)} KiB`).join(", ");
if (total > BUDGET_GZIP_BYTES) {
  process.stderr.write(`dashboard over budget: ${(total / 1024).toFixed(1)} KiB gzipped (${line}); the budget is ${BUDGET_GZIP_BYTES / 1024} KiB\n`);
  process.exit(1);
}
process.stdout.write(`dashboard: ${(total / 1024).toFixed(1)} KiB gzipped (${line})\n`);
