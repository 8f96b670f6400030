/** How the CLI speaks: tables for people, `--json` for programs, one-line errors. */
import { VigilError } from "../core/errors.js";

/** Prints rows as an aligned table with a header; `(none)` when empty. */
export function printTable(headers: string[], rows: (string | number | null | undefined)[][]): void {
  if (rows.length === 0) {
    process.stdout.write("(none)\n");
    return;
  }
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const lines = cells.map((r) => r.map((c, i) => (c ?? "").padEnd(widths[i]!)).join("  ").trimEnd());
  process.stdout.write(lines.join("\n") + "\n");
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** One clear line on stderr and a non-zero exit; the stack only with --debug. */
export function exitWithError(err: unknown, debug = false): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`vigil: ${msg}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
  process.exit(err instanceof VigilError && err.code === "NOT_FOUND" ? 3 : 1);
}

/** ISO time without milliseconds, or '-'. */
export function fmtTime(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z") : "-";
}
