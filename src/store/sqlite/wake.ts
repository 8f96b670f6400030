/**
 * Wake-ups across processes sharing one SQLite file, without polling.
 *
 * Each process that subscribes listens on a Unix socket `<pid>.sock` in a folder beside the
 * database (`<db>.wake/`, or a folder under the system temp dir named by a hash of the db
 * path when that path would be too long for a socket). A commit that makes jobs available
 * writes the queue names, one per line, to every other listener over connections kept
 * open. Listeners in the same process are called directly. Nothing runs while idle.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlive } from "../../os/process.js";

/**
 * How often, at most, a notifier re-reads the folder to find new listeners. A process that
 * starts listening is heard from at most this late (its own polling covers the gap); a
 * shorter interval costs a readdir per interval while jobs flow.
 */
const RELIST_MS = 1000;
/** Linux allows 108 bytes in a socket path; keep room for `<pid>.sock` and a margin. */
const MAX_SOCKET_PATH = 100;
/** A listener this far behind (stopped, or swamped) already has wake-ups pending: skip it. */
const MAX_BACKLOG_BYTES = 64 * 1024;
/** How long `close` waits for queued wake-ups to leave (a CLI enqueue then exits). */
const CLOSE_FLUSH_MS = 500;

/** The folder where listeners of the database at `dbPath` (absolute, real) put sockets. */
export function wakeDir(dbPath: string): string {
  const beside = `${dbPath}.wake`;
  if (Buffer.byteLength(join(beside, "4194304.sock")) <= MAX_SOCKET_PATH) return beside;
  const hash = createHash("sha256").update(dbPath).digest("hex").slice(0, 16);
  return join(tmpdir(), `vigil-wake-${hash}`);
}

type Listener = (queue: string) => void;

/** One per database file per process, shared by every store opened on that file here. */
export class WakeBus {
  private static readonly buses = new Map<string, WakeBus>();

  /** Gets (or makes) the bus for a database and counts one more user of it. */
  static acquire(dbPath: string): WakeBus {
    let bus = WakeBus.buses.get(dbPath);
    if (!bus) {
      bus = new WakeBus(dbPath, wakeDir(dbPath));
      WakeBus.buses.set(dbPath, bus);
    }
    bus.users++;
    return bus;
  }

  private users = 0;
  private readonly listeners = new Set<Listener>();
  private server: Server | null = null;
  private readonly ownSocket: string;
  private readonly peers = new Map<string, Socket>();
  private readonly accepted = new Set<Socket>();
  private listedAt = -Infinity;
  private pending = new Set<string>();
  private flushScheduled = false;

  private constructor(
    private readonly dbPath: string,
    readonly dir: string,
  ) {
    this.ownSocket = join(dir, `${process.pid}.sock`);
  }

  /** Calls `listener` with a queue name whenever some process made jobs available on it. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    this.listen();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Announces queues with newly available jobs, once per event-loop turn. */
  notify(queues: Iterable<string>): void {
    for (const q of queues) this.pending.add(q);
    if (this.pending.size === 0 || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.size === 0) return;
    const queues = [...this.pending];
    this.pending = new Set();
    for (const q of queues) for (const l of this.listeners) safeCall(l, q);
    this.refreshPeers();
    if (this.peers.size === 0) return;
    const line = `${queues.join("\n")}\n`;
    for (const sock of this.peers.values()) {
      if (sock.writableLength < MAX_BACKLOG_BYTES) sock.write(line);
    }
  }

  private listen(): void {
    if (this.server) return;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      // A file with our pid is left from an earlier process that had this pid.
      unlinkQuiet(this.ownSocket);
    } catch {
      return; // A folder we cannot write: workers fall back to polling.
    }
    const server = createServer((sock) => {
      sock.unref();
      this.accepted.add(sock);
      sock.on("close", () => this.accepted.delete(sock));
      sock.setEncoding("utf8");
      let buf = "";
      sock.on("data", (chunk: string) => {
        buf += chunk;
        const end = buf.lastIndexOf("\n");
        if (end < 0) return;
        const names = new Set(buf.slice(0, end).split("\n"));
        buf = buf.slice(end + 1);
        for (const q of names) if (q) for (const l of this.listeners) safeCall(l, q);
      });
      sock.on("error", () => sock.destroy());
    });
    // A socket we cannot bind only costs pick-up latency: workers still poll.
    server.on("error", () => {
      this.server = null;
    });
    server.listen(this.ownSocket);
    server.unref();
    this.server = server;
  }

  private refreshPeers(): void {
    const now = Date.now();
    if (now - this.listedAt < RELIST_MS) return;
    this.listedAt = now;
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith(".sock"));
    } catch {
      names = [];
    }
    const own = `${process.pid}.sock`;
    const seen = new Set<string>();
    for (const name of names) {
      if (name === own) continue;
      const path = join(this.dir, name);
      seen.add(path);
      if (!this.peers.has(path)) this.connect(path, Number.parseInt(name, 10));
    }
    for (const [path, sock] of this.peers) {
      if (!seen.has(path)) {
        sock.destroy();
        this.peers.delete(path);
      }
    }
  }

  private connect(path: string, pid: number): void {
    const sock = createConnection(path);
    sock.unref();
    this.peers.set(path, sock);
    sock.on("error", (err: NodeJS.ErrnoException) => {
      // Nobody listens there: drop the socket file if its process is gone.
      if ((err.code === "ECONNREFUSED" || err.code === "ENOENT") && Number.isFinite(pid) && !isAlive(pid)) {
        unlinkQuiet(path);
      }
      sock.destroy();
    });
    sock.on("close", () => {
      if (this.peers.get(path) === sock) this.peers.delete(path);
    });
  }

  /** Counts one user less; the last one stops listening and lets queued wake-ups leave. */
  async release(): Promise<void> {
    if (--this.users > 0) return;
    WakeBus.buses.delete(this.dbPath);
    if (this.flushScheduled) this.flush();
    this.listeners.clear();
    if (this.server) {
      this.server.close();
      this.server = null;
      for (const sock of this.accepted) sock.destroy();
      this.accepted.clear();
      unlinkQuiet(this.ownSocket);
    }
    const closing = [...this.peers.values()].map(
      (sock) =>
        new Promise<void>((resolve) => {
          // Bounded: a stopped listener must not hold up our exit.
          const timer = setTimeout(() => {
            sock.destroy();
            resolve();
          }, CLOSE_FLUSH_MS);
          sock.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
          sock.end();
        }),
    );
    this.peers.clear();
    await Promise.all(closing);
  }
}

function safeCall(listener: Listener, queue: string): void {
  try {
    listener(queue);
  } catch {
    // A listener's own failure must not stop the others from hearing the wake-up.
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
