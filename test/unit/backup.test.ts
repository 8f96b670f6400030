/**
 * `vigil backup` on a real SQLite store while another connection keeps writing: the copy
 * is a complete, valid store, and the command refuses to overwrite without --force.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backupSqlite, pgDumpCommand } from "../../src/health/backup.js";
import { sqliteFileOf } from "../../src/core/store-url.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import { tempStore, type TempStore } from "./ops-fixtures.js";

const VIGIL = resolve(import.meta.dirname, "../../bin/vigil");

describe("backup", () => {
  let t: TempStore;
  beforeEach(async () => {
    t = await tempStore();
  });
  afterEach(() => t.cleanup());

  it("copies a store consistently while it is written to", async () => {
    await t.store.enqueueMany(Array.from({ length: 5000 }, (_, i) => ({ queue: "q", payload: { i, pad: "x".repeat(200) } })));
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await t.store.enqueue("q", { more: written++ });
        await new Promise((r) => setImmediate(r));
      }
    })();
    const progress: number[] = [];
    const target = join(t.dir, "copy.db");
    const result = await backupSqlite(t.file, target, { pagesPerStep: 50, onProgress: (p) => progress.push(p.remainingPages) });
    writing = false;
    await writer;
    expect(result.pages).toBeGreaterThan(100);
    expect(progress.length).toBeGreaterThan(1);
    // The writes restarted the copy at least once (remaining pages went back up), and it
    // still finished.
    expect(progress.some((r, i) => i > 0 && r > progress[i - 1]!)).toBe(true);
    expect(existsSync(`${target}.partial`)).toBe(false);
    const copy = await openSqliteStore(target, { readOnly: true });
    try {
      expect(await copy.check()).toBeNull();
      const n = (await copy.stats())["q"]!.waiting;
      expect(n).toBeGreaterThanOrEqual(5000);
      expect(n).toBeLessThanOrEqual(5000 + written);
      expect(await copy.get(1)).toMatchObject({ queue: "q", payload: { i: 0 } });
    } finally {
      await copy.close();
    }
  });

  it("runs as `vigil backup FILE`, refusing to overwrite without --force", () => {
    const dir = join(t.dir, "project");
    mkdirSync(dir);
    writeFileSync(join(dir, "vigil.yaml"), `store: sqlite:${t.file}\n`);
    const run = (...args: string[]) => spawnSync(process.execPath, [VIGIL, ...args], { cwd: dir, encoding: "utf8", timeout: 60_000 });
    const first = run("backup", "b.db");
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/^backed up .* to .*b\.db/);
    const again = run("backup", "b.db");
    expect(again.status).toBe(1);
    expect(again.stderr).toContain("--force");
    expect(run("backup", "b.db", "--force").status).toBe(0);
    expect(sqliteFileOf("postgres://u@h/db")).toBeNull();
    const pg = run("--store", "postgres://vigil:secret@127.0.0.1/test", "backup", "x.dump");
    expect(pg.status).toBe(0);
    expect(pg.stdout).toContain("pg_dump --format=custom --schema=vigil");
    expect(pg.stdout).not.toContain("secret");
  });

  it("names the schema of the store URL's ?schema= in the pg_dump hint, and leaves it out of the URL", () => {
    const argv = pgDumpCommand("postgres://vigil:secret@127.0.0.1:5432/test?schema=custom&sslmode=disable", "vigil", "/tmp/x.dump");
    expect(argv).toContain("--schema=custom");
    expect(argv).not.toContain("--schema=vigil");
    const url = argv.at(-1)!;
    expect(url).not.toContain("schema=");
    expect(url).toContain("sslmode=disable");
    expect(url).not.toContain("secret");
    // The config's `schema` applies when the URL has none.
    expect(pgDumpCommand("postgres://u@h/db", "mine", "x")).toContain("--schema=mine");

    const dir = join(t.dir, "pg");
    mkdirSync(dir);
    writeFileSync(join(dir, "vigil.yaml"), "store: postgres://vigil:secret@127.0.0.1/test?schema=custom\n");
    const out = spawnSync(process.execPath, [VIGIL, "backup", "x.dump"], { cwd: dir, encoding: "utf8", timeout: 60_000 });
    expect(out.stderr).toBe("");
    expect(out.stdout).toContain("pg_dump --format=custom --schema=custom");
    expect(out.stdout).not.toContain("schema=custom postgres");
    expect(out.stdout).not.toContain("secret");
  });
});
