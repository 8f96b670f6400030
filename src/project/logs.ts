/**
 * Per-process log files with size-based rotation: `<name>.log`, `<name>.log.1`, ...
 * The supervisor owns the pipes of its children and writes what they print here, so a
 * log never grows without bound and survives the process that wrote it; `vigil logs`,
 * `vigil start --detach` and the HTTP server's job log read them.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";

/** Rotate once a file passes this size (default 10 MB). */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
/** Rotated files kept beside the live one (default 3). */
export const DEFAULT_LOG_KEEP = 3;

export interface RotatingLogOptions {
  /** Bytes before rotation (default 10 MB). */
  maxBytes?: number;
  /** Rotated files kept (default 3). */
  keep?: number;
}

/** An append-only log file that rotates itself by size. Writes are synchronous. */
export class RotatingLog {
  private fd: number | null = null;
  private size = 0;
  private readonly maxBytes: number;
  private readonly keep: number;

  constructor(
    readonly path: string,
    opts: RotatingLogOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.keep = opts.keep ?? DEFAULT_LOG_KEEP;
  }

  /** Appends bytes; rotates first when the file would pass `maxBytes`. */
  write(chunk: Buffer | string): void {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (this.fd === null) this.open();
    if (this.size > 0 && this.size + buf.length > this.maxBytes) this.rotate();
    try {
      writeSync(this.fd!, buf);
      this.size += buf.length;
    } catch {
      // A full disk must not take the supervisor down; the child keeps running.
    }
  }

  /** A line from the supervisor itself, marked so it stands out among the child's output. */
  note(message: string): void {
    this.write(`${new Date().toISOString()} [vigil] ${message}\n`);
  }

  /** Copies a child's stream into this log. */
  attach(stream: Readable | null | undefined): void {
    if (!stream) return;
    stream.on("data", (d: Buffer) => this.write(d));
    stream.on("error", () => {}); // a broken pipe of a dying child is normal
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private open(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    this.fd = openSync(this.path, "a", 0o644);
    this.size = fstatSync(this.fd).size;
  }

  private rotate(): void {
    this.close();
    for (let i = this.keep - 1; i >= 1; i--) {
      const from = `${this.path}.${i}`;
      if (existsSync(from)) renameSync(from, `${this.path}.${i + 1}`);
    }
    if (this.keep >= 1) renameSync(this.path, `${this.path}.1`);
    else unlinkSync(this.path);
    this.open();
  }
}

/** The log files of a service: its own (`name.log`) or its instances' (`name:1.log`, ...). */
export function logFilesFor(logsDir: string, service: string): string[] {
  const own = join(logsDir, `${service}.log`);
  if (existsSync(own)) return [own];
  let names: string[] = [];
  try {
    names = readdirSync(logsDir);
  } catch {
    return [];
  }
  const prefix = `${service}:`;
  return names
    .filter((n) => n.startsWith(prefix) && n.endsWith(".log"))
    .sort((a, b) => Number(a.slice(prefix.length, -4)) - Number(b.slice(prefix.length, -4)))
    .map((n) => join(logsDir, n));
}

/** The last `n` lines of a file (reads at most the last 4 MB). */
export function lastLines(path: string, n: number): string[] {
  if (n <= 0) return [];
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return splitTail(buf).slice(-n);
  } finally {
    closeSync(fd);
  }
}

/** How much of a log's end `lastLines` and `tailLines` read, at most. */
const TAIL_BYTES = 4 * 1024 * 1024;

function splitTail(buf: Buffer): string[] {
  const lines = buf.toString("utf8").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/**
 * The lines in the last 4 MB of a log, read without blocking the event loop: for a server
 * that shares its process with the supervisor (the job log of the dashboard). [] when the
 * file cannot be read.
 */
export async function tailLines(path: string): Promise<string[]> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch {
    return [];
  }
  try {
    const size = (await fh.stat()).size;
    const len = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return splitTail(buf);
  } finally {
    await fh.close();
  }
}

/**
 * Follows a log like `tail -F`: prints what is appended, and starts over when the file
 * is rotated (new inode) or truncated. Polls every 300 ms: cheap, and follows rotation
 * without file-system event threads.
 */
export function followFile(path: string, onData: (text: string) => void): () => void {
  let ino = -1;
  let pos = 0;
  try {
    const st = statSync(path);
    ino = st.ino;
    pos = st.size;
  } catch {
    // not there yet: follow from its first byte once it appears
  }
  const timer = setInterval(() => {
    let st;
    try {
      st = statSync(path);
    } catch {
      return;
    }
    if (st.ino !== ino || st.size < pos) {
      ino = st.ino;
      pos = 0;
    }
    if (st.size <= pos) return;
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(Math.min(st.size - pos, 1 << 20));
      const got = readSync(fd, buf, 0, buf.length, pos);
      pos += got;
      onData(buf.subarray(0, got).toString("utf8"));
    } finally {
      closeSync(fd);
    }
  }, 300);
  return () => clearInterval(timer);
}
