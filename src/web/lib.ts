// Shared pieces of the dashboard: the JSON API, the one live stream, the hash router.
import { useEffect, useState } from "preact/hooks";
import type { Incident } from "../core/types.js";
import type { StatusSnapshot } from "../core/status.js";

/** A GET of the JSON API; throws with the server's message on an error status. */
export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { credentials: "same-origin" });
  const body = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new HttpProblem(res.status, body.error ?? `${res.status} ${res.statusText}`);
  return body;
}

/** A POST with a JSON body; the session cookie authorises it. */
export async function postJson<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const out = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new HttpProblem(res.status, out.error ?? `${res.status} ${res.statusText}`);
  return out;
}

export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Loads `path` and reloads it when `deps` change; `reload()` fetches again. */
export function useJson<T>(path: string | null, deps: unknown[] = []): { data: T | null; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    getJson<T>(path)
      .then((d) => live && (setData(d), setError(null)))
      .catch((e: Error) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [path, n, ...deps]);
  return { data, error, reload: () => setN((x) => x + 1) };
}

// ---- the live stream ----

// The server's own shapes (type imports only: nothing of the server is bundled).
export type Snapshot = StatusSnapshot;
export type { Incident };
export interface LiveEvent {
  snapshot: Snapshot;
  oldestWaitingMs: Record<string, number | null>;
  at: number;
}
/** One sample per queue per event, for the sparklines. */
export interface Sample {
  t: number;
  depth: number;
  /** Completed per minute since the previous sample. */
  throughput: number;
  oldestS: number;
}

/** Why 150: one sample per 2 s event is five minutes of history, a few KB per queue. */
const RING = 150;
const history = new Map<string, Sample[]>();
let latest: LiveEvent | null = null;
let connected = false;
let source: EventSource | null = null;
const listeners = new Set<() => void>();

function record(ev: LiveEvent): void {
  const t = ev.at / 1000;
  for (const [q, c] of Object.entries(ev.snapshot.queues)) {
    const ring = history.get(q) ?? [];
    const prev = ring[ring.length - 1];
    const prevDone = prev ? (latest?.snapshot.queues[q]?.completed ?? c.completed) : c.completed;
    const dt = prev ? t - prev.t : 0;
    const throughput = dt > 0 ? Math.max(0, ((c.completed - prevDone) / dt) * 60) : 0;
    const w = ev.oldestWaitingMs[q];
    ring.push({ t, depth: c.waiting + c.scheduled, throughput, oldestS: w ? w / 1000 : 0 });
    if (ring.length > RING) ring.shift();
    history.set(q, ring);
  }
  latest = ev;
}

function open(): void {
  if (source) return;
  source = new EventSource("/api/events");
  source.addEventListener("status", (e) => {
    record(JSON.parse((e as MessageEvent<string>).data) as LiveEvent);
    connected = true;
    for (const l of listeners) l();
  });
  source.onerror = () => {
    connected = false;
    for (const l of listeners) l();
  };
}

function close(): void {
  source?.close();
  source = null;
  connected = false;
}

/** A hidden tab stops listening; it reconnects when it is shown again. */
export function startLive(): void {
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") close();
    else open();
  });
  if (document.visibilityState !== "hidden") open();
}

/** The latest live event, re-rendering on each new one. */
export function useLive(): { ev: LiveEvent | null; connected: boolean; history: Map<string, Sample[]> } {
  const [, tick] = useState(0);
  useEffect(() => {
    const l = (): void => tick((x) => x + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return { ev: latest, connected, history };
}

// ---- routing: #/page?filters ----

export interface Route {
  page: string;
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#\/?/, "");
  const q = h.indexOf("?");
  const page = (q < 0 ? h : h.slice(0, q)) || "overview";
  return { page, params: new URLSearchParams(q < 0 ? "" : h.slice(q + 1)) };
}

/** A link to a page with its filters; empty values are left out. */
export function href(page: string, params: Record<string, string | number | null | undefined> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") p.set(k, String(v));
  const s = p.toString();
  return `#/${page}${s ? `?${s}` : ""}`;
}

export function useRoute(): Route {
  const [r, setR] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = (): void => setR(parseHash(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return r;
}

export function go(page: string, params: Record<string, string | number | null | undefined> = {}): void {
  location.hash = href(page, params);
}
