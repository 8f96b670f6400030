/**
 * zod's issues as sentences a person can act on: each names its key path and line, and
 * says what to write instead. Union errors (a trigger, a service, an alert) say which
 * kinds exist, and report the problems of the kind the entry meant to be; an unknown key
 * suggests the allowed key nearest to it.
 */
import type { z } from "zod";
import { configSchema } from "./schema.js";

/** One thing wrong with a config file. */
export interface ConfigProblem {
  /** 1-based line in the file, when the key could be found. */
  line: number | undefined;
  /** Dotted key path, e.g. `queues.outline.timeout`; empty for the whole file. */
  key: string;
  message: string;
}

type Issue = z.core.$ZodIssue;
/** The line of a key path in the file (the deepest part of it that exists). */
export type LineOf = (keyPath: readonly PropertyKey[]) => number | undefined;

/** Which key names each kind of a union, so a union error can say which kinds exist. */
const UNION_KINDS: { match: (path: readonly PropertyKey[]) => boolean; kinds: string[]; what: string }[] = [
  { match: (p) => p.length === 2 && p[0] === "triggers", kinds: ["tail", "watch", "file", "schedule"], what: "a trigger" },
  { match: (p) => p.length === 2 && p[0] === "services", kinds: ["queues", "command"], what: "a service" },
  { match: (p) => p.length === 2 && p[0] === "alerts", kinds: ["webhook", "command"], what: "an alert" },
];

/** One zod issue as the problems it stands for (a union issue may stand for several). */
export function describeIssue(issue: Issue, prefix: readonly PropertyKey[], raw: unknown, lineOf: LineOf): ConfigProblem[] {
  const path = [...prefix, ...issue.path];
  const key = path.map(String).join(".");
  const value = valueAt(raw, path);
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) => {
        const known = knownKeys(path, raw);
        const near = known && closest(k, known);
        const hint = near
          ? `did you mean \`${near}\`?`
          : known
            ? `allowed here: ${known.join(", ")}`
            : "remove it";
        return { line: lineOf([...path, k]), key: [...path, k].map(String).join("."), message: `unknown key; ${hint}` };
      });
    case "invalid_union": {
      const union = UNION_KINDS.find((u) => u.match(path));
      if (!union) break;
      const present = union.kinds.filter((k) => isRecord(value) && k in value);
      const allowed = union.kinds.map((k) => `\`${k}\``).join(", ").replace(/, ([^,]*)$/, " or $1");
      if (!isRecord(value)) {
        return [{ line: lineOf(path), key, message: `${union.what} is a mapping with one of ${allowed}` }];
      }
      if (present.length !== 1) {
        const msg =
          present.length === 0
            ? `${union.what} needs one of ${allowed} to say what kind it is`
            : `${union.what} takes only one of ${allowed}, found ${present.join(" and ")}; split it in two`;
        return [{ line: lineOf(path), key, message: msg }];
      }
      const option = issue.errors[union.kinds.indexOf(present[0]!)] ?? [];
      return option.flatMap((sub) => describeIssue(sub, path, raw, lineOf));
    }
    case "invalid_key":
      return [
        {
          line: lineOf(path),
          key,
          message: `the name ${show(String(path[path.length - 1]))} is not allowed; use letters, digits, _ .${path[0] === "queues" ? " :" : ""} and -`,
        },
      ];
    case "invalid_type":
      if (value === undefined) return [{ line: lineOf(path), key, message: `is required; add it` }];
      return [{ line: lineOf(path), key, message: `expected ${article(issue.expected)}, found ${show(value)}` }];
    case "invalid_value":
      return [
        { line: lineOf(path), key, message: `${show(value)} is not allowed; use one of ${issue.values.map(String).join(", ")}` },
      ];
    case "invalid_format":
      return [{ line: lineOf(path), key, message: `${show(value)} is not ${formatName(issue.format)}; ${formatHint(issue)}` }];
    case "too_small":
    case "too_big": {
      const bound = issue.code === "too_small" ? "at least" : "at most";
      const unit = Array.isArray(value) ? " items" : typeof value === "string" ? " characters" : "";
      return [{ line: lineOf(path), key, message: `${show(value)} is out of range; use ${bound} ${String(issue.code === "too_small" ? issue.minimum : issue.maximum)}${unit}` }];
    }
    default:
      break;
  }
  return [{ line: lineOf(path), key, message: issue.message }];
}

function formatName(format: string): string {
  return format === "url" ? "a valid URL" : format === "regex" ? "valid here" : `a valid ${format}`;
}

function formatHint(issue: Extract<Issue, { code: "invalid_format" }>): string {
  if (issue.format === "url") return "write a full URL like http://127.0.0.1:3000/health";
  // zod's own regex message names the pattern; ours (from the schema) say what to write.
  if (issue.format === "regex" && issue.message.startsWith("Invalid")) return "use letters, digits, _ . and -";
  return issue.message;
}

function article(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function show(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/** The keys the schema allows for the object at `path`, or undefined when unknown. */
function knownKeys(path: readonly PropertyKey[], raw: unknown): string[] | undefined {
  let schema: unknown = configSchema;
  for (let i = 0; i <= path.length; i++) {
    schema = unwrap(schema);
    const def = defOf(schema);
    if (def?.type === "union") {
      const value = valueAt(raw, path.slice(0, i));
      const options = (def.options as unknown[]).map(unwrap);
      schema = options.find((o) => {
        const shape = defOf(o)?.shape as Record<string, unknown> | undefined;
        const kinds = Object.keys(shape ?? {}).filter((k) => ["tail", "watch", "file", "schedule", "queues", "command", "webhook"].includes(k));
        return isRecord(value) && kinds.some((k) => k in value);
      });
      if (!schema) return undefined;
      continue;
    }
    if (i === path.length) break;
    const seg = path[i]!;
    if (def?.type === "object") schema = (def.shape as Record<string, unknown>)[String(seg)];
    else if (def?.type === "record") schema = def.valueType;
    else if (def?.type === "array") schema = def.element;
    else return undefined;
  }
  const def = defOf(unwrap(schema));
  return def?.type === "object" ? Object.keys(def.shape as object) : undefined;
}

function defOf(schema: unknown): Record<string, unknown> | undefined {
  return (schema as { _zod?: { def?: Record<string, unknown> } } | undefined)?._zod?.def;
}

/** Sees through default, optional and transform wrappers. */
function unwrap(schema: unknown): unknown {
  for (let i = 0; i < 10; i++) {
    const def = defOf(schema);
    if (def?.type === "default" || def?.type === "optional" || def?.type === "nullable") schema = def.innerType;
    else if (def?.type === "pipe") schema = def.in;
    else break;
  }
  return schema;
}

/** The allowed key nearest to a typo (edit distance ≤ 2), if any. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

