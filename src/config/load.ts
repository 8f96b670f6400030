/**
 * Loading `vigil.yaml`: parse the YAML (keeping line numbers), validate it with the zod
 * schema, check what the schema cannot (files that must exist, queues that must be
 * defined), and resolve relative paths against the config file's folder, so the rest of
 * Vigil never depends on the directory it was started from.
 *
 * Every problem is reported at once, each as `FILE:LINE: key.path: what is wrong; what to
 * do`, so a person fixes a config in one round instead of one error per run.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { VigilError } from "../core/errors.js";
import { resolveStoreUrl } from "../core/store-url.js";
import { describeIssue, isRecord, type ConfigProblem, type LineOf } from "./issues.js";
import { configSchema, type VigilConfig } from "./schema.js";

export type { ConfigProblem } from "./issues.js";

/** A validated config and where it came from. */
export interface LoadedConfig {
  /** The validated config: defaults applied, durations in ms, paths absolute. */
  config: VigilConfig;
  /** Absolute path of the config file. */
  path: string;
  /** Absolute path of its folder: relative paths in the config are resolved against it. */
  dir: string;
}

/** A config that cannot be used; `problems` lists every one found, in file order. */
export class ConfigError extends VigilError {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    const lines = problems.map((p) => formatProblem(file, p));
    super(
      "CONFIG",
      lines.length === 1 ? lines[0]! : `${lines.length} problems in ${file}:\n  ${lines.join("\n  ")}`,
    );
  }
}

function formatProblem(file: string, p: ConfigProblem): string {
  const where = p.line === undefined ? file : `${file}:${p.line}`;
  return p.key ? `${where}: ${p.key}: ${p.message}` : `${where}: ${p.message}`;
}

/**
 * Reads and validates a config file. Throws `ConfigError` (code `CONFIG`) listing every
 * problem, or saying how to create the file when it does not exist.
 */
export async function loadConfig(path: string): Promise<LoadedConfig> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new VigilError(
        "CONFIG",
        `no config file at ${abs}; create one (the smallest is a line like "queues: { hello: { handler: ./hello.ts } }"), ` +
          `see the README's vigil.yaml section, or pass another with -c FILE`,
        { cause: err },
      );
    }
    throw new VigilError("CONFIG", `cannot read config file ${abs}: ${(err as Error).message}`, { cause: err });
  }
  return withHostOverride(parseConfigText(text, abs));
}

/**
 * The environment variable that overrides the config's `host` (and the OS host name):
 * two `vigil start` on one machine can then act as two hosts (tests, staging).
 */
export const ENV_HOST = "VIGIL_HOST";

/** Applies `VIGIL_HOST`, when set and not blank, over the config's `host`. */
function withHostOverride(loaded: LoadedConfig): LoadedConfig {
  const host = process.env[ENV_HOST]?.trim();
  if (host) loaded.config.host = host;
  return loaded;
}

/**
 * Validates config text as if it were the file at `path` (which need not exist; its folder
 * is where relative paths resolve). Used by `loadConfig` and by tests.
 */
export function parseConfigText(text: string, path: string): LoadedConfig {
  const abs = resolve(path);
  const dir = dirname(abs);
  const shown = displayName(abs);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      shown,
      doc.errors.map((e) => ({
        line: e.linePos?.[0]?.line,
        key: "",
        message: `not valid YAML: ${e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")}; check the indentation and quoting there`,
      })),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  const lineOf = (keyPath: readonly PropertyKey[]) => locate(doc.contents, keyPath, lineCounter);
  if (typeof raw !== "object" || Array.isArray(raw) || raw === null) {
    throw new ConfigError(shown, [
      { line: 1, key: "", message: "the file must be a mapping of keys (store, queues, triggers, services, ...)" },
    ]);
  }

  const problems: ConfigProblem[] = [];
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...describeIssue(issue, [], raw, lineOf));
  }
  problems.push(...crossCheck(raw as Record<string, unknown>, dir, lineOf));
  if (problems.length > 0 || !parsed.success) {
    problems.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    throw new ConfigError(shown, dedupe(problems));
  }
  return { config: resolvePaths(parsed.data, dir), path: abs, dir };
}

/** The file as a person would name it: relative to the working folder when inside it. */
function displayName(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.line}|${p.key}|${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// --- where a key is --------------------------------------------------------------------

/** The line of the deepest key along `keyPath` that exists in the document. */
function locate(root: unknown, keyPath: readonly PropertyKey[], lc: LineCounter): number | undefined {
  let node: unknown = root;
  let line = startLine(node, lc);
  for (const seg of keyPath) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (!pair) break;
      line = startLine(pair.key, lc) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg];
      if (item === undefined) break;
      line = startLine(item, lc) ?? line;
      node = item;
    } else {
      break;
    }
  }
  return line;
}

function startLine(node: unknown, lc: LineCounter): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? lc.linePos(range[0]).line : undefined;
}

// --- what the schema cannot check ------------------------------------------------------

/**
 * Files that must exist and queues that must be defined. Runs on the raw document (with
 * type guards) so these problems are listed together with the schema's.
 */
function crossCheck(raw: Record<string, unknown>, dir: string, lineOf: LineOf): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const queues = isRecord(raw.queues) ? raw.queues : {};
  const names = Object.keys(queues);
  const known = names.length ? `defined queues: ${names.join(", ")}` : "no queues are defined";
  const needQueue = (path: PropertyKey[], name: unknown) => {
    if (typeof name === "string" && !(name in queues)) {
      problems.push({
        line: lineOf(path),
        key: path.join("."),
        message: `queue "${name}" is not defined; add it under \`queues:\` (${known})`,
      });
    }
  };
  const needProgram = (path: PropertyKey[], cmd: unknown, cwd: string) => {
    const program = Array.isArray(cmd) ? cmd[0] : undefined;
    if (typeof program !== "string" || !program.includes("/")) return; // found on PATH at run time
    const abs = resolve(cwd, program);
    if (!existsSync(abs)) {
      problems.push({
        line: lineOf(path),
        key: path.join("."),
        message: `program ${program} does not exist (looked for ${abs}); fix the path, relative to ${cwd}`,
      });
    }
  };

  for (const [name, q] of Object.entries(queues)) {
    if (!isRecord(q)) continue;
    if (typeof q.handler === "string") {
      const abs = resolve(dir, q.handler);
      if (!existsSync(abs)) {
        problems.push({
          line: lineOf(["queues", name, "handler"]),
          key: `queues.${name}.handler`,
          message: `handler file ${q.handler} does not exist (looked for ${abs}); fix the path, relative to the config file's folder`,
        });
      }
    }
    needProgram(["queues", name, "command"], q.command, resolve(dir, typeof q.cwd === "string" ? q.cwd : "."));
    needQueue(["queues", name, "next"], q.next);
  }
  if (isRecord(raw.triggers)) {
    for (const [name, t] of Object.entries(raw.triggers)) if (isRecord(t)) needQueue(["triggers", name, "queue"], t.queue);
  }
  if (isRecord(raw.services)) {
    for (const [name, s] of Object.entries(raw.services)) {
      if (!isRecord(s)) continue;
      if (Array.isArray(s.queues)) s.queues.forEach((q, i) => needQueue(["services", name, "queues", i], q));
      needProgram(["services", name, "command"], s.command, resolve(dir, typeof s.cwd === "string" ? s.cwd : "."));
    }
  }
  if (Array.isArray(raw.alerts)) {
    raw.alerts.forEach((a, i) => {
      if (isRecord(a)) needProgram(["alerts", i, "command"], a.command, dir);
    });
  }
  return problems;
}

// --- relative paths --------------------------------------------------------------------

/** A program given as a relative path (`./notify.sh`) made absolute; bare names stay for PATH. */
function resolveProgram(cmd: string[], cwd: string): string[] {
  const [program, ...args] = cmd;
  return program && program.includes("/") ? [resolve(cwd, program), ...args] : cmd;
}

/** Resolves every path in the config against `dir`, the config file's folder. */
function resolvePaths(config: VigilConfig, dir: string): VigilConfig {
  const out: VigilConfig = { ...config };
  out.store = resolveStoreUrl(config.store, dir);
  out.queues = {};
  for (const [name, q] of Object.entries(config.queues)) {
    const cwd = resolve(dir, q.cwd ?? ".");
    out.queues[name] = {
      ...q,
      ...(q.handler !== undefined ? { handler: resolve(dir, q.handler) } : {}),
      ...(q.command !== undefined ? { command: resolveProgram(q.command, cwd), cwd } : {}),
    };
  }
  out.triggers = {};
  for (const [name, t] of Object.entries(config.triggers)) {
    if ("tail" in t) out.triggers[name] = { ...t, tail: resolve(dir, t.tail) };
    else if ("watch" in t) out.triggers[name] = { ...t, watch: resolve(dir, t.watch) };
    else if ("file" in t) out.triggers[name] = { ...t, file: resolve(dir, t.file) };
    else out.triggers[name] = { ...t };
  }
  out.services = {};
  for (const [name, s] of Object.entries(config.services)) {
    if ("command" in s) {
      const cwd = resolve(dir, s.cwd ?? ".");
      out.services[name] = {
        ...s,
        command: resolveProgram(s.command, cwd),
        cwd,
        ...(s.statusFile !== undefined ? { statusFile: resolve(dir, s.statusFile) } : {}),
      };
    } else {
      out.services[name] = { ...s };
    }
  }
  out.alerts = config.alerts.map((a) => ("command" in a ? { ...a, command: resolveProgram(a.command, dir) } : a));
  return out;
}
