/**
 * Generates docs/configuration.md from the zod schema in src/config/schema.ts, so the
 * reference cannot drift from the code: keys, types and defaults come from the schema
 * object itself; descriptions from the TSDoc comment above each key in the schema's
 * source. test/unit/docs.test.ts fails when the committed file differs from this output.
 *
 *   npx tsx scripts/gen-config-doc.ts          rewrite docs/configuration.md
 *   npx tsx scripts/gen-config-doc.ts --check  exit 1 if it is out of date
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  alertSchema,
  configSchema,
  queueSchema,
  serviceSchema,
  supervisionSchema,
  triggerSchema,
} from "../src/config/schema.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CONFIG_DOC = `${ROOT}docs/configuration.md`;
const SCHEMA_SOURCE = `${ROOT}src/config/schema.ts`;

/** Descriptions for keys the schema's source leaves without a comment. */
const EXTRA: Record<string, string> = {
  "http.host": "Interface the dashboard, JSON API and /metrics bind to. Keep it on loopback unless a proxy with authentication sits in front.",
  "http.port": "Port of the HTTP server (0 picks a free one).",
  "http.enabled": "Start the HTTP server with the supervisor.",
  "queues.NAME.backoff.base": "First retry delay.",
  "queues.NAME.backoff.max": "Longest retry delay.",
  "queues.NAME.group.limit": "Active jobs of one group over every worker and host.",
  "queues.NAME.group.rate": "Job starts of one group per interval over every worker and host, e.g. `10/1m`.",
  "triggers.NAME.format": "`lines`: payload `{ line }`; `jsonl`: each line parsed as JSON (invalid lines are rejected records).",
  "triggers.NAME.every": "Poll interval of a tail, watch or file trigger (default 2 s); a schedule trigger wakes at its ticks instead.",
  "triggers.NAME.onDelete": "`enqueue` makes a job when a watched file is deleted; `ignore` (default) does not.",
  "services.NAME.instances": "Processes of this service (rows `NAME:1`, `NAME:2`, ...).",
  "services.NAME.env": "Environment added to the service's processes.",
  "services.NAME.cwd": "Working folder of the command (default: the config file's folder).",
  "alerts[].timeout": "A delivery that takes longer is abandoned and retried with backoff.",
  "alerts[].headers": "Extra HTTP headers for the webhook (e.g. an authorization header).",
  "alerts[].webhook": "URL that receives each alert as a JSON POST.",
  "alerts[].command": "Program run without a shell for each alert, with the alert JSON on stdin.",
  "services.NAME.command": "A foreign command, run without a shell (argv list).",
  "retention.completed": "Completed jobs finished longer ago than this are pruned (totals are kept).",
  "retention.dead": "Dead jobs (and cancelled ones, unless `retention.cancelled` is set) finished longer ago than this are pruned (totals are kept).",
  "retention.cancelled": "Cancelled jobs finished longer ago than this are pruned (totals are kept); unset, they go with dead jobs.",
};

type Def = { type: string; [k: string]: any };
const def = (s: unknown): Def => (s as { _zod: { def: Def } })._zod.def;

const BLOCKS = new Map<unknown, string>([
  [queueSchema, "queueSchema"],
  [triggerSchema, "triggerSchema"],
  [serviceSchema, "serviceSchema"],
  [supervisionSchema, "supervisionSchema"],
  [alertSchema, "alertSchema"],
  [configSchema, "configSchema"],
]);

/** key → description, per `const NAME` block of the schema's source. */
function sourceComments(): Map<string, Map<string, string>> {
  const blocks = new Map<string, Map<string, string>>();
  let block = "";
  let pending: string | null = null;
  for (const line of readFileSync(SCHEMA_SOURCE, "utf8").split("\n")) {
    const decl = /^(?:export )?const (\w+)/.exec(line);
    if (decl) {
      block = decl[1]!;
      blocks.set(block, new Map());
    }
    const doc = /^\s*\/\*\*\s*(.*?)\s*\*\/\s*$/.exec(line);
    if (doc) {
      pending = doc[1]!;
      continue;
    }
    const key = /^\s*(\w+):/.exec(line);
    if (key && pending !== null && !blocks.get(block)?.has(key[1]!)) blocks.get(block)?.set(key[1]!, pending);
    pending = null;
  }
  return blocks;
}

interface Row {
  variant?: string;
  path: string;
  type: string;
  dflt: string;
  desc: string;
}

function fmtMs(ms: number): string {
  for (const [unit, n] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms >= n && ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}

function fmtSize(b: number): string {
  for (const [unit, n] of [["gb", 1 << 30], ["mb", 1 << 20], ["kb", 1024]] as const) {
    if (b >= n && b % n === 0) return `${b / n}${unit}`;
  }
  return String(b);
}

/** What a leaf accepts, found by probing its parser (durations and sizes are strings in, numbers out). */
function leafType(schema: unknown): { type: string; show: (v: unknown) => string } {
  const d = def(schema);
  const plain = { show: (v: unknown) => JSON.stringify(v) };
  const probe = (input: unknown): unknown => {
    const r = (schema as { safeParse(x: unknown): { success: boolean; data?: unknown } }).safeParse(input);
    return r.success ? r.data : undefined;
  };
  if (d.type === "pipe") {
    if (probe("2s") === 2000) return { type: "duration", show: (v) => (typeof v === "number" ? fmtMs(v) : String(v)) };
    if (probe("1kb") === 1024) return { type: "size", show: (v) => (typeof v === "number" ? fmtSize(v) : String(v)) };
    const r = probe("10/5m") as { count?: number } | undefined;
    if (r && r.count === 10) {
      return { type: "count/window", show: (v) => (v && typeof v === "object" ? `${(v as any).count}/${fmtMs((v as any).windowMs)}` : String(v)) };
    }
    return { type: "string", ...plain };
  }
  if (d.type === "enum") return { type: Object.values(d.entries as Record<string, string>).map((e) => `\`${e}\``).join(" \\| "), ...plain };
  if (d.type === "array") return { type: `list of ${leafType(d.element).type}`, ...plain };
  if (d.type === "record" && def(d.valueType).type === "unknown") return { type: "mapping", ...plain };
  if (d.type === "record") return { type: `map of ${leafType(d.valueType).type}`, ...plain };
  if (d.type === "union") return { type: d.options.map((o: unknown) => leafType(o).type).join(" or "), ...plain };
  return { type: d.type, ...plain };
}

function walk(
  schema: unknown,
  path: string,
  block: string,
  comments: Map<string, Map<string, string>>,
  rows: Row[],
  outer?: { dflt?: unknown; optional?: boolean; variant?: string },
): void {
  block = BLOCKS.get(schema) ?? block;
  const d = def(schema);
  if (d.type === "default") return walk(d.innerType, path, BLOCKS.get(schema) ?? block, comments, rows, { ...outer, dflt: d.defaultValue });
  if (d.type === "optional") return walk(d.innerType, path, block, comments, rows, { ...outer, optional: true });
  const key = path.split(/[.[]/).pop()!.replace(/\]$/, "");
  const desc = () => EXTRA[path] ?? comments.get(block)?.get(key) ?? comments.get("triggerCommon")?.get(key) ?? "";
  if (d.type === "object") {
    if (path && desc() && !/\.NAME$|\[\]$/.test(path)) rows.push({ path, type: "object", dflt: "", desc: desc() });
    for (const [k, v] of Object.entries(d.shape as Record<string, unknown>)) {
      walk(v, path ? `${path}.${k}` : k, block, comments, rows, { variant: outer?.variant });
    }
    return;
  }
  if (d.type === "record" && !["pipe", "string", "unknown"].includes(def(d.valueType).type)) {
    return walk(d.valueType, `${path}.NAME`, block, comments, rows);
  }
  if (d.type === "array" && def(d.element).type === "union") return walk(d.element, `${path}[]`, block, comments, rows);
  if (d.type === "union" && d.options.every((o: unknown) => def(o).type === "object")) {
    for (const o of d.options as unknown[]) {
      walk(o, path, block, comments, rows, { variant: Object.keys(def(o).shape as object)[0] });
    }
    return;
  }
  const leaf = leafType(schema);
  // A default inside a transform (`.default("10/5m").transform(...)`) sits on the pipe's input.
  const inner = d.type === "pipe" && def(d.in).type === "default" ? def(d.in).defaultValue : undefined;
  const dflt =
    outer?.dflt !== undefined
      ? `\`${leaf.show(outer.dflt)}\``
      : inner !== undefined
        ? `\`${String(inner)}\``
        : outer?.optional
          ? "(unset)"
          : "required";
  const seen = rows.find((r) => r.path === path);
  if (seen) {
    // A key shared by union variants is listed once; differing defaults are named per form.
    if (seen.dflt !== dflt) seen.dflt += ` (${seen.variant}); ${dflt} (${outer?.variant})`;
    return;
  }
  rows.push({ path, type: leaf.type, dflt, desc: desc(), variant: outer?.variant });
}

const INTRO = `# Configuration reference

<!-- Generated by scripts/gen-config-doc.ts from src/config/schema.ts; do not edit by hand.
     test/unit/docs.test.ts fails when this file is out of date: run
     \`npx tsx scripts/gen-config-doc.ts\` after changing the schema. -->

Vigil reads \`vigil.yaml\` (or the file given with \`vigil -c FILE start\`). Unknown keys and
bad values are errors that name the key path and the line. Durations are written like
\`500ms\`, \`2s\`, \`5m\`, \`24h\`, \`7d\`; sizes like \`512kb\`, \`1mb\`. Relative paths are
relative to the config file's folder. \`NAME\` stands for a name you choose (a queue, a
trigger, a service); \`alerts[]\` is a list.

A trigger is one of \`tail\`, \`watch\`, \`file\` or \`schedule\` (see docs/schedules.md); a
service is either a worker service (\`queues\`) or a command (\`command\`); an alert is a
\`webhook\` or a \`command\`. Keys that only apply to one form say so in their description.
`;

/** The whole of docs/configuration.md. */
export function renderConfigDoc(): string {
  const rows: Row[] = [];
  walk(configSchema, "", "configSchema", sourceComments(), rows);
  const sections = new Map<string, Row[]>();
  for (const r of rows) {
    const top = r.path.split(/[.[]/)[0]!;
    const list = sections.get(top) ?? [];
    list.push(r);
    sections.set(top, list);
  }
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  let out = INTRO;
  for (const [top, list] of sections) {
    out += `\n## \`${top}\`\n\n| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n`;
    for (const r of list) out += `| \`${r.path}\` | ${r.type} | ${r.dflt} | ${esc(r.desc)} |\n`;
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = renderConfigDoc();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(CONFIG_DOC, "utf8");
    } catch {
      // missing counts as out of date
    }
    if (current !== text) {
      process.stderr.write("docs/configuration.md is out of date; run `npx tsx scripts/gen-config-doc.ts`\n");
      process.exit(1);
    }
  } else {
    writeFileSync(CONFIG_DOC, text);
    process.stdout.write(`wrote ${CONFIG_DOC}\n`);
  }
}
