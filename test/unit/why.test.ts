/** A job's `why`: each verdict from a real SQLite store and a status snapshot. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import type { ServiceStatus, StatusSnapshot } from "../../src/core/status.js";
import { queueServicesOf, whyNotFinished } from "../../src/health/why.js";
import type { Store } from "../../src/store/store.js";
import { tempStore, type TempStore } from "./ops-fixtures.js";

const QUEUES = queueServicesOf({ workers: { queues: ["outline"] }, other: { queues: ["draft"] }, web: { command: ["x"] } });

function worker(name: string, over: Partial<ServiceStatus> = {}): ServiceStatus {
  return {
    name, service: name.split(":")[0]!, kind: "worker", host: "h", state: "running", pid: 812, restarts: 0,
    heartbeatAgeMs: 800, startedAt: 0, rssBytes: null, workerId: `h:${name}:1.1`, activeJobs: 1, ...over,
  };
}

function snap(clock: ManualClock, services: ServiceStatus[]): StatusSnapshot {
  return { at: clock.now(), supervisor: { pid: 1, host: "h", startedAt: 0, version: "t" }, services, queues: {}, triggers: [], incidents: [], source: "supervisor" };
}

describe("why a job is not finished", () => {
  let tmp: TempStore;
  let store: Store;
  const clock = new ManualClock();
  beforeEach(async () => {
    tmp = await tempStore(clock);
    store = tmp.store;
  });
  afterEach(() => tmp.cleanup());
  const why = async (id: number, snapshot: StatusSnapshot | null, queueServices = QUEUES) =>
    whyNotFinished((await store.get(id))!, { store, snapshot, queueServices });

  it("is null for a finished job", async () => {
    const { job } = await store.enqueue("outline", 1);
    await store.cancel(job.id);
    expect(await why(job.id, snap(clock, []))).toBeNull();
  });

  it("waiting: no running worker for the queue, naming the workers' states", async () => {
    const { job } = await store.enqueue("outline", 1);
    expect(await why(job.id, snap(clock, [worker("workers:1", { state: "restarting", pid: null }), worker("other:1")]))).toBe(
      "waiting: queue outline has no running worker (workers:1 restarting)",
    );
  });

  it("waiting: no worker service in the config runs the queue", async () => {
    const { job } = await store.enqueue("nobody", 1);
    expect(await why(job.id, snap(clock, [worker("workers:1")]))).toBe("waiting: no worker service in the config runs queue nobody");
  });

  it("waiting: how many jobs are ahead in claim order", async () => {
    await store.enqueueMany(Array.from({ length: 12 }, (_, i) => ({ queue: "outline", payload: i })));
    const { job } = await store.enqueue("outline", "me");
    await store.enqueue("outline", "urgent", { priority: 9 });
    expect(await why(job.id, snap(clock, [worker("workers:1"), worker("workers:2")]))).toBe(
      "waiting: 13 jobs ahead in queue outline (run by workers:1, workers:2)",
    );
  });

  it("waiting: next in line while the workers are busy", async () => {
    const { job } = await store.enqueue("outline", 1);
    expect(await why(job.id, snap(clock, [worker("workers:1", { activeJobs: 4 })]))).toBe("waiting: next in queue outline; workers:1 has 4 active jobs");
  });

  it("waiting without a supervisor's status says so", async () => {
    const { job } = await store.enqueue("outline", 1);
    expect(await why(job.id, null)).toMatch(/^waiting: no supervisor status/);
  });

  it("active: the worker process, how long the handler runs, the heartbeat's age", async () => {
    const { job } = await store.enqueue("outline", 1);
    await store.claim({ workerId: "h:workers:2:1.1", queues: { outline: 1 }, leaseMs: 600_000 });
    clock.advance(252_000);
    const s = snap(clock, [worker("workers:2", { workerId: "h:workers:2:1.1", pid: 812 })]);
    expect(await why(job.id, s)).toBe("active on workers:2 pid 812, handler running 4m 12s, last heartbeat 800ms ago");
    expect(await why(job.id, snap(clock, [worker("workers:2", { workerId: "h:workers:2:1.1", state: "stalled", heartbeatAgeMs: 9000 })]))).toBe(
      "active on workers:2 pid 812, handler running 4m 12s, last heartbeat 9.0s ago (workers:2 is stalled; its jobs are freed when it is killed)",
    );
    expect(await why(job.id, snap(clock, []))).toMatch(/^active on h:workers:2:1\.1, a process this supervisor does not run/);
  });

  it("active on a running worker that has missed five heartbeats: frozen or blocked, and when it is replaced", async () => {
    const { job } = await store.enqueue("outline", 1);
    await store.claim({ workerId: "h:workers:2:1.1", queues: { outline: 1 }, leaseMs: 600_000 });
    clock.advance(40_000);
    const silent = (ms: number) => snap(clock, [worker("workers:2", { workerId: "h:workers:2:1.1", heartbeatAgeMs: ms })]);
    expect(await whyNotFinished((await store.get(job.id))!, { store, snapshot: silent(6200), queueServices: QUEUES, stallAfter: 30_000 })).toBe(
      "active on workers:2 pid 812, handler running 40s, last heartbeat 6.2s ago (no heartbeat for 6.2s, where one comes every 1.0s: the process is frozen or its event loop is blocked; the supervisor replaces it once it has been silent 30s and frees its jobs)",
    );
    // A beat or two late on a loaded machine is not called frozen.
    expect(await why(job.id, silent(2500))).toBe("active on workers:2 pid 812, handler running 40s, last heartbeat 2.5s ago");
  });

  it("active with its lease run out: will be released", async () => {
    const { job } = await store.enqueue("outline", 1);
    await store.claim({ workerId: "w", queues: { outline: 1 }, leaseMs: 10_000 });
    clock.advance(13_000);
    expect(await why(job.id, snap(clock, []))).toBe("active, lease expired 3.0s ago, will be released (attempt 1 of 5, stalls 0)");
  });

  it("scheduled: a retry after an error, and a delayed job", async () => {
    const { job } = await store.enqueue("outline", 1);
    const [lease] = await store.claim({ workerId: "w", queues: { outline: 1 }, leaseMs: 10_000 });
    await store.fail(lease!, { message: "connection\nrefused" }, { retryAt: clock.now() + 12_000 });
    const at = new Date(clock.now() + 12_000).toISOString().slice(11, 19);
    expect(await why(job.id, snap(clock, []))).toBe(`scheduled: retry 2 of 5 at ${at} (in 12s) after: connection refused`);
    const { job: later } = await store.enqueue("outline", 2, { delayMs: 240_000 });
    const at2 = new Date(clock.now() + 240_000).toISOString().slice(11, 19);
    expect(await why(later.id, snap(clock, []))).toBe(`scheduled: runs at ${at2} (in 4m 0s)`);
  });
});
