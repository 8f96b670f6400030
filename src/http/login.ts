/**
 * The endpoints the dashboard itself needs besides the JSON API: `POST /login` (the token,
 * from the form, becomes the session cookie), `POST /logout`, `GET /api/session` (whether
 * this browser may act, and whether anyone may: `http.readOnly`), and `GET /api/events`
 * (the live stream, see events.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../core/log.js";
import type { EventHub } from "./events.js";
import { clearedCookie, hasSession, isAuthorised, sessionCookie } from "./session.js";
import { checkBearer } from "./token.js";

export interface DashboardContext {
  token: string;
  readOnly: boolean;
  canRestart: boolean;
  hub: EventHub;
  log: Logger;
  send(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void;
}

/** Handles a dashboard endpoint; returns its name, or null when the path is not one. */
export function handleDashboard(
  ctx: DashboardContext,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  method: string,
  body: string | undefined,
): string | null {
  if (path === "/api/events" && method === "GET") {
    ctx.hub.attach(req, res);
    return "events";
  }
  if (path === "/api/session" && method === "GET") {
    ctx.send(res, 200, { authenticated: isAuthorised(req, ctx.token), readOnly: ctx.readOnly, canRestart: ctx.canRestart });
    return "session";
  }
  if (path === "/login" && method === "POST") {
    const given = loginToken(req, body);
    const ok = given !== null && checkBearer(`Bearer ${given}`, ctx.token);
    audit(ctx.log, req, "login", "dashboard", ok ? 200 : 401);
    if (!ok) {
      ctx.send(res, 401, { error: "that is not the token (it is in .vigil/token, or http.token in the config)" });
    } else {
      ctx.send(res, 200, { ok: true }, { "set-cookie": sessionCookie(ctx.token) });
    }
    return "login";
  }
  if (path === "/logout" && method === "POST") {
    if (hasSession(req, ctx.token)) audit(ctx.log, req, "logout", "dashboard", 200);
    ctx.send(res, 200, { ok: true }, { "set-cookie": clearedCookie() });
    return "logout";
  }
  return null;
}

/** The token from a login body: a form (`token=...`) or JSON (`{"token": "..."}`). */
function loginToken(req: IncomingMessage, text: string | undefined): string | null {
  if (!text) return null;
  const type = req.headers["content-type"] ?? "";
  if (type.includes("application/json")) {
    try {
      const v = (JSON.parse(text) as { token?: unknown }).token;
      return typeof v === "string" ? v.trim() : null;
    } catch {
      return null;
    }
  }
  return new URLSearchParams(text).get("token")?.trim() ?? null;
}

/** One log line per action: who (remote address), what, on what, and how it ended. */
export function audit(log: Logger, req: IncomingMessage, what: string, target: string, status: number): void {
  const who = req.socket.remoteAddress ?? "unknown";
  const result = status < 300 ? "ok" : `refused ${status}`;
  log.info({ audit: true, who, what, target, status }, `audit: ${who} ${what} ${target}: ${result}`);
}
