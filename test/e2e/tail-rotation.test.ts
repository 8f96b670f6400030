/**
 * A `tail` trigger under the real logrotate in its default `create` mode, with an
 * application that keeps writing to the renamed file until it reopens its log a second
 * after the rotation's postrotate signal, and sometimes leaves half a line at the end of
 * the file for a moment. Every line must become exactly one job: none lost, none twice,
 * no half line made a record — also when `vigil triggers` is SIGKILLed while it drains a
 * renamed file. Real logrotate, real processes, a real SQLite store.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import { between, onCleanup, project, sleep, waitFor } from "./triggers-helpers.js";

const ROOT = resolve(import.meta.dirname, "../..");
const WRITER = join(import.meta.dirname, "fixtures", "rotating-writer.ts");
const ROTATIONS = 6;
/**
 * How long a renamed file is drained after it last grew: the writer moves on about a second
 * after the rotation, so 4 s (not the default 10) is still well clear of it.
 */
const DRAIN = "4s";
/**
 * How long the jobs may stay unchanged before the outcome is taken as final: longer than
 * the drain plus a few polls on a loaded machine, so a renamed file still being drained is
 * never mistaken for a finished one.
 */
const SETTLED_MS = 20_000;

/** The real logrotate: Debian's package puts it in /usr/sbin. Never skipped: missing is a failure. */
function logrotateBinary(): string {
  const dirs = ["/usr/sbin", ...(process.env.PATH ?? "").split(delimiter).filter(Boolean)];
  for (const d of dirs) if (existsSync(join(d, "logrotate"))) return join(d, "logrotate");
  throw new Error(
    "logrotate is not installed (looked in /usr/sbin and on PATH): these tests need the real one " +
      "(Debian's logrotate package)" + (process.env.CI === "true" ? "; CI must install it" : ""),
  );
}

interface Outcome {
  written: number;
  jobs: Job[];
  rejected: unknown[];
  rotated: number;
  kills: number;
  /** Kills that struck while the cursor named a renamed file still being drained. */
  killedMidDrain: number;
}

/** Runs the writer under ROTATIONS real rotations; with `crash`, SIGKILLs `vigil triggers` in each drain. */
async function underLogrotate(crash: boolean): Promise<Outcome> {
  const logrotate = logrotateBinary();
  const p = project(`{ tail: app.log, format: jsonl, queue: q, every: 200ms, drain: ${DRAIN} }`);
  const log = join(p.dir, "app.log");
  writeFileSync(log, "");
  const writer = spawn(process.execPath, ["--import", "tsx", WRITER, log], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  onCleanup(() => void (writer.exitCode === null && writer.kill("SIGKILL")));
  let out = "";
  writer.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => writer.once("exit", () => r()));
  await waitFor("the writer to start", async () => out.includes("ready"));

  const conf = join(p.dir, "logrotate.conf");
  const state = join(p.dir, "logrotate.state");
  writeFileSync(
    conf,
    `${log} {\n  create 0644\n  rotate 30\n  nocompress\n  missingok\n  postrotate\n    kill -HUP ${writer.pid}\n  endscript\n}\n`,
    { mode: 0o644 },
  );
  p.start();
  let killedMidDrain = 0;
  for (let i = 0; i < ROTATIONS; i++) {
    await sleep(between(1500, 2500));
    await promisify(execFile)(logrotate, ["-s", state, "-f", conf]);
    if (crash) {
      await sleep(between(150, 900)); // the writer still appends to the renamed file until about 1 s
      const cursor = (await (await p.store()).getCursor("t"))?.cursor as { retired?: unknown[] } | undefined;
      if ((cursor?.retired ?? []).length > 0) killedMidDrain++;
      await p.crash();
    }
  }
  await sleep(1500);
  writer.kill("SIGTERM");
  await exited;
  const written = Number(out.trim().split("\n").pop());
  expect(written).toBeGreaterThan(1000);

  // Wait until every line is a job and the renamed files are drained, or nothing moves any more.
  const store = await p.store();
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const n = (await p.jobs()).length + (await store.listRejected("t")).length;
    const cursor = (await store.getCursor("t"))?.cursor as { retired?: unknown[] } | undefined;
    if (n >= written && (cursor?.retired ?? []).length === 0) break;
    if (n !== last) [last, lastChange] = [n, Date.now()];
    if (Date.now() - lastChange > SETTLED_MS) break;
    await sleep(250);
  }
  await p.kill("SIGTERM");
  const rotated = readdirSync(p.dir).filter((f) => /^app\.log\.\d+$/.test(f)).length;
  return { written, jobs: await p.jobs(), rejected: await store.listRejected("t"), rotated, kills: p.kills(), killedMidDrain };
}

/** Every number 0..written-1 exactly once, and nothing else. */
function expectEachLineOnce(o: Outcome): void {
  const seen = new Map<number, number>();
  for (const j of o.jobs) {
    const n = (j.payload as { n: number }).n;
    seen.set(n, (seen.get(n) ?? 0) + 1);
  }
  const missing = Array.from({ length: o.written }, (_, i) => i).filter((i) => !seen.has(i));
  const twice = [...seen].filter(([, c]) => c > 1).map(([n]) => n);
  expect({ missing: missing.length, twice: twice.length, firstMissing: missing.slice(0, 10), rejected: o.rejected.length })
    .toEqual({ missing: 0, twice: 0, firstMissing: [], rejected: 0 });
  expect(o.jobs.length).toBe(o.written);
  for (const j of o.jobs) expect(j.payload).toEqual({ n: expect.any(Number), pad: expect.any(String) });
}

describe("tail under the real logrotate (create mode)", () => {
  it("turns every line into exactly one job across six rotations, the renamed file drained after it", async () => {
    const o = await underLogrotate(false);
    expect(o.rotated).toBe(ROTATIONS);
    expectEachLineOnce(o);
  }, 180_000);

  it("stays exactly once when vigil triggers is SIGKILLed while it drains a renamed file", async () => {
    const o = await underLogrotate(true);
    expect(o.rotated).toBe(ROTATIONS);
    expect(o.kills).toBe(ROTATIONS);
    expect(o.killedMidDrain).toBeGreaterThan(0);
    expectEachLineOnce(o);
  }, 180_000);
});
