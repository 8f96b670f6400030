/**
 * Where the full integrity check of a SQLite store runs: not on every open (it reads the
 * whole file), but in `vigil doctor` and in `vigil start` after an unclean shutdown. A real
 * supervisor is SIGKILLed, the file is damaged in the middle of its job pages, and the next
 * start must refuse it clearly and start nothing; doctor must name it too.
 */
import { closeSync, openSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { killGroup } from "../../src/os/process.js";
import { readChildren } from "../../src/project/children-file.js";
import { vigilPaths } from "../../src/project/paths.js";
import { WORK_HANDLER, WORKERS_YAML, allRunning, makeProject, openProjectStore, running, startVigil, supervisorTest, vigil, waitFor } from "./supervisor-helpers.js";

const t = supervisorTest();

/** Overwrites three pages in the middle of the file, where job rows live. */
function damage(file: string): void {
  const size = statSync(file).size;
  const fd = openSync(file, "r+");
  writeSync(fd, Buffer.alloc(3 * 4096, 0x5a), 0, 3 * 4096, Math.floor(size / 2 / 4096) * 4096);
  closeSync(fd);
}

describe("store integrity", () => {
  it("after a SIGKILLed supervisor, the next start refuses a damaged store and starts nothing; doctor names it", async () => {
    t.project = makeProject(WORKERS_YAML("{ stallAfter: 3s, killTimeout: 3s }"), { "work.mjs": WORK_HANDLER });
    const file = join(t.project.dir, ".vigil", "vigil.db");
    const store = await openProjectStore(t.project);
    await store.enqueueMany(Array.from({ length: 2000 }, (_, i) => ({ queue: "elsewhere", payload: { i, pad: "x".repeat(100) } })));
    await store.close();

    const first = startVigil(t.project);
    t.runs.push(first);
    await allRunning(t.project, first);
    const children = readChildren(vigilPaths(t.project.dir).childrenFile);
    expect(children.length).toBe(2);
    process.kill(first.child.pid!, "SIGKILL");
    for (const c of children) killGroup(c.pid, "SIGKILL");
    await waitFor("supervisor and workers gone", () => [first.child.pid!, ...children.map((c) => c.pid)].every((p) => !running(p)));
    // Move what the WAL holds into the file, so the damage lands on job pages.
    const raw = new Database(file);
    raw.pragma("wal_checkpoint(TRUNCATE)");
    raw.close();
    damage(file);

    const second = vigil(t.project, ["start"], 120_000);
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(/failed its integrity check|is corrupted/);
    expect(second.stderr).toContain(file);
    expect(second.stderr).toMatch(/restore it from a backup/i);
    expect(second.stderr).toMatch(/nothing was started|will not write to it/);

    const doctor = vigil(t.project, ["doctor"], 120_000);
    expect(doctor.status).not.toBe(0);
    expect(doctor.stdout + doctor.stderr).toMatch(/failed its integrity check|is corrupted/);
    expect(doctor.stdout + doctor.stderr).toContain(file);
  });
});
