#!/usr/bin/env node
// The example's "outline service": a small HTTP service the `outline` stage asks for an
// outline. Vigil runs it as a foreign service and watches it through GET /health.
//
//   POST /outline  {"title": "...", "description": "..."}  ->  {"sections": [{heading, points}]}
//   GET  /health                                           ->  {"ok": true}
//
// It is deterministic and offline. To use a real generator, replace generateOutline().
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HOST = "127.0.0.1";
const PORT = Number(process.env.OUTLINE_PORT ?? 7431);
/** Requests larger than this are refused: an idea is a sentence or two. */
const MAX_BODY = 64 * 1024;
const HERE = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------
// GENERATOR — the one function to replace with a real outline generator (a model call,
// a template engine...). It gets the idea and returns sections of headings and points.
// ---------------------------------------------------------------------------------------
/**
 * @param {{ title: string, description: string }} idea
 * @returns {Promise<{ heading: string, points: string[] }[]>}
 */
async function generateOutline(idea) {
  const words = `${idea.title} ${idea.description}`
    .toLowerCase()
    .replace(/[^a-z0-9 ]+/g, " ")
    .split(/\s+/)
    .filter((w) => w.length > 4);
  const topics = [...new Set(words)].slice(0, 6);
  const pick = (i) => topics[i % Math.max(topics.length, 1)] ?? "the idea";
  return [
    { heading: "Goal", points: [idea.description.trim() || idea.title] },
    { heading: "Data model", points: [`what a ${pick(0)} record holds`, `how ${pick(1)} is stored`] },
    { heading: "User flow", points: [`add a ${pick(2)}`, `see ${pick(3)} at a glance`, `get reminded about ${pick(4)}`] },
    { heading: "Edge cases", points: [`no ${pick(5)} yet`, "duplicate entries", "clock changes"] },
  ];
}

// ---------------------------------------------------------------------------------------
// Chaos (VIGIL_CHAOS=1): once per data folder, the service freezes its event loop on its
// third outline request, so its probe fails and the supervisor replaces it. The marker
// file makes it happen once, so the pipeline still finishes.
// ---------------------------------------------------------------------------------------
const CHAOS = process.env.VIGIL_CHAOS === "1";
const CHAOS_MARKER = join(HERE, "data", ".outline-service-froze");
let outlineRequests = 0;

function maybeFreeze() {
  if (!CHAOS || outlineRequests !== 3 || existsSync(CHAOS_MARKER)) return;
  mkdirSync(dirname(CHAOS_MARKER), { recursive: true });
  writeFileSync(CHAOS_MARKER, `${new Date().toISOString()} pid ${process.pid}\n`);
  process.stderr.write(`outline-service: chaos: freezing the event loop (pid ${process.pid})\n`);
  for (;;) {
    // Busy forever: /health stops answering; only SIGKILL ends this.
  }
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req) {
  let size = 0;
  const chunks = [];
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw Object.assign(new Error(`body over ${MAX_BODY} bytes`), { status: 413 });
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw Object.assign(new Error("body is not JSON"), { status: 400 });
  }
}

const server = createServer(async (req, res) => {
  try {
    if (req.method === "GET" && req.url === "/health") return send(res, 200, { ok: true, pid: process.pid });
    if (req.method === "POST" && req.url === "/outline") {
      const idea = await readJson(req);
      if (typeof idea?.title !== "string" || idea.title.trim() === "") {
        return send(res, 400, { error: "an idea needs a non-empty `title`" });
      }
      outlineRequests += 1;
      maybeFreeze();
      const sections = await generateOutline({ title: idea.title, description: String(idea.description ?? "") });
      const digest = createHash("sha256").update(JSON.stringify(sections)).digest("hex").slice(0, 12);
      return send(res, 200, { sections, digest });
    }
    send(res, 404, { error: "try POST /outline or GET /health" });
  } catch (err) {
    send(res, err.status ?? 500, { error: err.message });
  }
});
server.on("error", (err) => {
  // Most often EADDRINUSE: another copy still holds the port. Exit so the supervisor
  // restarts this service with backoff instead of leaving a process that serves nothing.
  process.stderr.write(`outline-service: ${err.message}\n`);
  process.exit(1);
});
server.on("clientError", (_err, socket) => socket.destroy());
server.listen(PORT, HOST, () => {
  process.stdout.write(`outline-service: listening on http://${HOST}:${PORT} (pid ${process.pid})\n`);
});

// Graceful stop on SIGTERM from the supervisor: stop accepting, let open requests finish.
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
  });
}
