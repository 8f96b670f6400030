/**
 * `GET /api/events`: the live stream every dashboard tab listens to (server-sent events).
 *
 * One timer for all tabs: while at least one client listens, the server reads the status
 * snapshot and the queues' oldest waiting ages once per tick and writes the same event to
 * every client, so ten open tabs cost one read, not ten. With no client the timer stops.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../core/log.js";
import type { StatusSnapshot } from "../core/status.js";
import type { Store } from "../store/store.js";

/** Why 2 s: the supervisor rewrites its status every 2 s, so a faster tick shows nothing new. */
export const EVENTS_EVERY_MS = 2000;

/** What one `status` event carries. */
export interface LiveEvent {
  snapshot: StatusSnapshot;
  /** Per queue: ms the oldest due waiting job has waited, or null. */
  oldestWaitingMs: Record<string, number | null>;
  /** ms since the epoch, the server's clock. */
  at: number;
}

export interface EventHub {
  /** Takes over the response and keeps it open until the client leaves. */
  attach(req: IncomingMessage, res: ServerResponse): void;
  /** Pushes an event now (after a state change) instead of at the next tick. */
  poke(): void;
  clients(): number;
  close(): void;
}

export function createEventHub(opts: {
  store: Store;
  snapshot: () => Promise<StatusSnapshot>;
  every?: number;
  logger: Logger;
}): EventHub {
  const every = opts.every ?? EVENTS_EVERY_MS;
  const clients = new Set<ServerResponse>();
  let timer: NodeJS.Timeout | null = null;
  let last: string | null = null;
  let busy = false;
  let again = false;

  const tick = async (): Promise<void> => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const [snapshot, oldestWaitingMs] = await Promise.all([opts.snapshot(), opts.store.oldestWaiting()]);
      const event: LiveEvent = { snapshot, oldestWaitingMs, at: Date.now() };
      last = `event: status\ndata: ${JSON.stringify(event)}\n\n`;
      for (const res of clients) res.write(last);
    } catch (err) {
      opts.logger.warn({ err }, "live status for the dashboard failed");
      for (const res of clients) res.write(`event: problem\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`);
    } finally {
      busy = false;
      if (again) {
        again = false;
        void tick();
      }
    }
  };

  const start = (): void => {
    if (timer) return;
    timer = setInterval(() => void tick(), every);
    timer.unref();
  };
  const stop = (): void => {
    if (timer) clearInterval(timer);
    timer = null;
  };

  return {
    attach(req, res) {
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        connection: "keep-alive",
      });
      // The browser reconnects on its own after a drop; tell it how soon.
      res.write(`retry: ${every}\n\n`);
      clients.add(res);
      const leave = (): void => {
        clients.delete(res);
        if (clients.size === 0) stop();
      };
      req.on("close", leave);
      res.on("error", leave);
      if (last) res.write(last);
      else void tick();
      start();
    },
    poke: () => {
      if (clients.size > 0) void tick();
    },
    clients: () => clients.size,
    close() {
      stop();
      for (const res of clients) res.end();
      clients.clear();
    },
  };
}
