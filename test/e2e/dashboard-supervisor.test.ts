/**
 * The dashboard against `vigil start` (real supervisor, real worker processes): the
 * Services page shows the live rows from the event stream, and its Restart button, after
 * logging in with the generated token, really replaces the worker process.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { launchBrowser } from "./browser.js";
import { snapshot, startWithHttp, supervisorTest, waitFor } from "./supervisor-helpers.js";

const t = supervisorTest();

describe("dashboard under vigil start", () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  it("restarts a worker from the Services page", async () => {
    const { base, rows } = await startWithHttp(t);
    const old = rows.find((r) => r.name === "workers:2")!.pid;
    await waitFor("the dashboard", async () => (await fetch(`${base}/`).catch(() => null))?.ok ?? null);

    browser = await launchBrowser();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("dialog", (d) => void d.accept());
    await page.goto(`${base}/#/services`);
    const row = page.locator('#services tr[data-service="workers:2"]');
    await row.locator("td", { hasText: String(old) }).waitFor({ timeout: 30_000 });

    await page.locator("#login").click();
    const token = readFileSync(join(t.project.dir, ".vigil", "token"), "utf8").trim();
    await page.fill("#login-token", token);
    await page.click("#login-submit");
    await page.locator("#logout").waitFor({ timeout: 10_000 });

    await row.locator('button[data-restart="workers:2"]').click();
    await page.locator("#services-msg").waitFor({ timeout: 20_000 });
    expect(await page.locator("#services-msg").textContent()).toBe("Restart of workers:2 requested.");
    const fresh = await waitFor("a new workers:2", async () => {
      const r = (await snapshot(t.project!))?.services.find((s) => s.name === "workers:2");
      return r?.state === "running" && r.pid !== old ? r.pid : null;
    });
    // The page follows the live stream to the new process.
    await row.locator("td", { hasText: String(fresh) }).waitFor({ timeout: 30_000 });
    expect(await row.locator("td").nth(6).textContent()).toBe("1");
    expect(errors).toEqual([]);
  });
});
