/**
 * Exactly once across crashes: records are written while the `vigil triggers` process is
 * SIGKILLed at random moments and started again; in the end every record is exactly one
 * job. Real files, a real SQLite store, real processes really killed.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { killGroup } from "../../src/os/process.js";
import { VIGIL, between, onCleanup, project, sleep, waitFor } from "./triggers-helpers.js";

/** Kills per test, at least: some land while the process starts, most while it polls and commits. */
const MIN_KILLS = 8;

describe("triggers across SIGKILL", () => {
  it("turns 10,000 lines appended in uneven pieces into exactly 10,000 jobs, in order", async () => {
    const p = project("{ tail: in.log, queue: q, every: 100ms }");
    const expected = Array.from({ length: 10_000 }, (_, i) => `line-${i} ${randomBytes(between(1, 40)).toString("hex")}`);
    const text = Buffer.from(expected.join("\n") + "\n");
    const log = join(p.dir, "in.log");
    writeFileSync(log, "");
    p.start();
    let written = false;
    const writer = (async () => {
      for (let at = 0; at < text.length; ) {
        const n = Math.min(text.length - at, between(1, 12_000)); // cuts lines anywhere
        appendFileSync(log, text.subarray(at, at + n));
        at += n;
        await sleep(between(0, 60));
      }
      written = true;
    })();
    await p.chaos(() => written && p.kills() >= MIN_KILLS);
    await writer;
    await waitFor("10,000 jobs", async () => (await p.jobs()).length >= 10_000);
    await p.kill("SIGTERM");

    const jobs = await p.jobs();
    expect(p.kills()).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(jobs.length).toBe(10_000);
    expect(jobs.map((j) => (j.payload as { line: string }).line)).toEqual(expected);
    const offsets = jobs.map((j) => j.source!.offset!);
    expect(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!)).toBe(true);
    expect(new Set(jobs.map((j) => j.key)).size).toBe(10_000);
    expect(await (await p.store()).listRejected("t")).toEqual([]);
  }, 180_000);

  it("turns 2,000 files written into a folder (half by rename-over) into exactly 2,000 jobs", async () => {
    const p = project("{ watch: 'in/*.md', queue: q, every: 100ms, settle: 200ms }");
    const folder = join(p.dir, "in");
    mkdirSync(folder);
    const contents = new Map<string, string>();
    p.start();
    let written = false;
    const writer = (async () => {
      for (let i = 0; i < 2000; ) {
        const burst = between(1, 60);
        for (let k = 0; k < burst && i < 2000; k++, i++) {
          const path = join(folder, `f-${String(i).padStart(4, "0")}.md`);
          const body = `file ${i}\n${randomBytes(between(1, 2000)).toString("base64")}\n`;
          contents.set(path, body);
          if (i % 2 === 0) {
            writeFileSync(path, body);
          } else {
            const tmp = join(folder, `.f-${i}.tmp`); // dot files are not matched
            writeFileSync(tmp, body);
            renameSync(tmp, path);
          }
        }
        await sleep(between(0, 80));
      }
      written = true;
    })();
    await p.chaos(() => written && p.kills() >= MIN_KILLS);
    await writer;
    await waitFor("2,000 jobs", async () => (await p.jobs()).length >= 2000);
    await p.kill("SIGTERM");

    const jobs = await p.jobs();
    expect(p.kills()).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(jobs.length).toBe(2000);
    const byPath = new Map(jobs.map((j) => [(j.payload as { path: string }).path, j.payload as { sha256: string; size: number }]));
    expect(byPath.size).toBe(2000);
    for (const [path, body] of contents) {
      expect(byPath.get(path)).toMatchObject({
        sha256: createHash("sha256").update(body).digest("hex"),
        size: Buffer.byteLength(body),
      });
    }
  }, 180_000);

  it("heartbeats over IPC with each trigger's state, and stops cleanly on SIGTERM", async () => {
    const p = project("{ tail: in.log, queue: q, every: 100ms }");
    writeFileSync(join(p.dir, "in.log"), "one\ntwo\n");
    const messages: { t: string; triggers?: { name: string; seen: number; lastPollAt: number | null }[] }[] = [];
    const child = spawn(process.execPath, [VIGIL, "-c", join(p.dir, "vigil.yaml"), "triggers"], {
      cwd: p.dir,
      detached: true,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    child.on("error", () => {});
    child.on("message", (m) => messages.push(m as (typeof messages)[number]));
    onCleanup(() => void killGroup(child.pid, "SIGKILL"));
    await waitFor("a heartbeat and a trigger report with both lines seen", async () =>
      messages.some((m) => m.t === "hb") &&
      messages.some((m) => m.t === "triggers" && m.triggers?.[0]?.name === "t" && m.triggers[0].seen === 2),
    );
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect((await p.jobs()).map((j) => (j.payload as { line: string }).line)).toEqual(["one", "two"]);
  });
});
