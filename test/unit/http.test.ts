/**
 * The HTTP server on a real port against a real SQLite store: /metrics parses as
 * Prometheus text and moves; mutating endpoints refuse a missing or wrong token; it binds
 * 127.0.0.1 by default.
 */
import { request } from "node:http";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeSnapshot } from "../../src/health/snapshot.js";
import { JOB_PREVIEW_CHARS, MAX_JOBS_PAGE } from "../../src/http/api.js";
import { createMetrics } from "../../src/http/metrics.js";
import { startHttpServer, type HttpServerHandle } from "../../src/http/server.js";
import { checkBearer, resolveToken } from "../../src/http/token.js";
import { completeJobs, killJobs, tempStore, type TempStore } from "./ops-fixtures.js";

const TOKEN = "a-test-token-of-sufficient-length-123";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the Prometheus text format: throws on any line it does not understand. */
function parseProm(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  // Values as Prometheus reads them (Go's ParseFloat: NaN and Inf in any letter case).
  const sampleRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|[nN][aA][nN]|[+-]?[iI]nf))(\s+\d+)?$/;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$/.exec(line))) continue;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = sampleRe.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;
      let consumed = 0;
      for (const lm of m[3].matchAll(labelRe)) {
        labels[lm[1]!] = lm[2]!;
        consumed += lm[0].length;
      }
      if (consumed !== m[3].length) throw new Error(`bad labels: ${JSON.stringify(line)}`);
    }
    samples.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

function call(
  h: HttpServerHandle,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; text: string; json: () => any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: h.port, method, path, headers }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode!, text, json: () => JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("HTTP server", () => {
  let t: TempStore;
  let h: HttpServerHandle;
  const restarts: { name: string; manual: boolean }[] = [];
  beforeEach(async () => {
    t = await tempStore();
    restarts.length = 0;
    h = await startHttpServer({
      port: 0,
      token: TOKEN,
      store: t.store,
      restartService: async (name, opts) => {
        restarts.push({ name, manual: opts.manual });
      },
      health: async () => ({ status: "unhealthy", at: Date.now(), checks: [{ name: "store", status: "unhealthy", message: "x." }] }),
    });
  });
  afterEach(async () => {
    await h.close();
    await t.cleanup();
  });

  it("binds 127.0.0.1 by default", () => {
    expect(h.host).toBe("127.0.0.1");
    expect(h.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("serves /metrics as Prometheus text whose counters move", async () => {
    await t.store.enqueue("q", { a: 1 });
    await t.store.enqueue("q", { a: 2 });
    let res = await call(h, "GET", "/metrics");
    expect(res.status).toBe(200);
    let { samples, types } = parseProm(res.text);
    expect(value(samples, "vigil_jobs", { queue: "q", state: "waiting" })).toBe(2);
    expect(value(samples, "vigil_jobs_completed_total", { queue: "q" })).toBe(0);
    expect(types.get("vigil_jobs_completed_total")).toBe("counter");
    expect(types.get("nodejs_eventloop_lag_seconds")).toBe("gauge");
    expect(samples.some((s) => s.name === "process_cpu_user_seconds_total")).toBe(true);

    await completeJobs(t.store, "q", 3);
    await killJobs(t.store, "q", 1);
    res = await call(h, "GET", "/metrics");
    ({ samples } = parseProm(res.text));
    expect(value(samples, "vigil_jobs_completed_total", { queue: "q" })).toBe(3);
    expect(value(samples, "vigil_jobs_dead_total", { queue: "q" })).toBe(1);
    expect(value(samples, "vigil_jobs", { queue: "q", state: "completed" })).toBe(3);
    expect(value(samples, "vigil_http_requests_total", { route: "metrics", status: "200" })).toBe(1);
    // Duration quantiles are recomputed at most every 30 s; a fresh registry has them now.
    const fresh = createMetrics({ store: t.store, snapshot: () => storeSnapshot(t.store) });
    ({ samples } = parseProm(await fresh.render()));
    expect(value(samples, "vigil_job_duration_seconds", { queue: "q", quantile: "0.5" })).toBeGreaterThanOrEqual(0);
    expect(value(samples, "vigil_job_duration_seconds", { queue: "q", quantile: "0.95" })).toBeGreaterThanOrEqual(0);
  });

  it("refuses retry, cancel and restart without the token or with a wrong one", async () => {
    const [deadId] = await killJobs(t.store, "q", 1);
    const { job } = await t.store.enqueue("q", { x: 1 });
    for (const path of [`/api/jobs/${deadId}/retry`, `/api/jobs/${job.id}/cancel`, "/api/services/workers:1/restart"]) {
      expect((await call(h, "POST", path)).status).toBe(401);
      expect((await call(h, "POST", path, { authorization: "Bearer wrong-token" })).status).toBe(401);
      expect((await call(h, "POST", path, { authorization: TOKEN })).status).toBe(401);
    }
    expect((await t.store.get(deadId!))!.state).toBe("dead");
    expect((await t.store.get(job.id))!.state).toBe("waiting");
    expect(restarts).toEqual([]);

    const auth = { authorization: `Bearer ${TOKEN}` };
    const retried = await call(h, "POST", `/api/jobs/${deadId}/retry`, auth);
    expect(retried.status).toBe(200);
    expect(retried.json().state).toBe("waiting");
    expect((await call(h, "POST", `/api/jobs/${job.id}/cancel`, auth)).json().state).toBe("cancelled");
    expect((await call(h, "POST", "/api/services/workers:1/restart", auth)).status).toBe(202);
    expect(restarts).toEqual([{ name: "workers:1", manual: true }]);
  });

  it("pauses and resumes a queue only with the token, and lists queues with their state", async () => {
    await t.store.enqueue("q", { x: 1 });
    for (const verb of ["pause", "resume"]) {
      expect((await call(h, "POST", `/api/queues/q/${verb}`)).status).toBe(401);
      expect((await call(h, "POST", `/api/queues/q/${verb}`, { authorization: "Bearer wrong-token" })).status).toBe(401);
    }
    expect(await t.store.queueStates()).toEqual([]);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const paused = await call(h, "POST", "/api/queues/q/pause", auth);
    expect(paused.status).toBe(200);
    expect(paused.json()).toMatchObject({ name: "q", paused: true });
    expect((await call(h, "GET", "/api/queues")).json().q).toMatchObject({ waiting: 1, paused: true });
    const list = (await call(h, "GET", "/api/queues/list")).json();
    expect(list).toEqual([expect.objectContaining({ name: "q", paused: true, counts: expect.objectContaining({ waiting: 1 }) })]);
    expect((await call(h, "POST", "/api/queues/q/resume", auth)).json()).toMatchObject({ name: "q", paused: false });
    expect((await t.store.queueStates()).map((q) => q.paused)).toEqual([false]);
    expect((await call(h, "POST", "/api/queues/bad%20name/pause", auth)).status).toBe(404);
  });

  it("bounds a page of jobs: at most 200, payloads and results cut to a flagged preview, the whole job by id, paged by before", async () => {
    const big = (i: number) => ({ i, text: "p".repeat(256 * 1024) });
    await t.store.enqueueMany(Array.from({ length: 230 }, (_, i) => ({ queue: "big", payload: big(i) })));
    const done = await t.store.claim({ workerId: "test:1", queues: { big: 5 }, leaseMs: 60_000 });
    for (const l of done) await t.store.complete(l, { out: "r".repeat(256 * 1024) });
    const { job: small } = await t.store.enqueue("big", { small: true });

    const res = await call(h, "GET", "/api/jobs?limit=1000");
    expect(res.status).toBe(200);
    const page = res.json() as Record<string, any>[];
    expect(page).toHaveLength(MAX_JOBS_PAGE);
    // 200 jobs of 256 KiB payloads would be 50 MiB; the previews keep the page small.
    expect(res.text.length).toBeLessThan(MAX_JOBS_PAGE * 3 * JOB_PREVIEW_CHARS);
    expect(page[0]).toMatchObject({ id: small.id, payload: { small: true } });
    expect(page[0]!.payloadTruncated).toBeUndefined();
    expect(page.slice(1).every((j) => j.payloadTruncated === true && j.payload.length === JOB_PREVIEW_CHARS)).toBe(true);
    // The next page starts below the last id of this one; together they hold every job once.
    const rest = (await call(h, "GET", `/api/jobs?limit=0&before=${page.at(-1)!.id}`)).json() as Record<string, any>[];
    expect(rest).toHaveLength(231 - MAX_JOBS_PAGE);
    expect(new Set([...page, ...rest].map((j) => j.id)).size).toBe(231);
    const cut = rest.find((j) => j.id === done[0]!.jobId)!;
    expect(cut).toMatchObject({ payloadTruncated: true, resultTruncated: true });
    expect(cut.payload).toBe(JSON.stringify(done[0]!.job.payload).slice(0, JOB_PREVIEW_CHARS));
    expect(cut.result).toBe(JSON.stringify({ out: "r".repeat(256 * 1024) }).slice(0, JOB_PREVIEW_CHARS));
    // The whole job, by id.
    const whole = (await call(h, "GET", `/api/jobs/${cut.id}`)).json();
    expect(whole.payload).toEqual(done[0]!.job.payload);
    expect(whole.result.out).toHaveLength(256 * 1024);
    expect(whole.payloadTruncated).toBeUndefined();
  });

  it("answers the read endpoints, bad input and unknown ids", async () => {
    await completeJobs(t.store, "q", 2);
    await t.store.enqueue("other", {});
    const queues = (await call(h, "GET", "/api/queues")).json();
    expect(queues.q.completed).toBe(2);
    expect(queues.other.waiting).toBe(1);
    const jobs = (await call(h, "GET", "/api/jobs?queue=q&state=completed&limit=1")).json();
    expect(jobs).toHaveLength(1);
    expect(jobs[0].queue).toBe("q");
    expect((await call(h, "GET", "/api/jobs?state=bogus")).status).toBe(400);
    expect((await call(h, "GET", "/api/jobs/99999")).status).toBe(404);
    expect((await call(h, "GET", `/api/jobs/${jobs[0].id}`)).json().id).toBe(jobs[0].id);
    const status = (await call(h, "GET", "/api/status")).json();
    expect(status.source).toBe("store");
    expect(status.queues.q.completed).toBe(2);
    const report = (await call(h, "GET", "/api/report?since=1h")).json();
    expect(report.queues.find((q: { queue: string }) => q.queue === "q").completed).toBe(2);
    expect((await call(h, "GET", "/api/report?since=soon")).status).toBe(400);
    expect((await call(h, "GET", "/api/triggers")).json()).toEqual({ triggers: [], rejected: [] });
    expect((await call(h, "GET", "/api/incidents")).json()).toEqual([]);
    expect((await call(h, "GET", "/api/jobs/1/retry")).status).toBe(405);
    const healthz = await call(h, "GET", "/healthz");
    expect(healthz.status).toBe(503);
    expect(healthz.json().status).toBe("unhealthy");
    const page = await call(h, "GET", "/");
    expect(page.status).toBe(200);
    expect(page.text).toContain("<title>Vigil</title>");
    expect((await call(h, "GET", "/../package.json")).status).toBe(404);
  });

  it("bounds request bodies and refuses foreign Host names", async () => {
    const big = "x".repeat(100 * 1024);
    const res = await call(h, "POST", "/api/jobs/1/retry", { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" }, big);
    expect(res.status).toBe(413);
    expect((await call(h, "GET", "/api/status", { host: "attacker.example:7420" })).status).toBe(403);
  });
});

describe("token", () => {
  it("generates a 0600 token file once and compares bearer headers", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-token-"));
    try {
      const a = resolveToken(join(dir, ".vigil"));
      const b = resolveToken(join(dir, ".vigil"));
      expect(a).toBe(b);
      expect(a.length).toBeGreaterThanOrEqual(40);
      expect(statSync(join(dir, ".vigil", "token")).mode & 0o777).toBe(0o600);
      expect(resolveToken(join(dir, ".vigil"), "configured-token-1234")).toBe("configured-token-1234");
      expect(checkBearer(`Bearer ${a}`, a)).toBe(true);
      expect(checkBearer(`Bearer ${a}x`, a)).toBe(false);
      expect(checkBearer(undefined, a)).toBe(false);
      expect(checkBearer(a, a)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
