/**
 * The dashboard in a real browser (the Chromium that `npm install` brings, through playwright-core), served by
 * the real HTTP server over a real SQLite store: the queue counts show, and retrying a
 * dead job with the token moves it back to waiting.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpServer, type HttpServerHandle } from "../../src/http/server.js";
import { launchBrowser } from "./browser.js";
import { completeJobs, killJobs, tempStore, type TempStore } from "../unit/ops-fixtures.js";

const TOKEN = "dashboard-test-token-0123456789";

describe("dashboard", () => {
  let t: TempStore;
  let h: HttpServerHandle;
  let browser: Browser;
  let deadId: number;
  beforeAll(async () => {
    t = await tempStore();
    await completeJobs(t.store, "outline", 3);
    [deadId] = (await killJobs(t.store, "outline", 1)) as [number];
    await t.store.enqueue("qa", { n: 1 });
    await t.store.enqueue("qa", { n: 2 });
    h = await startHttpServer({ port: 0, token: TOKEN, store: t.store });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await t?.cleanup();
  });

  it("shows queue counts and retries a dead job with the token", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${h.url}/`);

    const outline = page.locator('#queues tbody tr[data-queue="outline"]');
    await outline.waitFor({ timeout: 20_000 });
    const cells = await outline.locator("td").allTextContents();
    // Queue, Scheduled, Waiting, Active, Completed, Failed, Dead, Cancelled
    expect(cells).toEqual(["outline", "0", "0", "0", "3", "0", "1", "0"]);
    expect(await page.locator('#queues tbody tr[data-queue="qa"] td').nth(2).textContent()).toBe("2");

    const row = page.locator(`#jobs tbody tr[data-job="${deadId}"]`);
    expect(await row.locator("td").nth(2).textContent()).toBe("dead");
    await row.locator(`button[data-retry="${deadId}"]`).click();
    // No token yet: the page asks for it instead of sending the request.
    await page.locator("#token-form").waitFor({ state: "visible", timeout: 10_000 });
    expect((await t.store.get(deadId))!.state).toBe("dead");

    await page.fill("#token-input", "a-wrong-token-that-is-long-enough");
    await page.click("#token-save");
    await page.locator("#error", { hasText: "refused" }).waitFor({ timeout: 10_000 });
    expect((await t.store.get(deadId))!.state).toBe("dead");

    await page.fill("#token-input", TOKEN);
    await page.click("#token-save");
    await row.locator("td", { hasText: "waiting" }).waitFor({ timeout: 20_000 });
    expect((await t.store.get(deadId))!.state).toBe("waiting");
    await page.locator('#queues tbody tr[data-queue="outline"] td:nth-child(7)', { hasText: /^0$/ }).waitFor({ timeout: 20_000 });
    expect(await page.evaluate("sessionStorage.getItem(\"vigil-token\")")).toBe(TOKEN);
    expect(errors).toEqual([]);
  });
});
