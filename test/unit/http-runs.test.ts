/**
 * The run routes and a job's `why` on a real port against a real SQLite store: keyset
 * pages, previews with a link to the whole job, rerun only with the token, and a job's own
 * log lines read from a log folder written as the supervisor writes it.
 */
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_JOB_LOG_LINES } from "../../src/http/job-log.js";
import { startHttpServer, type HttpServerHandle } from "../../src/http/server.js";
import type { StatusSnapshot } from "../../src/core/status.js";
import { tempStore, type TempStore } from "./ops-fixtures.js";

const TOKEN = "a-test-token-of-sufficient-length-456";

describe("HTTP run routes", () => {
  let t: TempStore;
  let h: HttpServerHandle;
  beforeEach(async () => {
    t = await tempStore();
    const snapshot = async (): Promise<StatusSnapshot> => ({ at: Date.now(), supervisor: null, services: [], queues: {}, triggers: [], incidents: [], source: "supervisor" });
    h = await startHttpServer({ port: 0, token: TOKEN, store: t.store, snapshot, queueServices: { a: ["workers"], b: ["workers"] } });
  });
  afterEach(async () => {
    await h.close();
    await t.cleanup();
  });

  const get = async (path: string) => {
    const res = await fetch(h.url + path);
    return { status: res.status, body: (await res.json()) as any };
  };
  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(h.url + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  /** Root on `a` completed into a waiting job on `b`; returns [rootId, bId]. */
  async function twoStageRun(key: string, input: unknown): Promise<[number, number]> {
    const { job } = await t.store.enqueue("a", input, { key });
    const [lease] = await t.store.claim({ workerId: "w", queues: { a: 1 }, leaseMs: 60_000 });
    const [next] = await t.store.complete(lease!, "x".repeat(3000), [{ queue: "b", payload: { from: key } }]);
    return [job.id, next!.id];
  }

  it("lists runs a page at a time, filters, searches and shows one run with previews", async () => {
    const [r1] = await twoStageRun("k-1", { text: "alpha" });
    const [r2, b2] = await twoStageRun("k-2", { text: "beta" });
    const page = await get("/api/runs?limit=1");
    expect(page.status).toBe(200);
    expect(page.body.runs.map((r: any) => r.id)).toEqual([r2]);
    expect(page.body.runs[0]).toMatchObject({ key: "k-2", state: "running", jobCount: 2, stages: [{ queue: "a", state: "completed" }, { queue: "b", state: "waiting" }] });
    expect(page.body.nextBefore).toBe(r2);
    const next = await get(`/api/runs?limit=1&before=${page.body.nextBefore}`);
    expect(next.body.runs.map((r: any) => r.id)).toEqual([r1]);
    expect(next.body.nextBefore).toBeNull();
    expect((await get("/api/runs?search=ALPHA")).body).toMatchObject({ searchedBy: "text", runs: [{ id: r1 }] });
    expect((await get("/api/runs?search=k-2")).body).toMatchObject({ searchedBy: "key", runs: [{ id: r2 }] });
    expect((await get("/api/runs?state=completed")).body.runs).toEqual([]);
    expect((await get("/api/runs?state=nope")).status).toBe(400);
    expect((await get("/api/runs?limit=100000")).status).toBe(400);

    const run = await get(`/api/runs/${b2}`);
    expect(run.status).toBe(200);
    expect(run.body.id).toBe(r2);
    const [ja, jb] = run.body.jobs;
    expect(ja).toMatchObject({ queue: "a", resultTruncated: true, href: `/api/jobs/${r2}` });
    expect(ja.result.length).toBe(2048);
    expect(jb).toMatchObject({ queue: "b", state: "waiting", payload: { from: "k-2" }, payloadTruncated: false });
    expect((await get("/api/runs/99999")).status).toBe(404);
  });

  it("GET /api/jobs/:id carries why, null once finished", async () => {
    const [root, b] = await twoStageRun("k-3", 1);
    expect((await get(`/api/jobs/${root}`)).body.why).toBeNull();
    expect((await get(`/api/jobs/${b}`)).body.why).toBe("waiting: queue b has no running worker");
  });

  it("reruns from a stage only with the token", async () => {
    const [root, b] = await twoStageRun("k-4", 1);
    expect((await post(`/api/runs/${root}/rerun`, { from: "b" })).status).toBe(401);
    expect((await post(`/api/runs/${root}/rerun`, { from: "b" }, "wrong-token-wrong-token-wrong-token")).status).toBe(401);
    expect((await t.store.list({ queue: "b" })).length).toBe(1);
    const ok = await post(`/api/runs/${root}/rerun`, { from: "b" }, TOKEN);
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ rerunOf: root, job: { queue: "b", payload: { from: "k-4" }, source: { trigger: "rerun", rerunOf: root, fromJob: b } } });
    const edited = await post(`/api/runs/${root}/rerun`, { from: "b", payload: { edited: true } }, TOKEN);
    expect(edited.body.job.payload).toEqual({ edited: true });
    expect((await post(`/api/runs/${root}/rerun`, { from: "zz" }, TOKEN)).status).toBe(400);
    expect((await post(`/api/runs/${root}/rerun`, "not json", TOKEN)).status).toBe(400);
    expect((await post(`/api/runs/${root}/rerun`, {}, TOKEN)).status).toBe(400);
    expect((await get(`/api/runs/${ok.body.id}`)).body.rerunOf).toBe(root);
  });

  it("reads a job's own log lines from the workers' logs: its id only, rotated file too, the newest 200", async () => {
    const { job } = await t.store.enqueue("a", {});
    const bare = await get(`/api/jobs/${job.id}/log`);
    expect(bare).toEqual({ status: 200, body: { id: job.id, available: false, lines: [], files: 0, truncated: false } });
    expect((await get("/api/jobs/999999/log")).status).toBe(404);

    const logs = mkdtempSync(join(tmpdir(), "vigil-job-log-"));
    const h2 = await startHttpServer({ port: 0, token: TOKEN, store: t.store, logsDir: logs });
    try {
      const line = (id: number, time: number, msg: string, extra: Record<string, unknown> = {}) =>
        JSON.stringify({ level: 30, time, pid: 1, hostname: "vm", workerId: "vm:workers:1:1.1", jobId: id, queue: "a", attempt: 1, msg, ...extra }) + "\n";
      const id = job.id;
      appendFileSync(join(logs, "workers:1.log.1"), line(id, 1000, "before the rotation"));
      appendFileSync(join(logs, "workers:1.log"), line(id, 2000, "after", { words: 2 }) + "not json " + `"jobId":${id},\n` + line(id * 10 + 1, 2500, "another job"));
      appendFileSync(join(logs, "workers:2.log"), line(id, 1500, "on the other worker", { stderr: "tail" }) + line(id + 1, 1600, "the next job"));
      appendFileSync(join(logs, "workers:1.log.2"), line(id, 500, "too old: not searched"));
      const got = await (await fetch(`${h2.url}/api/jobs/${id}/log`)).json();
      expect(got.available).toBe(true);
      expect(got.files).toBe(3);
      expect(got.lines.map((l: { msg: string }) => l.msg)).toEqual(["before the rotation", "on the other worker", "after"]);
      expect(got.lines[1]).toEqual({ at: 1500, level: "info", attempt: 1, worker: "vm:workers:1:1.1", msg: "on the other worker", fields: { stderr: "tail" }, file: "workers:2.log" });
      expect(got.lines[2].fields).toEqual({ words: 2 });

      for (let i = 0; i < MAX_JOB_LOG_LINES + 5; i++) appendFileSync(join(logs, "workers:3.log"), line(id, 10_000 + i, `line ${i}`));
      const many = await (await fetch(`${h2.url}/api/jobs/${id}/log`)).json();
      expect(many.truncated).toBe(true);
      expect(many.lines).toHaveLength(MAX_JOB_LOG_LINES);
      expect(many.lines.at(-1).msg).toBe(`line ${MAX_JOB_LOG_LINES + 4}`);
    } finally {
      await h2.close();
      rmSync(logs, { recursive: true, force: true });
    }
  });
});
