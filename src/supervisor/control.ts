/**
 * The local control socket (`.vigil/control.sock`): one JSON object per line each way.
 * The CLI reads the live supervisor's status and asks it to restart or stop through it.
 * A Unix socket in the project folder is reachable only by users who can reach the
 * folder, so it needs no token.
 */
import type { Logger } from "../core/log.js";
import { existsSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";

export type ControlRequest = { op: "status" } | { op: "restart"; service?: string } | { op: "stop" } | { op: "ping" };

export type ControlResponse = { ok: true; [key: string]: unknown } | { ok: false; error: string };

export type ControlHandler = (req: ControlRequest) => Promise<ControlResponse>;

/** Longest request line accepted: requests are tiny, this bounds a misbehaving client. */
const MAX_LINE = 64 * 1024;

/** Serves `handler` on `path`, replacing a stale socket file (the caller holds the lock). */
export async function serveControl(path: string, handler: ControlHandler, log: Logger): Promise<Server> {
  if (existsSync(path)) unlinkSync(path);
  const server = createServer((sock: Socket) => {
    sock.on("error", () => {}); // a client that goes away mid-answer is normal
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE) return sock.destroy();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let req: ControlRequest;
        try {
          req = JSON.parse(line) as ControlRequest;
        } catch {
          sock.write(JSON.stringify({ ok: false, error: "not a JSON line" }) + "\n");
          continue;
        }
        handler(req)
          .catch((err: Error): ControlResponse => ({ ok: false, error: err.message }))
          .then((res) => {
            if (!sock.destroyed) sock.write(JSON.stringify(res) + "\n");
          });
      }
    });
  });
  server.on("error", (err) => log.warn({ err }, "control socket"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

/**
 * Sends one request; null when no supervisor answers (no socket, refused, or silent for
 * `timeoutMs`, default 5 s — a status with store counts takes a few ms, a busy machine
 * more).
 */
export function controlRequest(path: string, req: ControlRequest, timeoutMs = 5000): Promise<ControlResponse | null> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve(null);
    const sock = createConnection(path);
    let buf = "";
    let done = false;
    const finish = (v: ControlResponse | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("error", () => finish(null));
    sock.on("connect", () => sock.write(JSON.stringify(req) + "\n"));
    sock.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      try {
        finish(JSON.parse(buf.slice(0, nl)) as ControlResponse);
      } catch {
        finish({ ok: false, error: "the supervisor sent an unreadable answer" });
      }
    });
    sock.on("close", () => finish(null));
  });
}
