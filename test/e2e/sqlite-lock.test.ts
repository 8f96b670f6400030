/**
 * A SQLite write lock held for longer than `stallAfter` — by another process, or by a
 * large `vigil enqueue Q -` — under a real supervisor: workers wait for the lock without
 * blocking their event loop, so their heartbeats keep flowing, nobody is declared
 * stalled or restarted, and every job completes once the lock is free.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import { sqliteChild, killChildren } from "../unit/fixtures/sqlite-children.js";
import { VIGIL, WORK_HANDLER, allRunning, makeProject, openProjectStore, snapshot, startVigil, supervisorTest, waitFor, type Project } from "./supervisor-helpers.js";

const t = supervisorTest();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Workers on `work` (the test handler) and `bulk` (no-op), two instances, 2 s stallAfter. */
const YAML = `queues:
  work: { handler: ./work.mjs, concurrency: 4 }
  bulk: { handler: ./noop.mjs, concurrency: 10 }
services:
  workers: { queues: [work, bulk], instances: 2 }
supervision: { stallAfter: 2s, killTimeout: 1s }
http: { enabled: false }
`;
const FILES = { "work.mjs": WORK_HANDLER, "noop.mjs": "export default async () => null;\n" };

/**
 * Watches the worker rows until `stop()`: the largest heartbeat age seen, and any row not
 * running (or the supervisor not answering, as when its own loop is blocked).
 */
function watchWorkers(p: Project) {
  let maxAge = 0;
  let looks = 0;
  const trouble: string[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      const s = await snapshot(p).catch(() => null);
      if (!s) trouble.push("supervisor did not answer");
      for (const r of s?.services ?? []) {
        if (r.state !== "running") trouble.push(`${r.name}=${r.state}`);
        maxAge = Math.max(maxAge, r.heartbeatAgeMs ?? 0);
      }
      if (s) looks++;
      await sleep(200);
    }
  })();
  return {
    async stop() {
      on = false;
      await loop;
      return { maxAge, looks, trouble };
    },
  };
}

async function stalls(store: Store): Promise<string[]> {
  return (await store.listIncidents({ limit: 0 })).map((i) => `${i.service}:${i.cause}`);
}

/** `vigil enqueue QUEUE - ...args` with stdin from `file`; resolves with its exit and output. */
function enqueueFile(p: Project, queue: string, file: string, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const fd = openSync(file, "r");
  const child = spawn(process.execPath, [VIGIL, "-c", p.config, "enqueue", queue, "-", ...args], { cwd: p.dir, stdio: [fd, "pipe", "pipe"] });
  closeSync(fd);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
}

describe("sqlite write lock held for longer than stallAfter", () => {
  it("another process holds the lock: no worker is declared stalled, heartbeats flow, jobs complete after", async () => {
    t.project = makeProject(YAML, FILES);
    t.runs.push(startVigil(t.project));
    const rows = await allRunning(t.project, t.runs[0]);
    t.store = await openProjectStore(t.project);
    const holder = sqliteChild("hold", join(t.project.dir, ".vigil", "vigil.db"));
    await holder.waitFor("ready");
    try {
      // Jobs that are running on both workers when the lock is taken: their completions,
      // renewals and next claims all meet the lock.
      const ids: number[] = [];
      for (let i = 0; i < 8; i++) ids.push((await t.store.enqueue("work", { mode: "sleep", ms: 1500 })).job.id);
      await waitFor("jobs running on both workers", async () => {
        const active = await t.store!.list({ queue: "work", state: "active", limit: 0 });
        return new Set(active.map((j) => j.workerId)).size === 2;
      });
      holder.say();
      await holder.waitFor("locked");
      const watch = watchWorkers(t.project);
      await sleep(6000); // three times stallAfter
      const seen = await watch.stop();
      holder.say();
      await holder.waitFor("released");

      await waitFor("every job completed", async () => {
        const jobs = await Promise.all(ids.map((id) => t.store!.get(id)));
        return jobs.every((j) => j?.state === "completed");
      }, 60_000);
      expect(t.runs[0]!.output()).not.toMatch(/stalled|could not/);
      expect(await stalls(t.store)).toEqual([]);
      expect(seen.trouble).toEqual([]);
      expect(seen.looks).toBeGreaterThan(0);
      expect(seen.maxAge).toBeLessThan(2000);
      const after = (await snapshot(t.project))!.services;
      expect(after.map((r) => [r.name, r.pid, r.restarts])).toEqual(rows.map((r) => [r.name, r.pid, 0]));
    } finally {
      killChildren();
    }
  });

  it("vigil enqueue of 150,000 lines while workers run: no stall, each line enqueued once, a re-run with --key-field adds nothing", async () => {
    t.project = makeProject(YAML, FILES);
    const N = 150_000;
    const input = join(t.project.dir, "lines.jsonl");
    const text: string[] = [];
    for (let i = 0; i < N; i++) text.push(JSON.stringify({ id: `rec-${i}`, pad: "x".repeat(100) }));
    writeFileSync(input, `${text.join("\n")}\n`);
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0]);
    t.store = await openProjectStore(t.project);
    // Keep both workers writing throughout: 8 slots, each finishing a job every 50 ms,
    // for longer than the enqueue takes.
    await t.store.enqueueMany(Array.from({ length: 2000 }, () => ({ queue: "work", payload: { mode: "sleep", ms: 50 } })));

    const watch = watchWorkers(t.project);
    const first = await enqueueFile(t.project, "bulk", input, ["--key-field", "id"]);
    const seen = await watch.stop();
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`enqueued ${N} jobs on bulk`);
    const count = async () => {
      const q = (await t.store!.stats())["bulk"]!;
      return q.waiting + q.active + q.completed + q.scheduled + q.failed + q.dead + q.cancelled;
    };
    expect(await count()).toBe(N);
    expect(t.runs[0]!.output()).not.toMatch(/stalled|could not/);
    expect(await stalls(t.store)).toEqual([]);
    expect(seen.trouble).toEqual([]);
    expect(seen.maxAge).toBeLessThan(2000);

    const again = await enqueueFile(t.project, "bulk", input, ["--key-field", "id"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`enqueued 0 jobs on bulk (${N} already existed)`);
    expect(await count()).toBe(N);
    expect(await stalls(t.store)).toEqual([]);
  });
});
