/**
 * The dashboard's layout in a real browser: at 1280 and 1024 px wide, in light and dark,
 * no page scrolls sideways — the Overview's queue table (eight counts, three sparklines and
 * a Pause button per queue) included — over a real SQLite store with counts in the tens of
 * thousands, a paused queue and a queue waiting long enough to be listed as stuck. Over
 * that store the Jobs page pages 100 at a time with its filters kept; and the page the
 * browser loads weighs under 150 KiB gzipped, all of it from this server.
 */
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import type { Clock } from "../../src/core/clock.js";
import { dashboardSuite } from "./dashboard-helpers.js";
import { completeJobs, killJobs } from "../unit/ops-fixtures.js";

const TOKEN = "dashboard-layout-token-0123456789";

describe("dashboard layout", () => {
  let offset = 0;
  const clock: Clock = { now: () => Date.now() + offset };
  const s = dashboardSuite({
    token: TOKEN,
    clock,
    timeoutMs: 180_000,
    fill: async (t) => {
      for (const q of ["outline", "implement-with-a-long-queue-name", "qa"]) {
        await completeJobs(t.store, q, 2_000);
        await killJobs(t.store, q, 3);
        await t.store.enqueueMany(Array.from({ length: 12_000 }, (_, i) => ({ queue: q, payload: { i } })));
      }
      // Ten minutes old: the Overview's Stuck list names the queue.
      offset = -10 * 60_000;
      await t.store.enqueue("implement-with-a-long-queue-name", { n: 0 });
      offset = 0;
      await t.store.setPaused("qa", true);
    },
  });

  for (const width of [1280, 1024]) {
    for (const theme of ["light", "dark"] as const) {
      it(`no page scrolls sideways at ${width} px, ${theme}`, async () => {
        const ctx = await s.browser.newContext({ viewport: { width, height: 800 }, colorScheme: theme });
        try {
          const page = await ctx.newPage();
          const errors: string[] = [];
          page.on("pageerror", (e) => errors.push(e.message));
          await page.goto(`${s.h.url}/`);
          await page.locator('#queues tbody tr[data-queue="implement-with-a-long-queue-name"]').waitFor({ timeout: 30_000 });
          await page.locator('#queues [data-paused="qa"]').waitFor({ timeout: 30_000 });
          await page.locator("#stuck tr", { hasText: "queue implement-with-a-long-queue-name" }).waitFor({ timeout: 30_000 });
          // The pause buttons come with the session (a read-only dashboard has none): wait for it.
          await page.locator('#queues button[data-pause="outline"]').waitFor({ timeout: 30_000 });
          expect(await page.locator('#queues button[data-pause="outline"]').count()).toBe(1);
          // The theme really applies: dark text on light, or light on dark.
          const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
          expect(bg).toBe(theme === "dark" ? "rgb(13, 17, 23)" : "rgb(255, 255, 255)");
          const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          expect(await overflow()).toBe(0);
          for (const [nav, ready] of [
            ["#nav-jobs", "#jobs tbody tr"],
            ["#nav-services", "#services"],
            ["#nav-incidents", "#incidents"],
            ["#nav-triggers", "#triggers, #rejected"],
            ["#nav-runs", "#runs"],
          ] as const) {
            await page.click(nav);
            await page.locator(ready).first().waitFor({ state: "attached", timeout: 20_000 });
            expect({ nav, overflow: await overflow() }).toEqual({ nav, overflow: 0 });
          }
          expect(errors).toEqual([]);
        } finally {
          await ctx.close();
        }
      }, 60_000);
    }
  }

  it("pages through a queue's jobs 100 at a time, older → and ← newest keeping the filters", async () => {
    const page = await s.browser.newPage();
    await page.goto(`${s.h.url}/#/jobs?queue=outline&state=waiting`);
    const rows = page.locator("#jobs tbody tr");
    await rows.nth(99).waitFor({ timeout: 20_000 });
    const ids = async () => (await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute("data-job")))));
    const first = await ids();
    expect(first).toHaveLength(100);
    await page.click("#jobs-older");
    await page.waitForURL(new RegExp(`#/jobs\\?queue=outline&state=waiting&before=${first[99]}$`), { timeout: 10_000 });
    await page.waitForFunction((last) => Number(document.querySelector("#jobs tbody tr")?.getAttribute("data-job")) < last, first[99]!, { timeout: 20_000 });
    const second = await ids();
    expect(second).toHaveLength(100);
    // Newest first, no overlap, and every row of the filter.
    expect(Math.max(...second)).toBeLessThan(Math.min(...first));
    for (const id of second) expect(await s.t.store.get(id)).toMatchObject({ queue: "outline", state: "waiting" });
    await page.click("#jobs-newest");
    await page.waitForURL(/#\/jobs\?queue=outline&state=waiting$/, { timeout: 10_000 });
    await page.waitForFunction((top) => Number(document.querySelector("#jobs tbody tr")?.getAttribute("data-job")) === top, first[0]!, { timeout: 20_000 });
    await page.close();
  });

  it("loads under 150 KiB gzipped, nothing from elsewhere", async () => {
    const page = await s.browser.newPage();
    const files: { url: string; gz: number }[] = [];
    const reading: Promise<void>[] = [];
    page.on("response", (r) => {
      // The page itself: what is fetched before any data (the API and the live stream).
      if (new URL(r.url()).pathname.startsWith("/api/")) return;
      reading.push(r.body().then((b) => void files.push({ url: r.url(), gz: gzipSync(b, { level: 9 }).length })));
    });
    await page.goto(`${s.h.url}/`);
    await page.locator('#queues tbody tr[data-queue="outline"]').waitFor({ timeout: 30_000 });
    await Promise.all(reading);
    expect(files.map((f) => new URL(f.url).pathname).sort()).toEqual(["/", "/app.css", "/app.js"]);
    for (const f of files) expect(f.url.startsWith(s.h.url)).toBe(true);
    const total = files.reduce((n, f) => n + f.gz, 0);
    // The budget scripts/build-web.mjs enforces on the bundle, here on what is served.
    expect(total).toBeLessThan(150 * 1024);
    await page.close();
  });
});
