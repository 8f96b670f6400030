/**
 * The dashboard's files (src/http/web/: plain HTML, JS and CSS, no build step).
 *
 * They are served from the source folder, found relative to this module: beside it when
 * running from src/ (tsx, tests), or at <package root>/src/http/web when running the
 * compiled dist/http/static.js — so `npm run build` needs no copy step and the checkout
 * serves exactly the files in git. Only the files named here are served: no path from the
 * request ever reaches the file system.
 */
import { existsSync, readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";

const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

let webRoot: string | null = null;

/** The folder holding the dashboard files. */
export function webDir(): string {
  if (webRoot) return webRoot;
  const candidates = [new URL("./web/", import.meta.url), new URL("../../src/http/web/", import.meta.url)];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (existsSync(dir + "index.html")) return (webRoot = dir);
  }
  throw new Error("dashboard files not found (src/http/web); is the checkout complete?");
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
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "referrer-policy": "no-referrer",
  });
  res.end(body);
  return true;
}
