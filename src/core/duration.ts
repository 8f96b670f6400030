/** Durations as people write them in config and on the command line: `500ms`, `2s`, `5m`. */

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/**
 * Parses `500ms`, `2s`, `1.5m`, `5m`, `24h`, `7d` into milliseconds. A bare number is
 * milliseconds. Returns `undefined` for anything else, so callers can say where it was.
 */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? input : undefined;
  const s = input.trim();
  if (/^\d+$/.test(s)) return Number(s);
  const m = PATTERN.exec(s);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

/** Like `parseDuration`, but throws an error that names `what`. */
export function requireDuration(input: string | number, what: string): number {
  const ms = parseDuration(input);
  if (ms === undefined) {
    throw new Error(`${what}: "${input}" is not a duration; write it like 500ms, 2s, 5m, 24h or 7d`);
  }
  return ms;
}

/** Short human form: 850ms, 2.5s, 3m 20s, 4h 2m, 3d 4h. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m ${Math.floor((ms % 60_000) / 1000)}s`;
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)}h ${Math.floor((ms % 3_600_000) / 60_000)}m`;
  return `${Math.floor(ms / 86_400_000)}d ${Math.floor((ms % 86_400_000) / 3_600_000)}h`;
}

/** Sizes: `1mb`, `512kb`, `200MB`, or a bare number of bytes. */
export function parseSize(input: string | number): number | undefined {
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? input : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|k|mb|m|gb|g)?$/i.exec(input.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? "b").toLowerCase();
  const mult = unit.startsWith("g") ? 1 << 30 : unit.startsWith("m") ? 1 << 20 : unit.startsWith("k") ? 1024 : 1;
  return Math.round(Number(m[1]) * mult);
}
