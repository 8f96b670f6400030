/**
 * A schedule trigger (`every 1s`) under a real `vigil start` on a real SQLite store:
 * the triggers process SIGKILLed twice and restarted by the supervisor still makes one
 * job per tick, none twice and none missing; so does the whole project SIGKILLed
 * (supervisor and every process it ran) and started again at once; after the whole
 * project is SIGKILLed and stays down longer than the tolerance, the ticks of the downtime are skipped — exactly
 * as many as the trigger reports — and ticking goes on without a gap.
 */
import { describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import type { TriggerStatus } from "../../src/core/status.js";
import { killGroup } from "../../src/os/process.js";
import { MIN_TOLERANCE_MS } from "../../src/triggers/schedule.js";
import {
  WORK_HANDLER,
  allRunning,
  makeProject,
  openProjectStore,
  row,
  running,
  snapshot,
  startVigil,
  supervisorTest,
  vigil,
  waitFor,
} from "./supervisor-helpers.js";

const t = supervisorTest();

const YAML = (misfire: string) => `queues:
  tick: { handler: ./work.mjs }
triggers:
  clock: { schedule: every 1s, queue: tick, payload: { from: clock }${misfire} }
services:
  workers: { queues: [tick] }
supervision: { stallAfter: 3s, killTimeout: 2s }
http: { enabled: false }
`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const tickOf = (j: Job) => Date.parse((j.payload as { scheduledFor: string }).scheduledFor);

async function ticks(): Promise<number[]> {
  const jobs = await t.store!.list({ queue: "tick", limit: 0 });
  for (const j of jobs) {
    const iso = new Date(tickOf(j)).toISOString();
    expect(j.key).toBe(`schedule:clock:${iso}`);
    expect(j.payload).toEqual({ from: "clock", scheduledFor: iso });
  }
  return jobs.map(tickOf).sort((a, b) => a - b);
}

async function waitTicks(n: number): Promise<void> {
  await waitFor(`${n} ticks enqueued`, async () => (await ticks()).length >= n, 90_000, 200);
}

/** The runs of consecutive seconds in sorted tick times, as [first, last] pairs. */
function runsOf(times: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const x of times) {
    const last = out[out.length - 1];
    if (last && x === last[1] + 1000) last[1] = x;
    else out.push([x, x]);
  }
  return out;
}

async function clockStatus(): Promise<TriggerStatus | undefined> {
  return (await snapshot(t.project!))?.triggers.find((s) => s.name === "clock");
}

/**
 * Starts the project, waits for `n` ticks, then a power cut: the supervisor and every
 * process it ran SIGKILLed at once. Returns the ticks enqueued by then.
 */
async function tickThenPowerCut(n: number): Promise<number> {
  t.project = makeProject(YAML(""), { "work.mjs": WORK_HANDLER });
  t.runs.push(startVigil(t.project));
  await allRunning(t.project, t.runs[0]);
  t.store = await openProjectStore(t.project);
  await waitTicks(n);
  const pids = (await snapshot(t.project))!.services.map((s) => s.pid!).filter(Boolean);
  killGroup(t.runs[0]!.child.pid!, "SIGKILL");
  for (const pid of pids) killGroup(pid, "SIGKILL");
  await waitFor("every process gone", () => pids.every((p) => !running(p)) && !running(t.runs[0]!.child.pid!));
  return (await ticks()).length;
}

describe("schedule trigger under the supervisor", () => {
  it("makes one job per tick while its process is SIGKILLed and restarted", async () => {
    t.project = makeProject(YAML(""), { "work.mjs": WORK_HANDLER });
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0]);
    t.store = await openProjectStore(t.project);
    await waitTicks(3);
    for (let kill = 0; kill < 2; kill++) {
      const before = (await ticks()).length;
      const victim = (await row(t.project, "triggers"))!.pid!;
      killGroup(victim, "SIGKILL");
      await waitFor("the triggers process killed", () => !running(victim));
      await waitFor("a new triggers process running", async () => {
        const r = await row(t.project!, "triggers");
        return r?.state === "running" && r.pid !== victim;
      }, 60_000);
      await waitTicks(before + 3);
    }
    const status = await waitFor("status with the last and next tick", async () => {
      const s = await clockStatus();
      return s?.lastTickAt && s.nextTickAt ? s : null;
    });
    expect(status).toMatchObject({ kind: "schedule", queue: "tick", missedTicks: 0 });
    expect(status.nextTickAt! - status.lastTickAt!).toBeGreaterThanOrEqual(1000);
    const table = vigil(t.project, ["status"]).stdout;
    expect(table).toContain("LAST TICK");
    expect(table).toMatch(/clock\s+schedule\s+tick/);
    expect(vigil(t.project, ["stop"]).status).toBe(0);

    const times = await ticks();
    expect(times.length).toBeGreaterThanOrEqual(9);
    expect(new Set(times).size).toBe(times.length); // none twice
    expect(runsOf(times)).toHaveLength(1); // none missing: one unbroken second-by-second run
    expect(times.every((x) => x % 1000 === 0)).toBe(true);
    const crashes = (await t.store.listIncidents({ service: "triggers" })).filter((i) => i.cause === "crash");
    expect(crashes.length).toBeGreaterThanOrEqual(2);
  }, 240_000);

  it("the supervisor SIGKILLed with every process it ran and started again at once: one job per tick, none twice, none missing", async () => {
    const down = await tickThenPowerCut(4);
    // Back within the tolerance (10 s for every 1s): the ticks of the gap are late, not missed.
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[1]);
    await waitTicks(down + 7);
    const status = await waitFor("status of the restarted trigger", async () => (await clockStatus())?.lastTickAt ? clockStatus() : null);
    expect(vigil(t.project, ["stop"]).status).toBe(0);
    const times = await ticks();
    expect(times.length).toBeGreaterThanOrEqual(10);
    expect(new Set(times).size).toBe(times.length);
    expect(runsOf(times)).toHaveLength(1);
    expect(status!.missedTicks).toBe(0);
  }, 240_000);

  it("after the whole project was down longer than the tolerance, skips exactly the ticks it missed", async () => {
    const down = await tickThenPowerCut(3);
    // Stay down for longer than the tolerance (plus a margin for a loaded machine), so the
    // ticks of the first seconds of the downtime are missed, not late.
    await sleep(MIN_TOLERANCE_MS + 5000);
    expect((await ticks()).length).toBe(down);

    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[1]);
    const status = await waitFor("the restarted trigger reporting the ticks it skipped", async () => {
      const s = await clockStatus();
      return s && (s.missedTicks ?? 0) > 0 ? s : null;
    }, 60_000);
    await waitTicks(down + 5);
    expect(vigil(t.project, ["stop"]).status).toBe(0);

    const times = await ticks();
    expect(new Set(times).size).toBe(times.length);
    const runs = runsOf(times);
    // One gap: before the cut, and from the restart on; the gap is the ticks skipped.
    expect(runs).toHaveLength(2);
    const gap = (runs[1]![0] - runs[0]![1]) / 1000 - 1;
    expect(gap).toBe(status.missedTicks);
  }, 240_000);
});
