/**
 * The docs say what the code does: every `vigil ...` command line in README.md and
 * docs/*.md names a real command with options it knows (checked against the commander
 * program the CLI runs), and docs/configuration.md is what scripts/gen-config-doc.ts
 * generates from the schema today.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command, Option } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/main.js";
import { CONFIG_DOC, renderConfigDoc } from "../../scripts/gen-config-doc.js";

const ROOT = resolve(import.meta.dirname, "../..");

function docFiles(): string[] {
  const files = [join(ROOT, "README.md")].filter(existsSync);
  const docs = join(ROOT, "docs");
  if (existsSync(docs)) for (const f of readdirSync(docs)) if (f.endsWith(".md")) files.push(join(docs, f));
  return files;
}

const PREFIX = /^(?:\$\s+)?(?:\.\/bin\/vigil|npx vigil|vigil)(?=\s|$)/;

/** `vigil ...` command lines: in fenced blocks (line by line) and in inline code spans. */
export function extractCommands(markdown: string): string[] {
  const out: string[] = [];
  const fence = /```[^\n]*\n([\s\S]*?)```/g;
  for (const m of markdown.matchAll(fence)) {
    for (const raw of m[1]!.split("\n")) {
      for (const part of raw.split(/\s*(?:&&|\|\||;|\|)\s*/)) {
        const line = part.replace(/\s+#.*$/, "").trim();
        if (PREFIX.test(line)) out.push(line);
      }
    }
  }
  const prose = markdown.replace(fence, "");
  for (const m of prose.matchAll(/`([^`\n]+)`/g)) {
    for (const part of m[1]!.split(/\s*(?:&&|\||;)\s*/)) if (PREFIX.test(part.trim())) out.push(part.trim());
  }
  return out;
}

function tokenize(line: string): string[] {
  // Shell words: quoted parts and $(...) substitutions stay inside the word they belong to.
  const words = line.match(/(?:'[^']*'|"(?:[^"\\]|\\.)*"|\$\([^)]*\)|[^\s'"])+/g) ?? [];
  return words.map((w) => w.replace(/^'(.*)'$|^"(.*)"$/, "$1$2"));
}

function findOption(cmd: Command, flag: string): Option | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const o = c.options.find((opt) => opt.short === flag || opt.long === flag);
    if (o) return o;
  }
  return undefined;
}

/** Problems with one command line, or [] when the CLI accepts its shape. */
export function checkCommand(program: Command, line: string): string[] {
  const tokens = tokenize(line.replace(PREFIX, ""))
    .map((t) => t.replace(/^\[|\]$/g, "").replace(/^\[|\]$/g, ""))
    .filter((t) => t !== "" && t !== "..." && t !== "…");
  let cmd = program;
  let positional = false;
  let args = 0;
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    if (tok === "--help" || tok === "-h") return [];
    if (tok.startsWith("-") && tok !== "-") {
      const flag = tok.split("=")[0]!;
      const opt = findOption(cmd, flag);
      if (!opt) return [`"${line}": ${cmd.name()} has no option ${flag}`];
      if ((opt.required || opt.optional) && !tok.includes("=")) {
        const next = tokens[i + 1];
        if (opt.required || (next !== undefined && !next.startsWith("-"))) i++;
      }
      continue;
    }
    const sub = positional ? undefined : cmd.commands.find((c) => c.name() === tok || c.aliases().includes(tok));
    if (sub) {
      cmd = sub;
      continue;
    }
    if (cmd === program) return [`"${line}": no command named ${tok}`];
    if (cmd.commands.length > 0 && !positional && cmd.registeredArguments.length === 0) {
      return [`"${line}": ${cmd.name()} has no subcommand ${tok}`];
    }
    positional = true;
    const max = cmd.registeredArguments.some((a) => a.variadic) ? Infinity : cmd.registeredArguments.length;
    if (++args > max) return [`"${line}": ${cmd.name()} takes ${max} argument(s), not "${tok}"`];
  }
  if (cmd === program && tokens.length > 0) return [`"${line}": names no command`];
  return [];
}

describe("docs", () => {
  const program = buildProgram();

  it("finds command lines to check", () => {
    const all = docFiles().flatMap((f) => extractCommands(readFileSync(f, "utf8")));
    expect(all.length).toBeGreaterThan(20);
    expect(all).toContain("vigil health --json");
  });

  it("every vigil command line in README.md and docs/ is known to the CLI", () => {
    const problems: string[] = [];
    for (const file of docFiles()) {
      for (const line of extractCommands(readFileSync(file, "utf8"))) {
        for (const p of checkCommand(program, line)) problems.push(`${file.slice(ROOT.length + 1)}: ${p}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("the checker catches unknown commands and options", () => {
    expect(checkCommand(program, "vigil frobnicate")).toHaveLength(1);
    expect(checkCommand(program, "vigil health --verbose")).toHaveLength(1);
    expect(checkCommand(program, "vigil jobs explode 3")).toHaveLength(1);
    expect(checkCommand(program, "vigil health now")).toHaveLength(1);
    expect(checkCommand(program, "vigil report --since 24h --json")).toEqual([]);
    expect(checkCommand(program, "vigil -c vigil.yaml jobs list --state dead --queue qa")).toEqual([]);
    expect(checkCommand(program, "./bin/vigil backup /var/backups/vigil.db --force")).toEqual([]);
  });

  it("docs/configuration.md is generated from the current schema", () => {
    expect(readFileSync(CONFIG_DOC, "utf8")).toBe(renderConfigDoc());
  });
});
