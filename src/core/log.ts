/**
 * Vigil's one logger: pino everywhere. Worker and triggers processes write pino's JSON
 * lines (process-setup.ts); the supervisor, whose log is read by people, renders the same
 * records as text lines (`textLogger`). Errors are logged as objects, `{ err }`, so their
 * code and stack survive; never as `err.message`.
 */
import { pino, type Logger } from "pino";

export type { Logger };

/** Drops everything; the default where no logger is given. */
export const silentLogger: Logger = pino({ level: "silent" });

/** The fields of a pino record that a text line shows by themselves. */
const SHOWN = new Set(["level", "time", "msg", "err", "pid", "hostname"]);

/**
 * A logger whose records are written as one readable line each,
 * `2026-01-02T03:04:05.678Z vigil: MESSAGE` followed by the other fields (`key=value`),
 * then the error's message and code; an error-level record adds the error's stack, indented.
 */
export function textLogger(write: (line: string) => void = (line) => void process.stderr.write(line), level = process.env.VIGIL_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: undefined }, { write: (json: string) => write(textLine(JSON.parse(json) as Record<string, unknown>)) });
}

/** One pino record as a text line (with its newline). */
export function textLine(rec: Record<string, unknown>): string {
  let line = `${new Date(typeof rec.time === "number" ? rec.time : Date.now()).toISOString()} vigil: ${String(rec.msg ?? "")}`;
  const fields = Object.entries(rec).filter(([k]) => !SHOWN.has(k));
  if (fields.length > 0) line += ` (${fields.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ")})`;
  const err = rec.err as { message?: string; code?: unknown; stack?: string } | undefined;
  if (err) {
    line += `: ${err.message ?? String(err)}`;
    if (err.code !== undefined) line += ` [${String(err.code)}]`;
    if (typeof rec.level === "number" && rec.level >= 50 && err.stack) line += `\n${err.stack.replace(/^/gm, "    ")}`;
  }
  return `${line}\n`;
}
