/**
 * The dashboard against `vigil start` (real supervisor, real worker processes): the
 * Services page shows the live rows from the event stream, and its Restart button, after
 * logging in with the generated token, really replaces the worker process; a worker whose
 * handler blocks its event loop is declared stalled, and its row opens the JavaScript stack
 * the watchdog captured, while Incidents shows the stall detected → recovered.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { launchBrowser } from "./browser.js";
import { logIn } from "./dashboard-helpers.js";
import { holderOf, openProjectStore, row, snapshot, startWithHttp, supervisorTest, waitFor } from "./supervisor-helpers.js";

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

    await logIn(page, readFileSync(join(t.project.dir, ".vigil", "token"), "utf8").trim());

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

  it("shows the stack captured at a worker's last stall, and the stall detected → recovered", async () => {
    const { base } = await startWithHttp(t);
    t.store = await openProjectStore(t.project!);
    const { job } = await t.store.enqueue("work", { mode: "block", after: 1500 });
    const victim = await holderOf(t.project!, t.store, job.id);
    const inc = await waitFor("stall incident", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.cause === "stall"));
    await waitFor("worker replaced", async () => {
      const r = await row(t.project!, victim.name);
      return r?.state === "running" && r.pid !== victim.pid ? r : null;
    });

    browser ??= await launchBrowser();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${base}/#/services`);
    await page.locator(`#services tr[data-service="${victim.name}"]`).click();
    await page.waitForURL(new RegExp(`#/services\\?name=${victim.name.replace(":", "%3A")}$`), { timeout: 10_000 });
    const detail = page.locator("#service-detail");
    await detail.locator("pre.stack").waitFor({ timeout: 20_000 });
    // The handler's own frame, where its loop spins.
    expect(await detail.locator("pre.stack").textContent()).toMatch(/handle \(file:.*work\.mjs:\d+/);
    expect(await detail.textContent()).toMatch(/Last stall [\d.]+m?s ago/);

    await waitFor("stall marked recovered", async () => (await t.store!.listIncidents({ service: victim.name })).find((i) => i.id === inc.id && i.recoveredAt !== null));
    await page.click("#nav-incidents");
    const li = page.locator(`#incidents li[data-incident="${inc.id}"]`);
    await li.waitFor({ timeout: 20_000 });
    expect(await li.textContent()).toMatch(new RegExp(`^stall of ${victim.name} on \\S+ · detected [\\d.]+m?s ago → recovered after [\\d.]+m?s`));
    await li.locator("a").first().click();
    expect(await li.locator("pre.stack").textContent()).toMatch(/handle \(file:.*work\.mjs:\d+/);
    expect(errors).toEqual([]);
  });
});
