/** Results of the throughput benchmark: medians over runs, ratios, the table and the JSON line. */
import { printTable } from "../../src/cli/output.js";

/** One figure of the JSON line every bench prints last (`{ bench, rows }`). */
export interface BenchRow {
  system: string;
  scenario: string;
  value: number;
  unit: "ms" | "%" | "MB" | "count";
}

export interface Row {
  system: string;
  /** `defaults`, or what was changed (`tuned`, `batch1000`, ...). */
  variant: string;
  scenario: string;
  value: number;
  unit: "jobs/s" | "ms" | "x";
  /** Each run's figure, in run order. */
  runs?: number[];
  /** Some run hit the step's time cap: the figure is from the jobs done by then. */
  partial?: boolean;
}

/** One measurement of one run. */
export interface Sample {
  system: string;
  variant: string;
  scenario: string;
  unit: "jobs/s" | "ms";
  value: number;
  partial: boolean;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

/** Rounds a figure for people and for the JSON: jobs/s to units (0.01 below 100), else to 0.01. */
function round(value: number, unit: Row["unit"]): number {
  return unit === "jobs/s" && value >= 100 ? Math.round(value) : Math.round(value * 100) / 100;
}

/** Medians per (system, variant, scenario), in the order first measured. */
export function summarise(samples: Sample[]): Row[] {
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const k = `${s.system}\u0000${s.variant}\u0000${s.scenario}`;
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  return [...groups.values()].map((g) => {
    const { system, variant, scenario, unit } = g[0]!;
    const row: Row = {
      system,
      variant,
      scenario,
      value: round(median(g.map((s) => s.value)), unit),
      unit,
      runs: g.map((s) => round(s.value, unit)),
    };
    if (g.some((s) => s.partial)) row.partial = true;
    return row;
  });
}

export interface Ratio {
  row: Row;
  /** What the issues ask of it, e.g. `>= 2`; absent when the ratio is only informative. */
  target?: number;
}

function find(rows: Row[], system: string, variant: string, scenario: string): Row | undefined {
  return rows.find((r) => r.system === system && r.variant === variant && r.scenario === scenario);
}

function ratio(rows: Row[], a: [string, string, string], b: [string, string, string], target?: number): Ratio | null {
  const x = find(rows, ...a);
  const y = find(rows, ...b);
  if (!x || !y || !(y.value > 0)) return null;
  const peer = b[1] === "defaults" ? b[0] : `${b[0]}-${b[1]}`;
  const vs = a[2] === b[2] ? peer : `${peer}-${b[2]}`;
  const row: Row = { system: a[0], variant: a[1], scenario: `${a[2]}-vs-${vs}`, value: round(x.value / y.value, "x"), unit: "x" };
  if (x.partial || y.partial) row.partial = true;
  return target === undefined ? { row } : { row, target };
}

/**
 * The ratios the issues ask for: Vigil drain / BullMQ drain (target 2×), Vigil / the raw
 * loop, Vigil on PostgreSQL / each PostgreSQL peer (2× their defaults, 1× Graphile tuned).
 */
export function ratios(rows: Row[]): Ratio[] {
  const out: (Ratio | null)[] = [];
  const levels = ["drain-c1", "drain-c10", "drain-c50"];
  for (const d of levels) out.push(ratio(rows, ["vigil-sqlite", "defaults", d], ["bullmq-redis", "defaults", d], 2));
  out.push(ratio(rows, ["vigil-sqlite", "defaults", "drain-c1"], ["raw-sqlite", "defaults", "drain-tx1"]));
  out.push(ratio(rows, ["vigil-sqlite", "defaults", "drain-c50"], ["raw-sqlite", "defaults", "drain-tx50"]));
  const peers: [string, string, number | undefined][] = [
    ["bullmq-postgres", "defaults", 2],
    ["pg-boss", "defaults", 2],
    ["pg-boss", "batch1000", undefined],
    ["graphile-worker", "defaults", 2],
    ["graphile-worker", "tuned", 1],
  ];
  for (const d of levels) {
    for (const [system, variant, target] of peers) {
      out.push(ratio(rows, ["vigil-postgres", "defaults", d], [system, variant, d], target));
    }
  }
  return out.filter((r): r is Ratio => r !== null);
}

export function printResults(rows: Row[], rs: Ratio[]): void {
  process.stdout.write("\nResults (median of runs; each run's figure in brackets):\n");
  printTable(
    ["system", "variant", "scenario", "value", "unit", "runs", "note"],
    rows.map((r) => [r.system, r.variant, r.scenario, r.value, r.unit, `[${(r.runs ?? []).join(", ")}]`, r.partial ? "partial: hit the time cap" : ""]),
  );
  process.stdout.write("\nRatios:\n");
  printTable(
    ["system", "ratio", "value", "target", "met", "note"],
    rs.map(({ row, target }) => [
      row.system,
      row.scenario,
      `${row.value}x`,
      target === undefined ? "" : `>= ${target}x`,
      target === undefined ? "" : row.value >= target ? "yes" : "no",
      row.partial ? "a side hit the time cap" : "",
    ]),
  );
}
