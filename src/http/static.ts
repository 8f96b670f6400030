/**
 * The dashboard's files: the page bundled by `npm run build` (scripts/build-web.mjs) from
 * src/web/ into dist/web/ — index.html, app.js, app.css.
 *
 * They are found relative to this module: beside it at ../web/ when running the compiled
 * dist/http/static.js (`./bin/vigil start` from a checkout, or an installed package), or at
 * <package root>/dist/web/ when running from src/ (tsx, tests). Only the files named here are
 * served: no path from the request ever reaches the file system.
 */
import { existsSync, readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";

const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
};

let webRoot: string | null = null;

/** The folder holding the dashboard files. */
export function webDir(): string {
  if (webRoot) return webRoot;
  const candidates = [new URL("../web/", import.meta.url), new URL("../../dist/web/", import.meta.url)];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (existsSync(dir + "index.html") && existsSync(dir + "app.js")) return (webRoot = dir);
  }
  throw new Error("dashboard files not found (dist/web); run `npm run build`");
}

/** Serves a dashboard file; false when the path is not one. */
export function serveStatic(pathname: string, res: ServerResponse): boolean {
  const entry = FILES[pathname];
  if (!entry) return false;
  const body = readFileSync(webDir() + entry.file);
  res.writeHead(200, {
    "content-type": entry.type,
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    // Everything the page needs comes from this server; nothing inline, nothing foreign.
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "referrer-policy": "no-referrer",
  });
  res.end(body);
  return true;
}
