/**
 * The job detail panel's "why is this job not finished?" sentence, in a real browser, for
 * the ways a job gets stuck, each made with real parts: under a real `vigil start` (SQLite)
 * a queue no worker runs, a retry waiting out its backoff, and a worker process frozen with
 * SIGSTOP; over a store with no worker, a job claimed with a short lease by a store call
 * and never renewed. And, on one page load, the open panel following a job over the live
 * stream as a real worker (the library's Worker) picks it up and finishes it.
 */
import { pino } from "pino";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpServer } from "../../src/http/server.js";
import { Worker } from "../../src/worker/worker.js";
import { launchBrowser } from "./browser.js";
import { noWorkerSnapshot } from "./dashboard-helpers.js";
import { allRunning, freePort, holderOf, makeProject, openProjectStore, startVigil, supervisorTest, waitFor, WORK_HANDLER } from "./supervisor-helpers.js";
import { tempStore } from "../unit/ops-fixtures.js";

const FLAKY = `export default async function handle(job) {
  if (job.attempt === 1) throw new Error("upstream said 503");
  return { ok: true };
}
`;

describe("dashboard: why a job is not finished", () => {
  const t = supervisorTest();
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
  });

  /** The panel's sentence for job `id`, reloading the page until it passes `ok`. */
  async function whyOf(page: Page, base: string, id: number, ok: (why: string) => boolean): Promise<string> {
    let last = "";
    return waitFor(
      `job ${id}'s why`,
      async () => {
        // A fresh load each time, so each look is a new page's first reading of the job.
        await page.goto("about:blank");
        await page.goto(`${base}/#/jobs?job=${id}`);
        await page.locator(`#job-detail[data-job="${id}"]`).waitFor({ timeout: 20_000 });
        const why = page.locator("#job-why");
        last = (await why.count()) ? ((await why.textContent()) ?? "") : "";
        return ok(last) ? last : null;
      },
      60_000,
      500,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the page said: ${last}`);
    });
  }

  it("under vigil start: no worker for the queue, a retry's backoff, a frozen worker", async () => {
    const port = await freePort();
    t.project = makeProject(
      `queues:
  work: { handler: ./work.mjs }
  flaky: { handler: ./flaky.mjs, attempts: 3, backoff: { base: 1h, max: 1h } }
  orphan: { handler: ./work.mjs }
services:
  workers: { queues: [work, flaky], instances: 1 }
supervision: { stallAfter: 60s, killTimeout: 1s }
http: { port: ${port} }
`,
      { "work.mjs": WORK_HANDLER, "flaky.mjs": FLAKY },
    );
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0]);
    t.store = await openProjectStore(t.project);
    const store = t.store;
    const base = `http://127.0.0.1:${port}`;
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));

    // A queue no worker service runs.
    const orphan = (await store.enqueue("orphan", {})).job;
    expect(await whyOf(page, base, orphan.id, (w) => w.length > 0)).toBe("waiting: no worker service in the config runs queue orphan");

    // A retry waiting out its backoff (an hour).
    const flaky = (await store.enqueue("flaky", {})).job;
    await waitFor("the first attempt failed", async () => (await store.get(flaky.id))?.state === "failed");
    const retry = await whyOf(page, base, flaky.id, (w) => w.startsWith("scheduled"));
    expect(retry).toMatch(/^scheduled: retry 2 of \d+ at \d\d:\d\d:\d\d \(in (\d+m \d+s|1h 0m)\) after: upstream said 503$/);

    // A worker frozen by SIGSTOP while it holds a job: its heartbeat stops.
    const hung = (await store.enqueue("work", { mode: "hang" })).job;
    const holder = await holderOf(t.project, store, hung.id);
    process.kill(holder.pid, "SIGSTOP");
    try {
      const frozen = await whyOf(page, base, hung.id, (w) => {
        const m = /last heartbeat (\d+(?:\.\d)?)s ago/.exec(w);
        return m !== null && Number(m[1]) >= 6;
      });
      expect(frozen).toContain(`active on ${holder.name} pid ${holder.pid}`);
      // Still "running" to the supervisor (a minute's stallAfter), but the sentence says why it is silent.
      expect(frozen).toMatch(/\(no heartbeat for [\d.]+s, where one comes every 1\.0s: the process is frozen or its event loop is blocked; the supervisor replaces it once it has been silent 1m 0s and frees its jobs\)$/);
    } finally {
      process.kill(holder.pid, "SIGCONT");
    }
    expect(errors).toEqual([]);
  }, 240_000);

  it("over a store with no worker: a lease claimed by a store call and never renewed expires", async () => {
    const s = await tempStore();
    const h = await startHttpServer({ port: 0, token: "dashboard-why-token-0123456789", store: s.store });
    try {
      const { job } = await s.store.enqueue("held", {});
      const [lease] = await s.store.claim({ workerId: "gone-worker", queues: { held: 1 }, leaseMs: 1000 });
      expect(lease?.job.id).toBe(job.id);
      const page = await browser.newPage();
      const why = await whyOf(page, h.url, job.id, (w) => w.includes("lease expired"));
      expect(why).toMatch(/^active, lease expired [\d.]+m?s ago, will be released \(attempt 1 of \d+, stalls 0\)$/);
    } finally {
      await h.close();
      await s.cleanup();
    }
  }, 120_000);

  it("follows the live stream: the open panel's why goes waiting → active → gone when done, with no reload", async () => {
    const s = await tempStore();
    const h = await startHttpServer({ port: 0, token: "dashboard-why-token-0123456789", store: s.store, snapshot: noWorkerSnapshot(s.store), queueServices: { live: ["workers"] } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let worker: Worker | undefined;
    try {
      const { job } = await s.store.enqueue("live", { n: 1 });
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`${h.url}/#/jobs?job=${job.id}`);
      const why = page.locator("#job-why");
      await why.filter({ hasText: "waiting: queue live has no running worker" }).waitFor({ timeout: 30_000 });
      // Marks this document: a reload or a navigation would lose it.
      await page.evaluate(() => ((window as unknown as { loadedOnce: boolean }).loadedOnce = true));

      worker = new Worker(s.store, {
        workerId: "live-worker:1",
        queues: { live: { handler: async () => (await gate, { ok: true }) } },
        logger: pino({ level: "silent" }),
      });
      worker.start();
      await why.filter({ hasText: /^active on live-worker:1, .*handler running/ }).waitFor({ timeout: 30_000 });
      const seconds = async (): Promise<number> => Number(/handler running ([\d.]+)s/.exec((await why.textContent()) ?? "")?.[1] ?? NaN);
      const first = await seconds();
      // The running time grows with each event while the panel stays open.
      await page.waitForFunction(
        (was) => Number(/handler running ([\d.]+)s/.exec(document.querySelector("#job-why")?.textContent ?? "")?.[1] ?? 0) > was,
        first,
        { timeout: 30_000 },
      );
      expect(await seconds()).toBeGreaterThan(first);

      release();
      await page.locator("#job-detail .state-completed").waitFor({ timeout: 30_000 });
      // A finished job has no why.
      expect(await why.count()).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(true);
      expect(errors).toEqual([]);
    } finally {
      release();
      await worker?.stop();
      await h.close();
      await s.cleanup();
    }
  }, 120_000);
});
