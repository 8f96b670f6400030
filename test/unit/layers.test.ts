/**
 * The floor plan holds: every import between folders of src/ (static `from "..."`,
 * `export ... from`, dynamic `import("...")`, `import("...")` types; type-only imports
 * count too) is one the table in docs/architecture.md allows, no allowed edge runs up the
 * floors, and the folders import each other without a cycle. The table is the source of
 * truth: a new folder needs its row, a new kind of edge a change of the table.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const SRC = join(ROOT, "src");

interface Row {
  floor: number;
  folder: string;
  mayImport: string[];
}

/** The rows of the table under "## Layering" in docs/architecture.md. */
export function parseFloorTable(markdown: string): Row[] {
  const section = markdown.split(/^## /m).find((s) => s.startsWith("Layering"));
  if (!section) throw new Error('docs/architecture.md has no "## Layering" section');
  const rows: Row[] = [];
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    // | floor | `folder` | `a`, `b` (or —) | what lives there |
    if (cells.length < 5 || !/^\d+$/.test(cells[1]!)) continue;
    const folder = /^`([^`]+)`$/.exec(cells[2]!)?.[1];
    if (!folder) throw new Error(`row without a folder: ${line}`);
    const mayImport = [...cells[3]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    rows.push({ floor: Number(cells[1]), folder, mayImport });
  }
  return rows;
}

/** The folder (floor unit) a file of src/ belongs to: its first path segment (src/index.ts is its own). */
function folderOf(file: string): string {
  return relative(SRC, file).split("/")[0]!.replace(/\.js$/, ".ts");
}

interface Import {
  file: string;
  spec: string;
  typeOnly: boolean;
}

type Token = { kind: "word" | "punct"; text: string } | { kind: "string"; text: string };

/** Where a `/` starts a regular expression rather than a division. */
const BEFORE_REGEX = new Set(["(", ",", "=", ":", "[", "!", "&", "|", "?", "{", "}", ";", "return", "typeof", "=>", "+", "-", "*", "%", "<", ">"]);

/**
 * The tokens of TypeScript source that matter for imports: words, punctuation and string
 * literals (with their text); comments, template literals and regular expressions are
 * skipped, so an import written inside them is not one.
 */
export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const last = () => out[out.length - 1]?.text;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) i++;
    else if (src.startsWith("//", i)) i = src.indexOf("\n", i) === -1 ? src.length : src.indexOf("\n", i);
    else if (src.startsWith("/*", i)) i = src.indexOf("*/", i + 2) === -1 ? src.length : src.indexOf("*/", i + 2) + 2;
    else if (c === '"' || c === "'") {
      let j = i + 1;
      let text = "";
      while (j < src.length && src[j] !== c) {
        if (src[j] === "\\") j++;
        text += src[j];
        j++;
      }
      out.push({ kind: "string", text });
      i = j + 1;
    } else if (c === "`") {
      // A template literal, `${...}` and nested templates included.
      let j = i + 1;
      const stack: string[] = ["`"];
      while (j < src.length && stack.length > 0) {
        const d = src[j]!;
        const top = stack[stack.length - 1];
        if (d === "\\") j += 2;
        else if (top === "`" && d === "`") (stack.pop(), j++);
        else if (top === "`" && src.startsWith("${", j)) (stack.push("{"), (j += 2));
        else if (top === "{" && d === "{") (stack.push("{"), j++);
        else if (top === "{" && d === "}") (stack.pop(), j++);
        else if (top === "{" && d === "`") (stack.push("`"), j++);
        else if (top === "{" && (d === '"' || d === "'")) {
          j++;
          while (j < src.length && src[j] !== d) j += src[j] === "\\" ? 2 : 1;
          j++;
        } else j++;
      }
      out.push({ kind: "punct", text: "`template`" });
      i = j;
    } else if (c === "/" && (out.length === 0 || BEFORE_REGEX.has(last()!))) {
      let j = i + 1;
      let inClass = false;
      while (j < src.length && (inClass || src[j] !== "/") && src[j] !== "\n") {
        if (src[j] === "\\") j++;
        else if (src[j] === "[") inClass = true;
        else if (src[j] === "]") inClass = false;
        j++;
      }
      i = j + 1;
      while (i < src.length && /[a-z]/i.test(src[i]!)) i++;
      out.push({ kind: "punct", text: "`regex`" });
    } else if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z0-9_$]+/.exec(src.slice(i, i + 200))!;
      out.push({ kind: "word", text: m[0] });
      i += m[0].length;
    } else if (src.startsWith("=>", i)) {
      out.push({ kind: "punct", text: "=>" });
      i += 2;
    } else {
      out.push({ kind: "punct", text: c });
      i++;
    }
  }
  return out;
}

/** Every module specifier a file names: imports, re-exports, dynamic imports, import types. */
export function importsOf(file: string, text = readFileSync(file, "utf8")): Import[] {
  const t = tokenize(text);
  const out: Import[] = [];
  const fromAfter = (start: number): { spec: string; at: number } | null => {
    // Up to the `from "..."` that ends the statement; a `;` or a string first means none.
    for (let j = start; j < t.length; j++) {
      const tok = t[j]!;
      if (tok.kind === "string" || tok.text === ";") return null;
      if (tok.kind === "word" && tok.text === "from" && t[j + 1]?.kind === "string") return { spec: t[j + 1]!.text, at: j + 1 };
    }
    return null;
  };
  for (let i = 0; i < t.length; i++) {
    const tok = t[i]!;
    if (tok.kind !== "word" || (tok.text !== "import" && tok.text !== "export")) continue;
    if (t[i - 1]?.text === ".") continue; // a property named import
    const next = t[i + 1];
    if (tok.text === "import" && next?.text === "(") {
      const arg = t[i + 2];
      out.push({ file, spec: arg?.kind === "string" && t[i + 3]?.text === ")" ? arg.text : "<computed>", typeOnly: t[i - 1]?.text === "typeof" });
    } else if (tok.text === "import" && next?.kind === "string") {
      out.push({ file, spec: next.text, typeOnly: false });
    } else if (tok.text === "import" && next !== undefined && (next.kind === "word" || next.text === "{" || next.text === "*") && next.text !== "meta") {
      const f = fromAfter(i + 1);
      if (f) out.push({ file, spec: f.spec, typeOnly: next.text === "type" && t[i + 2]?.text !== "from" });
    } else if (tok.text === "export" && (next?.text === "{" || next?.text === "*" || (next?.text === "type" && (t[i + 2]?.text === "{" || t[i + 2]?.text === "*")))) {
      const f = fromAfter(i + 1);
      if (f) out.push({ file, spec: f.spec, typeOnly: next.text === "type" });
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.tsx?$/.test(name) && !name.endsWith(".d.ts") ? [p] : [];
  });
}

let edgesRead: Map<string, Import[]> | null = null;

/** Edges between folders, each with the imports that make it (read once). */
function folderEdges(): Map<string, Import[]> {
  if (edgesRead) return edgesRead;
  const edges = new Map<string, Import[]>();
  for (const file of sourceFiles(SRC)) {
    for (const imp of importsOf(file)) {
      if (!imp.spec.startsWith(".")) continue; // a package, or node:
      const from = folderOf(file);
      const to = folderOf(resolve(dirname(file), imp.spec));
      if (from === to) continue;
      const key = `${from} -> ${to}`;
      edges.set(key, [...(edges.get(key) ?? []), imp]);
    }
  }
  edgesRead = edges;
  return edges;
}

/** A cycle in a directed graph (as its nodes), or null. */
export function findCycle(graph: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, "open");
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === "open") return [...stack.slice(stack.indexOf(m)), m];
      if (!state.has(m)) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, "done");
    return null;
  };
  for (const n of graph.keys()) {
    if (state.has(n)) continue;
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

const rows = parseFloorTable(readFileSync(join(ROOT, "docs/architecture.md"), "utf8"));
const byFolder = new Map(rows.map((r) => [r.folder, r]));
const where = (imps: Import[]) => imps.map((i) => `${relative(ROOT, i.file)}: "${i.spec}"`).join("; ");

describe("layers", () => {
  it("has a row in docs/architecture.md for every folder of src/, and rows only for those", () => {
    const units = readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory() || /\.tsx?$/.test(name));
    expect(rows.map((r) => r.folder).sort()).toEqual(units.sort());
  });

  it("allows only edges that run down the floors, to folders that exist", () => {
    const problems: string[] = [];
    for (const r of rows) {
      for (const m of r.mayImport) {
        const target = byFolder.get(m);
        if (!target) problems.push(`${r.folder} may import "${m}", which has no row`);
        else if (target.floor >= r.floor) problems.push(`${r.folder} (floor ${r.floor}) may import ${m} (floor ${target.floor}): not below it`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("keeps the rules the floors stand for", () => {
    const may = (a: string, b: string) => byFolder.get(a)?.mayImport.includes(b) ?? false;
    expect(byFolder.get("core")?.mayImport).toEqual([]);
    for (const r of rows) if (r.folder !== "cli") expect(r.mayImport, `${r.folder} may import cli`).not.toContain("cli");
    expect(may("health", "supervisor") || may("health", "worker")).toBe(false);
    expect(may("supervisor", "http")).toBe(false);
    expect(byFolder.get("web")?.mayImport).toEqual(["core"]);
  });

  it("finds in src/ only imports the table allows", () => {
    const edges = folderEdges();
    expect(edges.size).toBeGreaterThan(20); // the reader sees the imports at all
    const bad: string[] = [];
    for (const [key, imps] of edges) {
      const [from, to] = key.split(" -> ") as [string, string];
      if (!byFolder.get(from)?.mayImport.includes(to)) bad.push(`${key} (not allowed): ${where(imps)}`);
      // The browser bundle takes shapes from core, never code.
      if (from === "web" && imps.some((i) => !i.typeOnly)) bad.push(`${key} (web imports core code): ${where(imps.filter((i) => !i.typeOnly))}`);
    }
    const computed = [...edges.values()].flat().filter((i) => i.spec === "<computed>");
    for (const i of computed) bad.push(`a dynamic import of a computed name cannot be checked: ${where([i])}`);
    expect(bad).toEqual([]);
  });

  it("has no cycle between folders", () => {
    const graph = new Map<string, Set<string>>();
    for (const key of folderEdges().keys()) {
      const [from, to] = key.split(" -> ") as [string, string];
      graph.set(from, (graph.get(from) ?? new Set()).add(to));
    }
    expect(findCycle(graph)).toBeNull();
  });

  it("reads every kind of import and finds a cycle when there is one", () => {
    const text = [
      'import { a } from "../core/a.js";',
      'import type { B } from "../store/b.js";',
      'export { c } from "../os/c.js";',
      'export type * from "../config/d.js";',
      'const e = await import("../health/e.js");',
      'type F = typeof import("../http/f.js");',
      "const re = /[\"']from \"..\\/cli\\/re.js\"/g;",
      'const tpl = `import x from "../cli/tpl.js" ${`nested ${"x"}`}`;',
      "const meta = import.meta.url;",
      'import {\n  g,\n  h,\n} from "../child/g.js";',
      '// import { no } from "../cli/comment.js";',
      'const s = \'from "../cli/string.js"\';',
    ].join("\n");
    const found = importsOf(join(SRC, "worker/x.ts"), text).map((i) => `${i.spec}${i.typeOnly ? " (type)" : ""}`);
    expect(found).toEqual([
      "../core/a.js",
      "../store/b.js (type)",
      "../os/c.js",
      "../config/d.js (type)",
      "../health/e.js",
      "../http/f.js (type)",
      "../child/g.js",
    ]);
    const g = new Map([
      ["a", new Set(["b"])],
      ["b", new Set(["c"])],
      ["c", new Set(["a"])],
    ]);
    expect(findCycle(g)).toEqual(["a", "b", "c", "a"]);
    expect(findCycle(new Map([["a", new Set(["b"])]]))).toBeNull();
  });
});
