/**
 * Pausing and resuming a queue from the dashboard, in a real browser, over the real HTTP
 * server and a real SQLite store with a real worker (the library's Worker) claiming from
 * it: after logging in, Pause holds the queue (a job enqueued then stays waiting while the
 * worker runs another queue's jobs), the queue table marks it, the Stuck list stops naming
 * it, and Resume lets the worker run it.
 */
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import type { Clock } from "../../src/core/clock.js";
import { Worker } from "../../src/worker/worker.js";
import { dashboardSuite, logIn } from "./dashboard-helpers.js";
import { waitFor } from "./supervisor-helpers.js";

const TOKEN = "dashboard-flow-token-0123456789";
/** Older than the Overview's stuck threshold (60 s), so an unpaused queue with it reads as stuck. */
const OLD_MS = 5 * 60_000;

describe("dashboard: pause and resume a queue", () => {
  let worker: Worker;
  const ran: string[] = [];
  // The store's clock, set back while the first job is enqueued so it has waited minutes.
  let offset = -OLD_MS;
  const clock: Clock = { now: () => Date.now() + offset };
  const s = dashboardSuite({
    token: TOKEN,
    clock,
    fill: async (t) => {
      await t.store.enqueue("work", { n: "old" });
      offset = 0;
    },
  });
  // Registered after the suite's, so it runs before the store closes.
  afterAll(async () => {
    await worker?.stop();
  });

  it("pauses from the Overview (the store holds the queue, the worker leaves it), then resumes", async () => {
    const page = await s.browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${s.h.url}/`);
    // Before the pause: a job waiting minutes on a queue nobody runs is stuck.
    await page.locator("#stuck tr", { hasText: "queue work" }).waitFor({ timeout: 30_000 });

    await logIn(page, TOKEN);

    await page.locator('#queues button[data-pause="work"]').click();
    await page.locator("#queues-msg", { hasText: "Queue work paused." }).waitFor({ timeout: 20_000 });
    expect((await s.t.store.queueStates()).find((q) => q.name === "work")?.paused).toBe(true);
    await page.locator('#queues [data-paused="work"]').waitFor({ timeout: 30_000 });
    // Paused, its waiting jobs wait on purpose: no longer in the Stuck list.
    await page.locator("#stuck-none").waitFor({ timeout: 30_000 });

    worker = new Worker(s.t.store, {
      queues: {
        work: { handler: async (job) => void ran.push(`work ${String((job.payload as { n: unknown }).n)}`) },
        other: { handler: async () => void ran.push("other") },
      },
      logger: pino({ level: "silent" }),
    });
    worker.start();
    const fresh = (await s.t.store.enqueue("work", { n: "new" })).job;
    // The worker is claiming: a job of another queue enqueued after it runs to completion.
    const other = (await s.t.store.enqueue("other", {})).job;
    await waitFor("the other queue's job done", async () => (await s.t.store.get(other.id))?.state === "completed", 30_000);
    expect((await s.t.store.get(fresh.id))?.state).toBe("waiting");
    expect(ran).toEqual(["other"]);

    await page.locator('#queues button[data-resume="work"]').click();
    await page.locator("#queues-msg", { hasText: "Queue work resumed." }).waitFor({ timeout: 20_000 });
    await waitFor("the paused job done", async () => (await s.t.store.get(fresh.id))?.state === "completed", 30_000);
    expect(ran.sort()).toEqual(["other", "work new", "work old"]);
    await page.locator('#queues button[data-pause="work"]').waitFor({ timeout: 30_000 });
    expect(await page.locator('#queues [data-paused="work"]').count()).toBe(0);
    expect(errors).toEqual([]);
  }, 120_000);
});
