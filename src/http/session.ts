/**
 * The dashboard's login: one form posts the token to `POST /login`, which answers with an
 * HttpOnly, SameSite=Strict cookie holding a secret derived from the token (never the token
 * itself, so a leaked cookie does not hand out the token scripts use). Scripts keep sending
 * `Authorization: Bearer <token>`; either one authorises a state change.
 *
 * State changes also pass `sameOrigin`: a request whose Origin is not this server's, or whose
 * Host is not a name this server answers to, is refused before anything else is looked at
 * (cross-site forms and DNS rebinding).
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { checkBearer } from "./token.js";

/** Name of the session cookie. */
export const SESSION_COOKIE = "vigil_session";
/** How long a login lasts: a working day, so a forgotten tab does not stay authorised for weeks. */
const SESSION_MAX_AGE_S = 12 * 3600;

/** The cookie value for a token: an HMAC, so it proves the token without being it. */
export function sessionSecret(token: string): string {
  return createHmac("sha256", token).update("vigil dashboard session").digest("base64url");
}

/** The Set-Cookie header of a successful login. */
export function sessionCookie(token: string): string {
  return `${SESSION_COOKIE}=${sessionSecret(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_S}`;
}

/** The Set-Cookie header that ends a session. */
export function clearedCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}

/** The session cookie's value from a Cookie header, if any. */
export function readCookie(header: string | undefined, name = SESSION_COOKIE): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Whether the request carries the session cookie for `token` (constant-time compare). */
export function hasSession(req: IncomingMessage, token: string): boolean {
  const got = readCookie(req.headers.cookie);
  if (!got || !token) return false;
  const a = createHash("sha256").update(got).digest();
  const b = createHash("sha256").update(sessionSecret(token)).digest();
  return timingSafeEqual(a, b);
}

/** Bearer header or session cookie: whether the request may change state. */
export function isAuthorised(req: IncomingMessage, token: string): boolean {
  return checkBearer(req.headers.authorization, token) || hasSession(req, token);
}

/** The host part of a Host header (`[::1]` kept bracketed), lower-cased. */
export function hostName(header: string | undefined): string {
  if (!header) return "";
  const h = header.toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  return h.split(":")[0] ?? "";
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);
const WILDCARD = new Set(["0.0.0.0", "::", "[::]", ""]);

/** Whether `name` is a loopback name. */
export function isLoopback(name: string): boolean {
  return LOOPBACK.has(name);
}

/**
 * The Host names a server bound to `bound` answers state changes for: the loopback names and
 * the bound address itself. Null for a wildcard bind, where any name may be the right one
 * and the Origin check alone stands.
 */
export function allowedHosts(bound: string): Set<string> | null {
  if (WILDCARD.has(bound)) return null;
  const b = bound.includes(":") && !bound.startsWith("[") ? `[${bound}]` : bound;
  return new Set([...LOOPBACK, b.toLowerCase()]);
}

/**
 * Why a state-changing request is refused for where it comes from, or null if it may go on:
 * its Host must be one this server answers to, and its Origin (when the browser sends one)
 * must be this same server.
 */
export function originProblem(req: IncomingMessage, hosts: Set<string> | null): string | null {
  const host = req.headers.host ?? "";
  if (hosts && !hosts.has(hostName(host))) return `Host "${host}" is not a name this server answers to`;
  const origin = req.headers.origin;
  if (origin === undefined) return null; // curl and scripts send none; a browser always does on POST
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return `Origin "${origin}" is not from this server`;
  }
  if (o.host.toLowerCase() !== host.toLowerCase()) return `Origin "${origin}" is not from this server`;
  return null;
}
