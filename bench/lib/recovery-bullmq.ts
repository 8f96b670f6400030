/**
 * The crash case for BullMQ 6 on the local Redis, for bench/recovery: a worker process
 * takes a job whose handler never returns, is SIGKILLed, and a second worker process
 * picks the job up once BullMQ's stalled-job check notices the lost lock. Measured: ms
 * from the SIGKILL until the job's `finishedOn` (stamped by the rescuing worker).
 *
 * Each rep uses its own queue prefix and deletes exactly those keys after (Redis is shared).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Queue } from "bullmq";
import { Redis } from "ioredis";

const REDIS = { host: "127.0.0.1", port: 6379 };
const ROOT = resolve(import.meta.dirname, "../..");

export interface BullSettings {
  /** BullMQ's lockDuration in ms (default 30 s). */
  lockDuration?: number;
  /** BullMQ's stalledInterval in ms (default 30 s). */
  stalledInterval?: number;
}

const WORKER_SCRIPT = (bullmqUrl: string) => `
const { Worker } = await import(${JSON.stringify(bullmqUrl)});
const [prefix, role, settings] = [process.argv[2], process.argv[3], JSON.parse(process.argv[4])];
const w = new Worker("recovery", async () => {
  if (role === "victim") { process.send({ t: "started" }); await new Promise(() => {}); }
  return { pid: process.pid };
}, { connection: { host: "127.0.0.1", port: 6379 }, prefix, concurrency: 1, ...settings });
w.on("error", () => {});
await w.waitUntilReady();
process.send({ t: "ready" });
process.on("disconnect", () => process.exit(0));
`;

let scriptDir: string | null = null;
function script(): string {
  if (!scriptDir) {
    scriptDir = mkdtempSync(join(tmpdir(), "vigil-bench-bull-"));
    const bullmq = createRequire(join(ROOT, "package.json")).resolve("bullmq");
    writeFileSync(join(scriptDir, "worker.mjs"), WORKER_SCRIPT(pathToFileURL(bullmq).href));
  }
  return join(scriptDir, "worker.mjs");
}

export function cleanupBullScripts(): void {
  if (scriptDir) rmSync(scriptDir, { recursive: true, force: true });
  scriptDir = null;
}

function startWorker(prefix: string, role: "victim" | "rescuer", settings: BullSettings): { child: ChildProcess; next: (t: string) => Promise<void> } {
  const child = spawn(process.execPath, [script(), prefix, role, JSON.stringify(settings)], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  child.on("error", () => {});
  const seen: string[] = [];
  const waiters: [string, () => void][] = [];
  child.on("message", (m: { t: string }) => {
    seen.push(m.t);
    for (const [t, w] of waiters.splice(0)) (t === m.t ? w : () => waiters.push([t, w]))();
  });
  const next = (t: string) => new Promise<void>((r) => (seen.includes(t) ? r() : waiters.push([t, r])));
  return { child, next };
}

async function deletePrefix(prefix: string): Promise<void> {
  const redis = new Redis({ ...REDIS, maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  try {
    let cursor = "0";
    do {
      const [nextCursor, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = nextCursor;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** One rep: ms from SIGKILL of the busy worker until the other completed the job, or null past `capMs`. */
export async function bullCrashOnce(settings: BullSettings, capMs: number): Promise<number | null> {
  const prefix = `vigilrecovery-${randomBytes(4).toString("hex")}`;
  const queue = new Queue("recovery", { connection: REDIS, prefix });
  queue.on("error", () => {});
  const victim = startWorker(prefix, "victim", settings);
  let rescuer: ReturnType<typeof startWorker> | null = null;
  try {
    await victim.next("ready");
    const job = await queue.add("j", {}, { attempts: 3 });
    await victim.next("started");
    rescuer = startWorker(prefix, "rescuer", settings);
    await rescuer.next("ready");
    const t0 = Date.now();
    victim.child.kill("SIGKILL");
    const deadline = t0 + capMs;
    while (Date.now() < deadline) {
      const j = await queue.getJob(job.id!);
      if (j?.finishedOn) return j.finishedOn - t0;
      await new Promise((r) => setTimeout(r, 50));
    }
    return null;
  } finally {
    victim.child.kill("SIGKILL");
    rescuer?.child.kill("SIGKILL");
    await queue.close().catch(() => {});
    await deletePrefix(prefix).catch(() => {});
  }
}
