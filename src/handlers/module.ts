/**
 * Loading a module handler: a `.js`, `.mjs`, `.cjs` or TypeScript file whose default export
 * is `async (job, ctx) => result`. TypeScript loads through tsx's ESM API, so a user never
 * runs a build step for their stages.
 */
import { existsSync } from "node:fs";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { VigilError } from "../core/errors.js";
import type { Handler } from "./types.js";

const TS_EXTENSIONS = new Set([".ts", ".mts", ".cts", ".tsx"]);
const JS_EXTENSIONS = new Set([".js", ".mjs", ".cjs"]);

/**
 * Imports `file` (absolute, or relative to the current folder) and returns its default
 * export. Throws `VigilError` with code `HANDLER_LOAD`, naming the file, when the file is
 * missing, has an unsupported extension, fails to load, or exports no default function.
 */
export async function loadModuleHandler(file: string): Promise<Handler> {
  const abs = resolve(file);
  const ext = extname(abs).toLowerCase();
  if (!TS_EXTENSIONS.has(ext) && !JS_EXTENSIONS.has(ext)) {
    throw new VigilError(
      "HANDLER_LOAD",
      `handler ${abs}: unsupported file type "${ext || "(none)"}"; use .js, .mjs, .cjs or .ts`,
    );
  }
  if (!existsSync(abs)) {
    throw new VigilError("HANDLER_LOAD", `handler ${abs} does not exist; fix the path in the queue's \`handler\``);
  }
  const url = pathToFileURL(abs).href;
  let mod: Record<string, unknown>;
  try {
    if (TS_EXTENSIONS.has(ext)) {
      const { tsImport } = await import("tsx/esm/api");
      mod = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
    } else {
      mod = (await import(url)) as Record<string, unknown>;
    }
  } catch (err) {
    throw new VigilError("HANDLER_LOAD", `handler ${abs} failed to load: ${(err as Error)?.message ?? err}`, {
      cause: err,
    });
  }
  return defaultFunction(mod, abs);
}

/** The default export, looking through one level of CommonJS interop (`module.exports = fn`). */
function defaultFunction(mod: Record<string, unknown>, file: string): Handler {
  let fn = mod.default;
  if (typeof fn !== "function" && fn !== null && typeof fn === "object") {
    fn = (fn as Record<string, unknown>).default;
  }
  if (typeof fn !== "function") {
    const named = Object.keys(mod).filter((k) => k !== "default");
    const hint = named.length ? ` (it exports ${named.join(", ")})` : "";
    throw new VigilError(
      "HANDLER_LOAD",
      `handler ${file} has no default export function${hint}; write \`export default async function (job, ctx) { ... }\``,
    );
  }
  return fn as Handler;
}
