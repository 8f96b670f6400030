/**
 * Two hosts against one PostgreSQL schema (two `vigil start` in separate folders with
 * different VIGIL_HOST). Host A starts first, so it leads the shared tail trigger. Every
 * process of A is SIGKILLed mid-run: its leases expire and B's workers reap them, B's
 * triggers process takes the trigger's lock once A's lapses and carries on from the
 * stored cursor. Each record becomes exactly one `first` and one `second` job, all
 * completed; a handler's side effect shows twice only for a job whose attempt > 1 (A died
 * after the side effect but before its completion was committed, or mid-handler). A
 * trigger with `host:` is polled by that host only, while every host's workers run its jobs.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { Job } from "../../src/core/types.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";
import { appendRecords, effects, killHost, makeHost, removeShared, sharedDir, startHost } from "./multi-host-helpers.js";
import { allRunning, cleanUp, running, snapshot, vigil, waitFor, type Project, type Running } from "./supervisor-helpers.js";

const ready = await requirePg("the multi-host test");
const schemas: string[] = [];
/** Records before and after host A is killed. */
const BEFORE = 60;
const AFTER = 10;

describe.runIf(ready)("two hosts sharing one PostgreSQL store", () => {
  const schema = freshSchemaName("vigil_hosts");
  const shared = sharedDir();
  schemas.push(schema);
  const hosts: { p: Project; runs: Running[] }[] = [];
  let store: Store | null = null;

  afterAll(async () => {
    for (const h of hosts) await cleanUp(h.p, h.runs);
    await store?.close();
    for (const name of schemas) await dropSchema(name);
    removeShared(shared);
  });

  it("SIGKILL of every process of host A: its jobs and its trigger move to host B, nothing lost or run twice", async () => {
    const a = { p: makeHost(schema, shared), runs: [] as Running[] };
    const b = { p: makeHost(schema, shared), runs: [] as Running[] };
    hosts.push(a, b);
    a.runs.push(startHost(a.p, "host-a", shared));
    await allRunning(a.p, a.runs[0], 45_000);
    const leaderA = await waitFor("host A to lead the trigger", async () => (await snapshot(a.p))?.triggers.find((t) => t.name === "feed" && t.leader));
    expect(leaderA.host).toBeNull(); // no `host:`: either host may run it
    b.runs.push(startHost(b.p, "host-b", shared));
    const rowsB = await allRunning(b.p, b.runs[0], 45_000);
    expect(rowsB.map((r) => `${r.host} ${r.name}`).sort()).toEqual(["host-b triggers", "host-b workers:1", "host-b workers:2"]);
    expect(rowsB.find((r) => r.name === "workers:1")!.workerId).toMatch(/^host-b:workers:1:/);
    // B polls nothing while A holds the lock.
    expect((await snapshot(b.p))!.triggers.find((t) => t.name === "feed")!.leader).toBe(false);
    expect(vigil(b.p, ["status"]).stdout).toMatch(/HOST\s+NAME[\s\S]*host-b\s+workers:1/);

    store = await openPostgresStore(PG_URL, { schema });
    const s = store;
    appendRecords(shared, 0, BEFORE, 400);
    // Mid-run: some jobs done, some active on A's workers.
    await waitFor("host A to hold jobs mid-run", async () => {
      const active = await s.list({ state: "active", limit: 0 });
      const done = await s.list({ queue: "first", state: "completed", limit: 0 });
      return done.length >= 8 && active.some((j) => j.workerId?.startsWith("host-a:"));
    }, 60_000, 50);

    const killedAt = Date.now();
    const pids = await killHost(a.p, a.runs[0]!);
    const heldByA = (await s.list({ state: "active", limit: 0 })).filter((j) => j.workerId?.startsWith("host-a:")).map((j) => j.id);
    await waitFor("every process of host A to end", () => pids.every((pid) => !running(pid)), 10_000);
    expect(pids.length).toBeGreaterThanOrEqual(4); // supervisor, triggers, two workers
    expect(heldByA.length).toBeGreaterThan(0);
    appendRecords(shared, BEFORE, BEFORE + AFTER, 100);

    const tookOver = await waitFor("host B to lead the trigger", async () => ((await snapshot(b.p))?.triggers.find((t) => t.name === "feed" && t.leader) ? Date.now() : null), 30_000, 50);
    const total = BEFORE + AFTER;
    const all = await waitFor("every record through both stages", async () => {
      const jobs = await s.list({ limit: 0 });
      const done = jobs.filter((j) => j.state === "completed");
      return done.length === 2 * total && jobs.length === 2 * total ? jobs : null;
    }, 90_000, 100);
    const lastOfA = Math.max(...all.filter((j) => heldByA.includes(j.id)).map((j) => j.finishedAt!));

    // Each record: exactly one job per stage, all completed.
    for (const queue of ["first", "second"]) {
      const ns = all.filter((j) => j.queue === queue).map((j) => (j.payload as { n: number }).n).sort((x, y) => x - y);
      expect(ns).toEqual(Array.from({ length: total }, (_, i) => i));
    }
    // A's jobs finished on B; the records appended after the kill were enqueued and run by B.
    const byId = new Map<number, Job>(all.map((j) => [j.id, j]));
    for (const id of heldByA) expect((byId.get(id)!.result as { by: string }).by).toBe("host-b");
    const late = all.filter((j) => (j.payload as { n: number }).n >= BEFORE);
    expect(late.every((j) => (j.result as { by: string }).by === "host-b")).toBe(true);

    // Side effects: one per job, except jobs that ran again after A died (attempt > 1).
    const fx = effects(shared);
    const perJob = new Map<number, number>();
    for (const e of fx) perJob.set(e.id, (perJob.get(e.id) ?? 0) + 1);
    expect([...byId.keys()].filter((id) => !perJob.has(id))).toEqual([]);
    const twice = [...perJob].filter(([, c]) => c > 1).map(([id]) => id);
    for (const id of twice) {
      expect(byId.get(id)!.attempt).toBeGreaterThan(1);
      expect(perJob.get(id)!).toBeLessThanOrEqual(byId.get(id)!.attempt);
      expect(fx.filter((e) => e.id === id && e.attempt === 1).every((e) => e.host === "host-a")).toBe(true);
    }
    const retried = all.filter((j) => j.attempt > 1);
    expect(retried.every((j) => heldByA.includes(j.id))).toBe(true);

    // B's own records name its host; A left no incident (it vanished), B recorded none.
    const incidents = JSON.parse(vigil(b.p, ["incidents", "--json"]).stdout) as { host: string }[];
    expect(incidents.filter((i) => i.host === "host-b")).toEqual([]);
    const report = JSON.parse(vigil(b.p, ["report", "--json"]).stdout) as { services: { host: string | null; service: string }[] };
    expect(report.services.filter((r) => r.host === "host-b").map((r) => r.service).sort()).toEqual(["triggers", "workers:1", "workers:2"]);

    // Host A comes back: it ends nothing of B's, records its own supervisor crash under its
    // name, and its triggers process waits while B leads the trigger.
    a.runs.push(startHost(a.p, "host-a", shared));
    await allRunning(a.p, a.runs[1], 45_000);
    const crash = await waitFor("host A's supervisor crash incident", () => {
      const list = JSON.parse(vigil(a.p, ["incidents", "--json"]).stdout) as { host: string; service: string; cause: string }[];
      return list.find((i) => i.service === "supervisor" && i.cause === "crash");
    });
    expect(crash.host).toBe("host-a");
    expect(vigil(a.p, ["incidents"]).stdout).toMatch(/HOST[\s\S]*host-a\s+supervisor\s+crash/);
    expect((await snapshot(a.p))!.triggers.find((t) => t.name === "feed")!.leader).toBe(false);
    expect((await snapshot(b.p))!.services.map((r) => [r.pid, r.restarts])).toEqual(rowsB.map((r) => [r.pid, 0]));

    console.log(
      `multi-host: ${heldByA.length} jobs held by host A at the kill; trigger on B ${tookOver - killedAt} ms after the SIGKILL; ` +
        `last of A's jobs completed on B ${lastOfA - killedAt} ms after it (lease 4 s); ${retried.length} jobs ran again (attempt > 1), ` +
        `${twice.length} side effects seen twice`,
    );
  });

  it("a trigger with host: is polled only by its own host; both hosts' workers run its jobs", async () => {
    const pinned = freshSchemaName("vigil_pinned");
    schemas.push(pinned);
    const files = sharedDir();
    const a = { p: makeHost(pinned, files, "host-b"), runs: [] as Running[] };
    const b = { p: makeHost(pinned, files, "host-b"), runs: [] as Running[] };
    hosts.push(a, b);
    const ps = await openPostgresStore(PG_URL, { schema: pinned });
    try {
      // Host A first: its triggers process runs but skips the trigger owned by host-b.
      a.runs.push(startHost(a.p, "host-a", files));
      await allRunning(a.p, a.runs[0], 45_000);
      appendRecords(files, 0, 20, 200);
      const rowsA = (await snapshot(a.p))!;
      expect(rowsA.services.map((r) => r.name).sort()).toEqual(["triggers", "workers:1", "workers:2"]);
      expect(rowsA.triggers).toEqual([]);
      b.runs.push(startHost(b.p, "host-b", files));
      await allRunning(b.p, b.runs[0], 45_000);
      const all = await waitFor("every line through both stages", async () => {
        const jobs = await ps.list({ limit: 0 });
        return jobs.length === 40 && jobs.every((j) => j.state === "completed") ? jobs : null;
      }, 90_000, 200);
      // The leader flag is the last poll's lock result; on a loaded machine a late poll can
      // let the lock lapse for a moment, so wait for B to hold it rather than read it once.
      const feed = await waitFor("host B to lead the pinned trigger", async () =>
        (await snapshot(b.p))?.triggers.find((t) => t.name === "feed" && t.leader),
      );
      expect(feed).toMatchObject({ host: "host-b", leader: true });
      expect((await snapshot(a.p))!.triggers).toEqual([]);
      const ns = all.filter((j) => j.queue === "first").map((j) => (j.payload as { n: number }).n).sort((x, y) => x - y);
      expect(ns).toEqual(Array.from({ length: 20 }, (_, i) => i));
      const by: Record<string, number> = {};
      for (const j of all) by[(j.result as { by: string }).by] = (by[(j.result as { by: string }).by] ?? 0) + 1;
      expect(Object.keys(by).every((h) => h === "host-a" || h === "host-b")).toBe(true);
      console.log(`pinned trigger: 20 lines polled on host-b only; jobs run by ${JSON.stringify(by)}`);
    } finally {
      await ps.close();
      removeShared(files);
    }
  });
});
