/**
 * The ideas pipeline example (examples/ideas-pipeline) run for real: a copy of it in a temp
 * folder, `vigil start` as a child process, real workers, the real outline service, the
 * Python QA stage. With chaos on, handlers really crash, hang and block their workers.
 *
 * Checked from the store once the run is over: every seed idea reached done (a completed
 * `qa` job that routed nowhere), nothing was lost or made twice (one outline job per idea,
 * a single chain of hand-offs, exactly as many implement/QA rounds as the deterministic
 * stages need, never more than `maxRounds`), and with chaos, incidents were recorded and
 * recovered.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Incident, Job } from "../../src/core/types.js";
import { isAlive, killGroup } from "../../src/os/process.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { freePort } from "./supervisor-helpers.js";
import { draw } from "../../examples/ideas-pipeline/stages/chaos.js";
import { habitOf } from "../../examples/ideas-pipeline/stages/implement.js";

const ROOT = resolve(import.meta.dirname, "../..");
const EXAMPLE = join(ROOT, "examples", "ideas-pipeline");
const VIGIL = join(ROOT, "bin", "vigil");
const SEED_IDS = readFileSync(join(EXAMPLE, "seeds.jsonl"), "utf8")
  .trim()
  .split("\n")
  .map((l) => (JSON.parse(l) as { id: string }).id);

/** QA rounds each seed idea needs: the stages are deterministic (see stages/implement.ts). */
const ROUNDS: Record<string, number> = { none: 1, todo: 2, "no-tests": 3 };

interface Run {
  dir: string;
  child: ChildProcess;
  output: () => string;
}

const runs: Run[] = [];

afterEach(async () => {
  for (const run of runs.splice(0)) {
    await stop(run);
    killLeftovers(run.dir);
    rmSync(run.dir, { recursive: true, force: true });
  }
});


/** Copies the example (without run-time output) and gives it ports of its own. */
async function copyExample(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-example-"));
  cpSync(EXAMPLE, dir, {
    recursive: true,
    filter: (src) => !/[/\\](data|\.vigil|__pycache__)$/.test(src),
  });
  const [outlinePort, httpPort] = [await freePort(), await freePort()];
  const yaml = readFileSync(join(dir, "vigil.yaml"), "utf8");
  const patched = yaml.replaceAll("7431", String(outlinePort)).replace("port: 7420", `port: ${httpPort}`);
  expect(patched).not.toBe(yaml);
  writeFileSync(join(dir, "vigil.yaml"), patched);
  const seed = spawnSync(process.execPath, [join(dir, "scripts", "add-idea.mjs"), "--seed"], { encoding: "utf8" });
  expect(seed.status, seed.stderr).toBe(0);
  return dir;
}

function startVigil(dir: string, chaos: boolean): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, VIGIL_CHAOS: chaos ? "1" : "0" };
  // Own process group, so cleanup can reach it even if a test fails half-way.
  const child = spawn(process.execPath, [VIGIL, "start", "-c", join(dir, "vigil.yaml")], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  child.on("error", (err) => keep(Buffer.from(`spawn error: ${err.message}\n`)));
  const run = { dir, child, output: () => out };
  runs.push(run);
  return run;
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
async function waitFor<T>(what: string, deadlineMs: number, check: () => Promise<T | undefined>, run?: Run): Promise<T> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (run && run.child.exitCode !== null) {
      throw new Error(`vigil start exited (${run.child.exitCode}) while waiting for ${what}:\n${run.output()}`);
    }
    if (Date.now() > until) {
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}\n${run?.output() ?? ""}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function withStore<T>(dir: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(`sqlite:${join(dir, ".vigil", "vigil.db")}`, { readOnly: true });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Seed ideas whose QA passed: a completed qa job whose result is a verdict, not a route. */
function doneIdeas(jobs: Job[]): Set<string> {
  const done = new Set<string>();
  for (const j of jobs) {
    const r = j.result as { verdict?: string; idea?: string } | null;
    if (j.queue === "qa" && j.state === "completed" && r?.verdict === "pass" && r.idea) done.add(r.idea);
  }
  return done;
}

async function waitAllDone(run: Run, deadlineMs: number): Promise<void> {
  const dbFile = join(run.dir, ".vigil", "vigil.db");
  try {
    await waitFor("all seed ideas done", deadlineMs, async () => {
      if (!existsSync(dbFile)) return undefined;
      const jobs = await withStore(run.dir, (s) => s.list({ queue: "qa", limit: 0 }));
      return SEED_IDS.every((id) => doneIdeas(jobs).has(id)) ? true : undefined;
    }, run);
  } catch (err) {
    // What a person would look at first: the status and the jobs that are not done.
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [VIGIL, ...args, "-c", join(run.dir, "vigil.yaml")], { encoding: "utf8" }).stdout;
    const open = (await withStore(run.dir, (s) => s.list({ limit: 0 }))).filter((j) => j.state !== "completed");
    (err as Error).message +=
      `\n${cli("status")}\nnot completed: ${JSON.stringify(open.map((j) => ({ id: j.id, queue: j.queue, state: j.state, attempt: j.attempt, stalls: j.stalls, error: j.error, worker: j.workerId, leaseUntil: j.leaseUntil, runAt: j.runAt })))}` +
      `\nnow ${Date.now()}`;
    throw err;
  }
}

/** SIGTERM, wait for a clean exit; SIGKILL the group if it does not come. */
async function stop(run: Run): Promise<number | null> {
  const { child } = run;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((ok) => child.once("exit", (code) => ok(code)));
  killGroup(child.pid, "SIGTERM");
  // Workers get shutdownTimeout to finish jobs; 30 s is far above what the example needs.
  const code = await Promise.race([exited, new Promise<"late">((ok) => setTimeout(() => ok("late"), 30_000))]);
  if (code === "late") {
    killGroup(child.pid, "SIGKILL");
    return null;
  }
  return code;
}

/** Kills whatever still runs from the test's folder (a service a failed test left behind). */
function killLeftovers(dir: string): string[] {
  const left: string[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cwd = readlinkSync(`/proc/${e}/cwd`);
      const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8");
      if (cwd.startsWith(dir) || cmd.includes(dir)) {
        left.push(`${e}: ${cmd.replaceAll("\0", " ")}`);
        if (isAlive(Number(e))) process.kill(Number(e), "SIGKILL");
      }
    } catch {
      // gone already, or not ours to read
    }
  }
  return left;
}

/** The lineage checks: one outline per idea, one chain of hand-offs, the expected rounds. */
function checkLineage(jobs: Job[]): void {
  expect(jobs.filter((j) => j.state !== "completed").map((j) => `${j.id} ${j.queue} ${j.state} ${j.error}`)).toEqual([]);
  for (const idea of SEED_IDS) {
    const outlines = jobs.filter((j) => j.queue === "outline" && (j.payload as { id?: string }).id === idea);
    expect(outlines.length, `outline jobs for ${idea}`).toBe(1);
    const root = outlines[0]!;
    const family = jobs.filter((j) => j.id === root.id || j.rootId === root.id);
    const rounds = ROUNDS[habitOf(idea)]!;
    expect(family.filter((j) => j.queue === "implement").length, `implement jobs for ${idea}`).toBe(rounds);
    expect(family.filter((j) => j.queue === "qa").length, `qa jobs for ${idea}`).toBe(rounds);
    expect(rounds).toBeLessThanOrEqual(3);
    // One chain: every job but the root has a parent in the family, and no job has two children.
    const inFamily = new Set(family.map((j) => j.id));
    const children = new Map<number, number>();
    for (const j of family) {
      if (j.id === root.id) continue;
      expect(inFamily.has(j.parentId ?? -1), `parent of job ${j.id}`).toBe(true);
      children.set(j.parentId!, (children.get(j.parentId!) ?? 0) + 1);
    }
    expect(Math.max(...children.values())).toBe(1);
    const last = family.filter((j) => !children.has(j.id));
    expect(last.length).toBe(1);
    expect(last[0]!.queue).toBe("qa");
    expect((last[0]!.result as { verdict?: string; rounds?: number }).verdict).toBe("pass");
    expect((last[0]!.result as { rounds?: number }).rounds).toBe(rounds);
  }
  // Nothing but the seed ideas' families.
  const roots = new Set(jobs.filter((j) => j.queue === "outline").map((j) => j.id));
  expect(jobs.every((j) => roots.has(j.id) || roots.has(j.rootId ?? -1))).toBe(true);
  expect(jobs.length).toBe(SEED_IDS.reduce((n, id) => n + 1 + 2 * ROUNDS[habitOf(id)]!, 0));
}

describe("ideas pipeline example", () => {
  it("qa.py draws chaos exactly as stages/chaos.ts does, so one seed reproduces a whole run", () => {
    const cases = [["3", "qa", "idea-1", 1, 1], ["3", "act", "qa", "idea-5", 2], ["seed", "qa", "x", 3, 1]] as const;
    const py = spawnSync("python3", ["-c", `import json, sys; sys.path.insert(0, ${JSON.stringify(EXAMPLE)}); import qa; print(json.dumps([qa.draw(*c) for c in ${JSON.stringify(cases)}]))`], {
      encoding: "utf8",
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    });
    expect(py.status, py.stderr).toBe(0);
    const fromPython = JSON.parse(py.stdout) as number[];
    expect(fromPython).toEqual(cases.map((c) => draw(...c)));
    expect(new Set(fromPython).size).toBe(cases.length);
  });

  it("without chaos, processes the seed ideas to done within 60 s", async () => {
    const dir = await copyExample();
    const run = startVigil(dir, false);
    await waitAllDone(run, 60_000);
    expect(await stop(run)).toBe(0);
    const jobs = await withStore(dir, (s) => s.list({ limit: 0 }));
    checkLineage(jobs);
    expect(readdirSync(join(dir, "data", "implementations")).sort()).toEqual(SEED_IDS.map((id) => `${id}.md`).sort());
    const findings = readFileSync(join(dir, "data", "qa-issues.jsonl"), "utf8").trim().split("\n");
    const expected = SEED_IDS.reduce((n, id) => n + ROUNDS[habitOf(id)]! - 1, 0);
    expect(findings.length).toBe(expected);
    expect(killLeftovers(dir)).toEqual([]);
  }, 120_000);

  it("with chaos (crashes, hangs, blocked loops), still finishes every idea once and records recovered incidents", async () => {
    const dir = await copyExample();
    const run = startVigil(dir, true);
    await waitAllDone(run, 90_000);
    // Recovery is recorded when the replacement is healthy; give it a little longer.
    const incidents = await waitFor("every incident recovered", 20_000, async () => {
      const list = await withStore(dir, (s) => s.listIncidents({ limit: 1000 }));
      const faults = list.filter((i: Incident) => i.cause !== "stop");
      return faults.length > 0 && faults.every((i) => i.recoveredAt !== null) ? faults : undefined;
    }, run);
    expect(await stop(run)).toBe(0);
    const causes = new Set(incidents.map((i) => i.cause));
    expect([...causes].some((c) => c === "crash" || c === "stall")).toBe(true);
    for (const i of incidents) expect(i.recoveredAt!).toBeGreaterThanOrEqual(i.detectedAt);
    const jobs = await withStore(dir, (s) => s.list({ limit: 0 }));
    checkLineage(jobs);
    // Chaos really happened: some jobs needed more than one attempt.
    expect(jobs.some((j) => j.attempt > 1)).toBe(true);
    expect(killLeftovers(dir)).toEqual([]);
  }, 150_000);
});
