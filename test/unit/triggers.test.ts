/**
 * Triggers against a real file system and a real SQLite store. Polls are driven one at a
 * time (`pollAll`), so what each poll finds is decided by the files, not by timing.
 */
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.js";
import type { Job } from "../../src/core/types.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { TriggerRunner } from "../../src/triggers/runner.js";
import { MIN_SETTLE_MS } from "../../src/triggers/snapshot.js";

interface Setup {
  dir: string;
  store: Store;
  runner: TriggerRunner;
  /** A second runner on the same store (a restarted process). */
  fresh(owner?: string): TriggerRunner;
  jobs(queue?: string): Promise<Job[]>;
}

const open: { dir: string; store: Store; runners: TriggerRunner[] }[] = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    for (const r of o.runners) await r.stop();
    await o.store.close();
    rmSync(o.dir, { recursive: true, force: true });
  }
});

async function setup(triggers: string, files: Record<string, string> = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-trig-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const yaml = `store: sqlite:vigil.db\nqueues:\n  q: { command: [cat], attempts: 7 }\ntriggers:\n${triggers}`;
  const { config } = parseConfigText(yaml, join(dir, "vigil.yaml"));
  const store = await openStore(config.store);
  const entry = { dir, store, runners: [] as TriggerRunner[] };
  open.push(entry);
  const make = (owner = "test-owner") => {
    const r = new TriggerRunner(store, { triggers: config.triggers, queues: config.queues, owner, maxPayload: config.maxPayload });
    entry.runners.push(r);
    return r;
  };
  return {
    dir,
    store,
    runner: make(),
    fresh: make,
    jobs: async (queue = "q") => (await store.list({ queue, limit: 0 })).sort((a, b) => a.id - b.id),
  };
}

const lineOf = (j: Job) => (j.payload as { line: string }).line;

/**
 * Lets files just written age past the shortest settle (MIN_SETTLE_MS), so the next poll
 * may hash them. This only lets time pass; no assertion depends on how long it took.
 */
const aged = () => new Promise((r) => setTimeout(r, MIN_SETTLE_MS + 30));

describe("tail", () => {
  it("makes one job per complete line, in order; a partial line waits", async () => {
    const s = await setup("  log: { tail: in.log, queue: q }\n", { "in.log": "one\ntwo\nthr" });
    await s.runner.pollAll();
    let jobs = await s.jobs();
    expect(jobs.map(lineOf)).toEqual(["one", "two"]);
    expect(jobs[1]!.source).toEqual({ trigger: "log", path: join(s.dir, "in.log"), offset: 4 });
    expect(jobs[0]!.maxAttempts).toBe(7);
    appendFileSync(join(s.dir, "in.log"), "ee\r\n\nfour\n");
    await s.runner.pollAll();
    jobs = await s.jobs();
    expect(jobs.map(lineOf)).toEqual(["one", "two", "three", "four"]);
    expect(jobs.map((j) => j.source?.offset)).toEqual([0, 4, 8, 16]); // the blank line at 15 is no record
    expect(s.runner.status()[0]).toMatchObject({ name: "log", kind: "tail", seen: 4, rejected: 0, error: null, leader: true });
  });

  it("finds lines written while nothing ran, without repeating the old ones", async () => {
    const s = await setup("  log: { tail: in.log, queue: q }\n", { "in.log": "a\nb\n" });
    await s.runner.pollAll();
    await s.runner.stop();
    appendFileSync(join(s.dir, "in.log"), "c\nd\n");
    const again = s.fresh("another-process");
    await again.pollAll();
    await again.pollAll();
    expect((await s.jobs()).map(lineOf)).toEqual(["a", "b", "c", "d"]);
  });

  it("rejects malformed and oversized lines, records them, and goes on with the next line", async () => {
    const long = "x".repeat(300);
    const huge = `{"big":"${"y".repeat(3 << 20)}"}`; // 3 MiB: longer than one read, skipped without buffering
    const s = await setup("  log: { tail: in.log, queue: q, format: jsonl, maxLine: 200 }\n", {
      "in.log": `{"n":1}\nnot json\n${long}\n{"n":2}\n${huge}\n{"n":3}\n[4]\n`,
    });
    for (let i = 0; i < 3; i++) await s.runner.pollAll();
    expect((await s.jobs()).map((j) => j.payload)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, [4]]);
    const rejected = (await s.store.listRejected("log")).sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
    expect(rejected.map((r) => [r.offset, r.reason.split(" ")[0]])).toEqual([
      [8, "not"],
      [17, "line"],
      [326, "line"],
    ]);
    expect(rejected[0]!.sample).toBe("not json");
    expect(rejected[2]!.sample.length).toBeLessThan(400);
    expect(s.runner.status()[0]).toMatchObject({ seen: 4, rejected: 3, error: null });
  });

  it("reads a truncated file again from its start", async () => {
    const s = await setup("  log: { tail: in.log, queue: q }\n", { "in.log": "first-line\nsecond-line\n" });
    await s.runner.pollAll();
    truncateSync(join(s.dir, "in.log"), 0);
    appendFileSync(join(s.dir, "in.log"), "new\n");
    await s.runner.pollAll();
    await s.runner.pollAll();
    // Truncated and regrown past the old offset between two polls: caught by the bytes before the offset.
    writeFileSync(join(s.dir, "in.log"), "rewritten-line-number-one\nrewritten-two\n");
    await s.runner.pollAll();
    await s.runner.pollAll();
    expect((await s.jobs()).map(lineOf)).toEqual([
      "first-line",
      "second-line",
      "new",
      "rewritten-line-number-one",
      "rewritten-two",
    ]);
  });

  it("drains a rotated file through its open handle beside the new one; a line never ended is rejected, not a job", async () => {
    const s = await setup("  log: { tail: in.log, queue: q, drain: 0s }\n", { "in.log": "a1\n" });
    const path = join(s.dir, "in.log");
    await s.runner.pollAll();
    appendFileSync(path, "a2\na3-no-newline");
    renameSync(path, `${path}.1`);
    writeFileSync(path, "b1\nb2\n");
    for (let i = 0; i < 3; i++) await s.runner.pollAll();
    const jobs = await s.jobs();
    expect(jobs.map(lineOf)).toEqual(["a1", "a2", "b1", "b2"]);
    expect(new Set(jobs.map((j) => j.key)).size).toBe(4);
    const rejected = await s.store.listRejected("log");
    expect(rejected.map((r) => [r.sample, r.offset, r.path])).toEqual([["a3-no-newline", 6, path]]);
    expect(rejected[0]!.reason).toMatch(/never got its newline/);
    expect((await s.store.getCursor("log"))!.cursor).not.toHaveProperty("retired");
  });

  it("reads what the writer appends to the renamed file until it has been quiet for drain", async () => {
    const s = await setup("  log: { tail: in.log, queue: q, drain: 400ms }\n", { "in.log": "a1\n" });
    const path = join(s.dir, "in.log");
    await s.runner.pollAll();
    appendFileSync(path, "a2\na3-ha");
    renameSync(path, `${path}.1`);
    writeFileSync(path, "b1\n");
    await s.runner.pollAll();
    // The writer has not reopened the path yet: it ends its half line and writes more to the old file.
    appendFileSync(`${path}.1`, "lf\na4\n");
    await s.runner.pollAll();
    appendFileSync(`${path}.1`, "a5\n");
    appendFileSync(path, "b2\n");
    await s.runner.pollAll();
    expect((await s.store.getCursor("log"))!.cursor).toHaveProperty("retired");
    // Quiet for longer than drain: the old file is done, and nothing it holds was a partial line.
    await new Promise((r) => setTimeout(r, 500));
    await s.runner.pollAll();
    await s.runner.pollAll();
    expect((await s.jobs()).map(lineOf).sort()).toEqual(["a1", "a2", "a3-half", "a4", "a5", "b1", "b2"]);
    expect(await s.store.listRejected("log")).toEqual([]);
    expect((await s.store.getCursor("log"))!.cursor).not.toHaveProperty("retired");
  });

  it("drains a rotated file after a restart from the cursor's saved position, found by its inode", async () => {
    const s = await setup("  log: { tail: in.log, queue: q, drain: 1h }\n", { "in.log": "a1\n" });
    const path = join(s.dir, "in.log");
    await s.runner.pollAll();
    renameSync(path, `${path}.1`);
    writeFileSync(path, "b1\n");
    appendFileSync(`${path}.1`, "a2\n");
    await s.runner.pollAll(); // the old file's position is saved beside the new one's
    await s.runner.stop();
    appendFileSync(`${path}.1`, "a3\n");
    renameSync(`${path}.1`, `${path}.2`); // rotated on while nothing ran
    const again = s.fresh("another-process");
    await again.pollAll();
    await again.pollAll();
    const lines = (await s.jobs()).map(lineOf);
    expect(lines.sort()).toEqual(["a1", "a2", "a3", "b1"]);
  });

  it("after a restart, finds a rotated file nothing was read from yet by its inode and birth time", async () => {
    const s = await setup("  log: { tail: in.log, queue: q, drain: 1h }\n", { "in.log": "" });
    const path = join(s.dir, "in.log");
    await s.runner.pollAll();
    renameSync(path, `${path}.1`); // rotated while still empty (logrotate's default ifempty)
    writeFileSync(path, "b1\n");
    await s.runner.pollAll();
    await s.runner.stop();
    appendFileSync(`${path}.1`, "a1\n"); // its writer has not reopened the path yet
    const again = s.fresh("another-process");
    await again.pollAll();
    expect((await s.jobs()).map(lineOf).sort()).toEqual(["a1", "b1"]);
  });

  it("finishes a file rotated while nothing ran, found by its inode, then reads the new one", async () => {
    const s = await setup("  log: { tail: in.log, queue: q }\n", { "in.log": "a1\n" });
    const path = join(s.dir, "in.log");
    await s.runner.pollAll();
    await s.runner.stop();
    // While no runner holds the file: more lines, a rename-and-create rotation, new lines.
    appendFileSync(path, "a2\na3\n");
    renameSync(path, `${path}-20261128`);
    writeFileSync(path, "b1\n");
    const again = s.fresh("another-process");
    for (let i = 0; i < 3; i++) await again.pollAll();
    expect((await s.jobs()).map(lineOf)).toEqual(["a1", "a2", "a3", "b1"]);
  });

  it("does not take another file for the rotated one when its bytes differ", async () => {
    const s = await setup("  log: { tail: in.log, queue: q }\n", { "in.log": "a1\n" });
    const path = join(s.dir, "in.log");
    await s.runner.pollAll();
    await s.runner.stop();
    // The old file is rewritten in place under its new name (same inode, other bytes).
    appendFileSync(path, "a2\n");
    renameSync(path, `${path}.1`);
    writeFileSync(`${path}.1`, "XX\nzz\n");
    writeFileSync(path, "b1\n");
    const again = s.fresh("another-process");
    for (let i = 0; i < 3; i++) await again.pollAll();
    expect((await s.jobs()).map(lineOf)).toEqual(["a1", "b1"]);
  });

  it("reports a missing file as an error and recovers when it appears", async () => {
    const s = await setup("  log: { tail: in.log, queue: q }\n");
    await s.runner.pollAll();
    expect(s.runner.status()[0]!.error).toMatch(/in\.log does not exist/);
    writeFileSync(join(s.dir, "in.log"), "hello\n");
    await s.runner.pollAll();
    await s.runner.pollAll();
    expect(s.runner.status()[0]!.error).toBeNull();
    expect((await s.jobs()).map(lineOf)).toEqual(["hello"]);
  });

  it("leaves a trigger that belongs to another host alone", async () => {
    const s = await setup("  log: { tail: in.log, queue: q, host: some-other-host }\n", { "in.log": "a\n" });
    await s.runner.pollAll();
    expect(s.runner.status()).toEqual([]);
    expect(await s.jobs()).toEqual([]);
  });

  it("never enqueues a line twice when two processes both believe they lead", async () => {
    const s = await setup("  log: { tail: in.log, queue: q }\n", { "in.log": "a\n" });
    const twin = s.fresh("test-owner"); // same owner: both get the lock, as after a pause past the TTL
    await s.runner.pollAll();
    await twin.pollAll(); // twin now caches the cursor at this version
    appendFileSync(join(s.dir, "in.log"), "b\n");
    await s.runner.pollAll(); // moves the cursor past "b"
    appendFileSync(join(s.dir, "in.log"), "c\n");
    await twin.pollAll(); // its commit of "b" expects the old version: refused, cursor re-read
    await twin.pollAll();
    expect((await s.jobs()).map(lineOf)).toEqual(["a", "b", "c"]);
  });

  it("lets only the lock holder poll", async () => {
    const s = await setup("  log: { tail: in.log, queue: q }\n", { "in.log": "a\n" });
    const other = s.fresh("other-owner");
    await s.runner.pollAll();
    appendFileSync(join(s.dir, "in.log"), "b\n");
    await other.pollAll();
    expect(other.status()[0]).toMatchObject({ leader: false, seen: 0 });
    await s.runner.pollAll();
    expect((await s.jobs()).map(lineOf)).toEqual(["a", "b"]);
  });
});

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

describe("watch", () => {
  it("turns stable files into jobs, changed content into new jobs, and sees rename-over writes", async () => {
    const s = await setup("  w: { watch: 'in/*.md', queue: q, settle: 0ms }\n", { "in/a.md": "A", "in/b.md": "B", "in/c.txt": "no" });
    const dir = join(s.dir, "in");
    await aged();
    await s.runner.pollAll();
    let jobs = await s.jobs();
    expect(jobs.map((j) => j.payload)).toEqual([
      { path: join(dir, "a.md"), size: 1, mtimeMs: expect.any(Number), sha256: sha("A") },
      { path: join(dir, "b.md"), size: 1, mtimeMs: expect.any(Number), sha256: sha("B") },
    ]);
    await aged();
    await s.runner.pollAll(); // nothing changed: nothing new
    expect(await s.jobs()).toHaveLength(2);
    writeFileSync(join(dir, ".a.md.tmp"), "A2");
    renameSync(join(dir, ".a.md.tmp"), join(dir, "a.md")); // atomic rename-over
    writeFileSync(join(dir, "b.md"), "B"); // same bytes again: no job
    unlinkSync(join(dir, "c.txt"));
    await aged();
    await s.runner.pollAll();
    jobs = await s.jobs();
    expect(jobs.map((j) => (j.payload as { sha256: string }).sha256)).toEqual([sha("A"), sha("B"), sha("A2")]);
    writeFileSync(join(dir, "a.md"), "A"); // back to the first content: still a change
    await aged();
    await s.runner.pollAll();
    expect((await s.jobs()).map((j) => (j.payload as { sha256: string }).sha256)).toEqual([sha("A"), sha("B"), sha("A2"), sha("A")]);
  });

  it("ignores deletions by default and enqueues them with onDelete: enqueue", async () => {
    const s = await setup("  w: { watch: in, queue: q, settle: 0ms }\n  d: { watch: del, queue: q, settle: 0ms, onDelete: enqueue }\n", {
      "in/x": "1",
      "del/y": "2",
    });
    await aged();
    await s.runner.pollAll();
    unlinkSync(join(s.dir, "in", "x"));
    unlinkSync(join(s.dir, "del", "y"));
    await aged();
    await s.runner.pollAll();
    const jobs = await s.jobs();
    expect(jobs.map((j) => j.payload)).toEqual([
      expect.objectContaining({ path: join(s.dir, "in", "x") }),
      expect.objectContaining({ path: join(s.dir, "del", "y") }),
      { path: join(s.dir, "del", "y"), size: null, mtimeMs: null, sha256: null, deleted: true },
    ]);
  });

  it("follows symlinks inside the folder and ignores those leaving it", async () => {
    const s = await setup("  w: { watch: 'in/*', queue: q, settle: 0ms }\n", { "in/real": "R", "outside/secret": "S" });
    symlinkSync(join(s.dir, "outside", "secret"), join(s.dir, "in", "escape"));
    symlinkSync("../outside/secret", join(s.dir, "in", "escape-relative"));
    symlinkSync("real", join(s.dir, "in", "inner"));
    symlinkSync(join(s.dir, "outside"), join(s.dir, "in", "dir-link"));
    await aged();
    await s.runner.pollAll();
    const paths = (await s.jobs()).map((j) => (j.payload as { path: string }).path);
    expect(paths.sort()).toEqual([join(s.dir, "in", "inner"), join(s.dir, "in", "real")]);
  });

  it("reports a missing folder, then recovers when it is created", async () => {
    const s = await setup("  w: { watch: 'in/*.md', queue: q, settle: 0ms }\n");
    await aged();
    await s.runner.pollAll();
    expect(s.runner.status()[0]!.error).toMatch(/folder .*in does not exist/);
    mkdirSync(join(s.dir, "in"));
    writeFileSync(join(s.dir, "in", "late.md"), "L");
    await aged();
    await s.runner.pollAll();
    expect(s.runner.status()[0]).toMatchObject({ error: null, seen: 1 });
    expect(await s.jobs()).toHaveLength(1);
  });

  it("waits until a file is stable for settle", async () => {
    const s = await setup("  w: { watch: in, queue: q, settle: 1500ms }\n", { "in/placeholder": "" });
    await aged();
    await s.runner.pollAll(); // placeholder is fresh: not yet stable
    expect(await s.jobs()).toHaveLength(0);
    const deadline = Date.now() + 20_000;
    while ((await s.jobs()).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      await aged();
    await s.runner.pollAll();
    }
    const jobs = await s.jobs();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.createdAt - (jobs[0]!.payload as { mtimeMs: number }).mtimeMs).toBeGreaterThanOrEqual(1500);
  });

  it("finds files that changed while nothing ran", async () => {
    const s = await setup("  w: { watch: in, queue: q, settle: 0ms }\n", { "in/a": "1" });
    await aged();
    await s.runner.pollAll();
    await s.runner.stop();
    writeFileSync(join(s.dir, "in", "a"), "2");
    writeFileSync(join(s.dir, "in", "b"), "3");
    await aged();
    await s.fresh("restarted").pollAll();
    expect((await s.jobs()).map((j) => (j.payload as { sha256: string }).sha256)).toEqual([sha("1"), sha("2"), sha("3")]);
  });
});

describe("file", () => {
  it("makes a job whenever the content hash changes", async () => {
    const s = await setup("  f: { file: issues.md, queue: q, settle: 0ms }\n", { "issues.md": "v1" });
    const path = join(s.dir, "issues.md");
    await aged();
    await s.runner.pollAll();
    writeFileSync(path, "v1"); // rewritten, same content
    await aged();
    await s.runner.pollAll();
    writeFileSync(path, "v2");
    await aged();
    await s.runner.pollAll();
    expect((await s.jobs()).map((j) => j.payload)).toEqual([
      { path, size: 2, mtimeMs: expect.any(Number), sha256: sha("v1") },
      { path, size: 2, mtimeMs: expect.any(Number), sha256: sha("v2") },
    ]);
    unlinkSync(path);
    await aged();
    await s.runner.pollAll();
    expect(s.runner.status()[0]!.error).toMatch(/does not exist/);
  });
});
