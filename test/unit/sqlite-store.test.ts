/**
 * What only the SQLite store has: refusing bad files without touching them, migrations
 * raced by several processes, durability, several processes draining one file, and
 * wake-ups across processes.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { VigilError } from "../../src/core/errors.js";
import { BUSY_TIMEOUT_MS } from "../../src/store/sqlite/busy.js";
import { MIGRATIONS, SCHEMA_VERSION } from "../../src/store/sqlite/migrations.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite/store.js";
import { wakeDir } from "../../src/store/sqlite/wake.js";
import { killChildren, sqliteChild as child, sqliteChildWith as childWith } from "./fixtures/sqlite-children.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-sqlite-"));
});
afterEach(() => {
  killChildren();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function refusalOf(fn: () => Promise<unknown>): Promise<VigilError> {
  try {
    await fn();
  } catch (err) {
    return err as VigilError;
  }
  throw new Error("expected a rejection");
}

async function refusal(path: string): Promise<VigilError> {
  try {
    const s = await openSqliteStore(path, {});
    await s.close();
  } catch (err) {
    return err as VigilError;
  }
  throw new Error(`${path} was accepted`);
}

/** Opening must refuse the file, name it, and leave its bytes and its folder as they were. */
async function expectRefusedUntouched(path: string, code: string, advice: RegExp): Promise<VigilError> {
  const before = readFileSync(path);
  const err = await refusal(path);
  expect(err.code).toBe(code);
  expect(err.message).toContain(path);
  expect(err.message).toMatch(advice);
  expect(readFileSync(path).equals(before)).toBe(true);
  expect(existsSync(`${path}-wal`)).toBe(false);
  expect(existsSync(`${path}-journal`)).toBe(false);
  return err;
}

describe("sqlite store: files it must not touch", () => {
  it("refuses a file that is not SQLite", async () => {
    const path = join(dir, "notes.db");
    writeFileSync(path, "queues:\n  outline: {}\n".repeat(200));
    await expectRefusedUntouched(path, "STORE_CORRUPT", /not a SQLite database.*Restore it from a backup, or point `store:`/);
  });

  it("opens a store damaged inside its job pages without reading them all, and its check names the damage", async () => {
    // Opening reads the header and the schema only (a full check reads every page, seconds
    // at millions of jobs); `check()` is the full one that doctor and an unclean start run.
    const path = join(dir, "corrupt", "vigil.db");
    const s = await openSqliteStore(path, {});
    await s.enqueueMany(Array.from({ length: 2000 }, (_, i) => ({ queue: "q", payload: { i, pad: "x".repeat(100) } })));
    await s.close();
    const size = statSync(path).size;
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.alloc(3 * 4096, 0x5a), 0, 3 * 4096, Math.floor(size / 2 / 4096) * 4096);
    closeSync(fd);
    const damaged = await openSqliteStore(path, {});
    try {
      expect(await damaged.listIncidents()).toEqual([]);
      expect(await damaged.check()).toMatch(/\S/);
    } finally {
      await damaged.close();
    }
  });

  it("refuses a store whose schema pages are damaged", async () => {
    const path = join(dir, "corrupt-schema", "vigil.db");
    await (await openSqliteStore(path, {})).close();
    const fd = openSync(path, "r+");
    // Page 1 after its 100-byte file header: the b-tree page of sqlite_master.
    writeSync(fd, Buffer.alloc(400, 0x5a), 0, 400, 100);
    closeSync(fd);
    await expectRefusedUntouched(path, "STORE_CORRUPT", /corrupted.*Restore it from a backup/);
  });

  it("refuses another application's SQLite database", async () => {
    const path = join(dir, "app.sqlite");
    const other = new Database(path);
    other.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada');");
    other.close();
    const err = await expectRefusedUntouched(path, "STORE_FOREIGN", /another application \(tables: users\).*Point `store:` at another path/);
    expect(err.name).toBe("VigilError");
  });

  it("refuses a store written by a newer Vigil", async () => {
    const path = join(dir, "newer", "vigil.db");
    await (await openSqliteStore(path, {})).close();
    const db = new Database(path);
    db.prepare("UPDATE vigil_meta SET value = ? WHERE name = 'schema_version'").run(String(SCHEMA_VERSION + 1));
    db.close();
    const before = readFileSync(path);
    const err = await refusal(path);
    expect(err.code).toBe("STORE_TOO_NEW");
    expect(err.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it("creates the folder and a fresh store, and reopens it", async () => {
    const path = join(dir, "a", "b", "c", "vigil.db");
    const s = (await openSqliteStore(path, {})) as SqliteStore;
    expect(s.migratedOnOpen).toBe(SCHEMA_VERSION);
    expect(s.pragma("journal_mode")).toBe("wal");
    expect(s.pragma("synchronous")).toBe(1); // NORMAL
    expect(s.pragma("temp_store")).toBe(2); // MEMORY
    expect(s.pragma("busy_timeout")).toBe(BUSY_TIMEOUT_MS);
    await s.enqueue("q", 1);
    await s.close();
    const again = (await openSqliteStore(path, {})) as SqliteStore;
    expect(again.migratedOnOpen).toBe(0);
    expect((await again.stats()).q!.waiting).toBe(1);
    await again.close();
  });

  it("upgrades a version-1 file, keeping its counts", async () => {
    const path = join(dir, "v1.db");
    const db = new Database(path);
    db.exec("CREATE TABLE vigil_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
    db.exec(MIGRATIONS[0]!);
    db.exec("INSERT INTO vigil_meta VALUES ('schema_version', '1')");
    const add = db.prepare("INSERT INTO jobs (queue, state, payload, max_attempts, run_at, created_at, finished_at) VALUES (?, ?, '1', 5, 1, 1, ?)");
    for (const [queue, state] of [["a", "completed"], ["a", "completed"], ["b", "completed"], ["a", "waiting"], ["b", "dead"]] as const) {
      add.run(queue, state, state === "waiting" ? null : 2);
    }
    db.close();
    const s = (await openSqliteStore(path, {})) as SqliteStore;
    expect(s.migratedOnOpen).toBe(SCHEMA_VERSION - 1);
    const stats = await s.stats();
    expect([stats.a!.completed, stats.a!.waiting, stats.b!.completed, stats.b!.dead]).toEqual([2, 1, 1, 1]);
    const [lease] = await s.claim({ workerId: "w", queues: { a: 1 }, leaseMs: 1000 });
    await s.complete(lease!, null);
    expect((await s.stats()).a).toMatchObject({ completed: 3, waiting: 0, active: 0 });
    await s.close();
  });

  it("a write lock held past the wait limit is a clear error; a closed store says so", async () => {
    const path = join(dir, "locked.db");
    const s = await openSqliteStore(path, { lockWaitMs: 300 });
    const holder = new Database(path);
    holder.exec("BEGIN IMMEDIATE");
    try {
      const err = await refusalOf(() => s.enqueue("q", 1));
      expect(err.code).toBe("STORE_UNREACHABLE");
      expect(err.message).toContain(path);
      expect(err.message).toMatch(/stayed locked by another process for 300 ms/);
    } finally {
      holder.exec("ROLLBACK");
      holder.close();
    }
    expect((await s.enqueue("q", 2)).job.payload).toBe(2);
    await s.close();
    expect((await refusalOf(() => s.enqueue("q", 3))).message).toMatch(/is closed/);
  });

  it("durability full sets synchronous=FULL", async () => {
    const s = (await openSqliteStore(join(dir, "full.db"), { durability: "full" })) as SqliteStore;
    expect(s.pragma("synchronous")).toBe(2);
    await s.close();
  });
});

describe("sqlite store: several processes on one file", () => {
  it("runs migrations once when 4 processes open a fresh file together", async () => {
    const path = join(dir, "race", "vigil.db");
    const kids = Array.from({ length: 4 }, () => child("migrate", path));
    await Promise.all(kids.map((k) => k.waitFor("ready")));
    for (const k of kids) k.proc.stdin!.write("go\n");
    const codes = await Promise.all(kids.map((k) => k.exited));
    expect(codes, kids.map((k) => k.err()).join("\n")).toEqual([0, 0, 0, 0]);
    const ran = kids.map((k) => Number(/ran=(\d+) again=(\d+)/.exec(k.out())?.[1]));
    const again = kids.map((k) => Number(/again=(\d+)/.exec(k.out())?.[1]));
    expect(ran.sort()).toEqual([0, 0, 0, SCHEMA_VERSION]);
    expect(again).toEqual([0, 0, 0, 0]);
    const db = new Database(path, { readonly: true });
    expect(db.prepare("SELECT value FROM vigil_meta WHERE name = 'schema_version'").pluck().get()).toBe(String(SCHEMA_VERSION));
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").pluck().get()).toBe(1);
    db.close();
  });

  it("4 workers drain 20,000 jobs enqueued meanwhile: each completed exactly once", async () => {
    const path = join(dir, "drain", "vigil.db");
    const N = 20_000;
    const store = await openSqliteStore(path, {});
    try {
      const kids = ["w1", "w2", "w3", "w4"].map((id) => child("drain", path, id, String(N)));
      await Promise.all(kids.map((k) => k.waitFor("ready")));
      for (let i = 0; i < N; i += 500) {
        await store.enqueueMany(Array.from({ length: 500 }, (_, j) => ({ queue: "q", payload: { n: i + j } })));
      }
      const codes = await Promise.all(kids.map((k) => k.exited));
      expect(codes, kids.map((k) => k.err()).join("\n")).toEqual([0, 0, 0, 0]);
      const reports = kids.map((k) => JSON.parse(k.out().trim().split("\n").pop()!) as { claimed: number[]; refused: number });
      expect(reports.map((r) => r.refused)).toEqual([0, 0, 0, 0]);
      const claimedBy = new Map<number, string[]>();
      reports.forEach((r, i) => {
        for (const id of r.claimed) claimedBy.set(id, [...(claimedBy.get(id) ?? []), `w${i + 1}`]);
      });
      const doubles = [...claimedBy].filter(([, who]) => who.length > 1);
      expect(doubles).toEqual([]);
      expect(claimedBy.size).toBe(N);
      const counts = (await store.stats()).q!;
      expect(counts).toMatchObject({ completed: N, waiting: 0, active: 0, dead: 0 });
      const jobs = await store.list({ limit: 0 });
      expect(jobs.length).toBe(N);
      expect(jobs.filter((j) => j.attempt !== 1)).toEqual([]);
      // Each job's stored result names the one worker that claimed it.
      expect(jobs.filter((j) => (j.result as { by: string }).by !== claimedBy.get(j.id)![0])).toEqual([]);
      expect(new Set(jobs.map((j) => (j.payload as { n: number }).n)).size).toBe(N);
    } finally {
      await store.close();
    }
  });

  it("a subscriber in another process hears an enqueue", async () => {
    const path = join(dir, "wake", "vigil.db");
    const store = await openSqliteStore(path, {});
    try {
      const listener = child("listen", path, "outline");
      await listener.waitFor("ready");
      expect(existsSync(join(wakeDir(path), `${listener.proc.pid}.sock`))).toBe(true);
      await store.enqueue("outline", { idea: 1 });
      await listener.waitFor("heard");
      expect(await listener.exited).toBe(0);
      // The listener removed its socket on close.
      expect(existsSync(join(wakeDir(path), `${listener.proc.pid}.sock`))).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("a wall-clock step of +15 s in the reaping process does not make a live lease look expired", async () => {
    const file = join(dir, "step.db");
    const clockFile = join(dir, "step-offset");
    writeFileSync(clockFile, "0");
    const store = await openSqliteStore(file, {});
    try {
      const { job } = await store.enqueue("q", 1);
      const reaper = childWith(
        { node: ["--import", join(ROOT, "test", "e2e", "fixtures", "clock-step.mjs")], env: { VIGIL_TEST_CLOCK_FILE: clockFile } },
        "reap",
        file,
      );
      await reaper.waitFor("ready", 15_000);
      // Held by this process, whose clock is not stepped: as if leased just before the step.
      await store.claim({ workerId: "w", queues: { q: 1 }, leaseMs: 5000 });
      reaper.proc.stdin!.write("reap 0\n");
      await reaper.waitFor("reaped=0\n", 15_000);
      writeFileSync(clockFile, "15000");
      reaper.proc.stdin!.write("reap 14000\n");
      await reaper.waitFor("reaped=0\nreaped=");
      expect(reaper.out()).toBe("ready\nreaped=0\nreaped=0\n");
      expect((await store.get(job.id))?.state).toBe("active");
      // Once the lease has really run out (its holder stopped renewing), it is reaped.
      const deadline = Date.now() + 30_000;
      while (!reaper.out().includes("reaped=1")) {
        if (Date.now() > deadline) throw new Error(`the run-out lease was never reaped: ${reaper.out()}`);
        reaper.proc.stdin!.write("reap 14000\n");
        await new Promise((r) => setTimeout(r, 250));
      }
      expect((await store.get(job.id))?.state).toBe("waiting");
      reaper.proc.stdin!.end();
      expect(await reaper.exited).toBe(0);
    } finally {
      await store.close();
    }
  });

  it("removes the socket a SIGKILLed subscriber left behind", async () => {
    const path = join(dir, "stale", "vigil.db");
    const store = await openSqliteStore(path, {});
    try {
      const listener = child("listen", path, "never");
      await listener.waitFor("ready");
      const sock = join(wakeDir(path), `${listener.proc.pid}.sock`);
      listener.proc.kill("SIGKILL");
      await listener.exited;
      expect(existsSync(sock)).toBe(true);
      await store.enqueue("q", 1);
      const deadline = Date.now() + 20_000;
      while (existsSync(sock) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(existsSync(sock)).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("puts the wake folder under the temp dir when the path would be too long for a socket", () => {
    const long = join(dir, "x".repeat(120), "vigil.db");
    const d = wakeDir(long);
    expect(d.startsWith(tmpdir())).toBe(true);
    expect(d).toBe(wakeDir(long));
    expect(wakeDir(join(dir, "short.db"))).toBe(join(dir, "short.db.wake"));
  });
});
