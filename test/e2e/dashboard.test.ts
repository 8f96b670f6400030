/**
 * The dashboard in a real browser (the Chromium that `npm install` brings, through
 * playwright-core), served by the real HTTP server over a real SQLite store: the live stream
 * fills the Overview, each page renders, the login form turns the token into a cookie, a
 * dead job is retried from its detail panel, a bulk retry and a bulk cancel show their count before acting,
 * incidents read detected → recovered or open with their cause and stack, rejected trigger
 * records show their reason and sample, and the header switches light and dark.
 */
import type { Page } from "playwright-core";
import type { Incident } from "../../src/core/types.js";
import { describe, expect, it } from "vitest";
import { startHttpServer } from "../../src/http/server.js";
import { dashboardSuite, logIn } from "./dashboard-helpers.js";
import { completeJobs, killJobs } from "../unit/ops-fixtures.js";

const TOKEN = "dashboard-test-token-0123456789";

describe("dashboard", () => {
  let deadIds: number[];
  let recovered: Incident;
  const s = dashboardSuite({
    token: TOKEN,
    fill: async (t) => {
      await completeJobs(t.store, "outline", 3);
      deadIds = await killJobs(t.store, "outline", 3);
      await t.store.enqueue("qa", { n: 1 });
      await t.store.enqueue("qa", { n: 2 });
      // One recovered (a crash of the triggers process), then one still open (a worker's stall).
      recovered = await t.store.addIncident({ service: "triggers", cause: "crash", detail: { message: "exit code 1" } });
      await t.store.resolveIncidents("triggers");
      await t.store.addIncident({ service: "workers", cause: "stall", detail: { stack: ["spin (file:///w.js:3:1)", "main (file:///w.js:9:1)"] } });
      await t.store.commitTrigger({
        trigger: "ideas",
        expectVersion: 0,
        cursor: { offset: 7 },
        jobs: [],
        rejected: [{ trigger: "ideas", reason: "not JSON", sample: "{oops", path: "ideas.log", offset: 7 }],
      });
    },
  });

  async function open(hash = ""): Promise<{ page: Page; errors: string[] }> {
    const page = await s.browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${s.h.url}/${hash}`);
    return { page, errors };
  }

  it("shows queue counts from the live stream, with links into Jobs", async () => {
    const { page, errors } = await open();
    const outline = page.locator('#queues tbody tr[data-queue="outline"]');
    await outline.waitFor({ timeout: 30_000 });
    const cells = await outline.locator("td").allTextContents();
    // Queue, Scheduled, Waiting, Active, Completed, Failed, Dead, Cancelled
    expect(cells.slice(0, 8)).toEqual(["outline", "0", "0", "0", "3", "0", "3", "0"]);
    expect(await page.locator('#queues tbody tr[data-queue="qa"] td').nth(2).textContent()).toBe("2");
    expect(await page.locator("#card-open b").textContent()).toBe("1");
    expect(await page.locator(".spark canvas").count()).toBeGreaterThan(0);
    await outline.locator("td").nth(6).locator("a").click();
    await page.waitForURL(/#\/jobs\?queue=outline&state=dead/, { timeout: 10_000 });
    await page.locator(`#jobs tr[data-job="${deadIds[0]}"]`).waitFor({ timeout: 20_000 });
    expect(errors).toEqual([]);
  });

  it("fills the health strip: uptime, MTBF and MTTR over 24 h, open incidents", async () => {
    const { page, errors } = await open();
    // No supervisor over a bare store; a recovered crash and an open stall in the last 24 h.
    await page.locator("#card-uptime b", { hasText: "not running" }).waitFor({ timeout: 30_000 });
    await page.locator("#card-mttr b", { hasText: /^\d+(ms|\.\ds|s)$/ }).waitFor({ timeout: 30_000 });
    expect(await page.locator("#card-mtbf b").textContent()).toMatch(/^\d+h \d+m$/);
    expect(await page.locator("#card-open b").textContent()).toBe("1");
    await page.locator("#card-open a").click();
    await page.waitForURL(/#\/incidents\?open=1$/, { timeout: 10_000 });
    await page.locator("#incidents li").first().waitFor({ timeout: 20_000 });
    expect(await page.locator("#incidents li").count()).toBe(1);
    expect(errors).toEqual([]);
  });

  it("keeps each page's filters in its links: selecting, reloading, changing one, going back", async () => {
    const { page, errors } = await open("#/jobs?queue=outline&state=dead");
    const id = deadIds[1]!;
    await page.locator(`#jobs tr[data-job="${id}"]`).click();
    await page.waitForURL(new RegExp(`#/jobs\\?queue=outline&state=dead&job=${id}$`), { timeout: 10_000 });
    await page.locator(`#job-detail[data-job="${id}"]`).waitFor({ timeout: 20_000 });
    await page.reload();
    await page.locator(`#job-detail[data-job="${id}"]`).waitFor({ timeout: 20_000 });
    expect(await page.locator("#filter-queue").inputValue()).toBe("outline");
    expect(await page.locator("#filter-state").inputValue()).toBe("dead");
    // Every row links with the filters kept.
    for (const a of await page.locator("#jobs tbody td:first-child a").evaluateAll((as) => as.map((x) => x.getAttribute("href")))) {
      expect(a).toMatch(/^#\/jobs\?queue=outline&state=dead&job=\d+$/);
    }
    // Changing one filter keeps the other.
    await page.selectOption("#filter-state", "completed");
    await page.waitForURL(/#\/jobs\?queue=outline&state=completed$/, { timeout: 10_000 });
    await page.goBack();
    await page.waitForURL(new RegExp(`#/jobs\\?queue=outline&state=dead&job=${id}$`), { timeout: 10_000 });
    expect(await page.locator("#filter-state").inputValue()).toBe("dead");
    // Incidents: a chosen window survives opening one.
    await page.goto(`${s.h.url}/#/incidents?since=24h`);
    await page.locator("#incidents li a").first().click();
    await page.waitForURL(/#\/incidents\?since=24h&id=\d+$/, { timeout: 10_000 });
    expect(errors).toEqual([]);
  });

  it("logs in with the token (an HttpOnly cookie) and retries a dead job", async () => {
    const { page, errors } = await open(`#/jobs?queue=outline&state=dead&job=${deadIds[0]}`);
    const id = deadIds[0]!;
    await page.locator(`#job-detail[data-job="${id}"]`).waitFor({ timeout: 20_000 });
    await page.locator(`button[data-retry="${id}"]`).click();
    // Not logged in: the page asks for the token instead of sending the request.
    await page.locator("#login-form").waitFor({ state: "visible", timeout: 10_000 });
    expect((await s.t.store.get(id))!.state).toBe("dead");

    await page.fill("#login-token", "a-wrong-token-that-is-long-enough");
    await page.click("#login-submit");
    await page.locator("#login-error", { hasText: "refused" }).waitFor({ timeout: 10_000 });

    await page.fill("#login-token", TOKEN);
    await page.click("#login-submit");
    await page.locator("#logout").waitFor({ timeout: 10_000 });
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === "vigil_session");
    expect(session?.httpOnly).toBe(true);
    expect(session?.sameSite).toBe("Strict");
    expect(session?.value).not.toContain(TOKEN);
    expect(await page.evaluate("document.cookie")).toBe("");

    await page.locator(`button[data-retry="${id}"]`).click();
    await page.locator("#job-msg", { hasText: `Retried job ${id}` }).waitFor({ timeout: 20_000 });
    expect((await s.t.store.get(id))!.state).toBe("waiting");
    expect(errors).toEqual([]);
  });

  it("bulk retry shows how many jobs match, and acts only once confirmed", async () => {
    const { page, errors } = await open("#/jobs?queue=outline&state=dead");
    await logIn(page, TOKEN);
    // Whatever earlier tests left dead (the login test retries one of them).
    const left: number[] = [];
    for (const id of deadIds) if ((await s.t.store.get(id))!.state === "dead") left.push(id);
    expect(left.length).toBeGreaterThan(1);
    await page.locator("#bulk-retry-preview").click();
    await page.locator("#bulk-retry-count", { hasText: String(left.length) }).waitFor({ timeout: 10_000 });
    for (const id of left) expect((await s.t.store.get(id))!.state).toBe("dead");
    await page.locator("#bulk-retry-confirm").click();
    await page.locator("#bulk-retry-msg", { hasText: `Retried ${left.length} jobs` }).waitFor({ timeout: 20_000 });
    for (const id of left) expect((await s.t.store.get(id))!.state).toBe("waiting");
    expect(errors).toEqual([]);
  });

  it("bulk cancel of a filter: the count first, Never mind changes nothing, confirmed it cancels only those", async () => {
    const { page, errors } = await open("#/jobs?queue=qa&state=waiting");
    await logIn(page, TOKEN);
    const qa = (await s.t.store.list({ queue: "qa", state: "waiting", limit: 10 })).map((j) => j.id);
    const outline = (await s.t.store.list({ queue: "outline", state: "waiting", limit: 10 })).map((j) => j.id);
    expect(qa).toHaveLength(2);
    expect(outline.length).toBeGreaterThan(0);
    await page.locator("#bulk-cancel-preview").click();
    await page.locator("#bulk-cancel-count", { hasText: "2" }).waitFor({ timeout: 10_000 });
    expect(await page.locator("#bulk-cancel").textContent()).toContain("2 waiting jobs on qa match.");
    await page.locator("#bulk-cancel button", { hasText: "Never mind" }).click();
    await page.locator("#bulk-cancel-preview").waitFor({ timeout: 10_000 });
    for (const id of qa) expect((await s.t.store.get(id))!.state).toBe("waiting");
    await page.locator("#bulk-cancel-preview").click();
    await page.locator("#bulk-cancel-confirm").click();
    await page.locator("#bulk-cancel-msg", { hasText: "Cancelled 2 jobs" }).waitFor({ timeout: 20_000 });
    for (const id of qa) expect((await s.t.store.get(id))!.state).toBe("cancelled");
    for (const id of outline) expect((await s.t.store.get(id))!.state).toBe("waiting");
    expect(errors).toEqual([]);
  });

  it("renders Services, Incidents (detected → recovered, cause, the stall's stack), Triggers and Runs", async () => {
    const { page, errors } = await open("#/incidents");
    const li = page.locator("#incidents li").first();
    await li.waitFor({ timeout: 20_000 });
    // Newest first: the open stall, then the recovered crash.
    expect(await li.textContent()).toMatch(/^stall of workers on \S+ · detected \d+(ms|\.\ds|s) ago → open/);
    const done = page.locator(`#incidents li[data-incident="${recovered.id}"]`);
    expect(await done.textContent()).toMatch(/^crash of triggers on \S+ · detected [\d.]+m?s ago → recovered after [\d.]+m?s/);
    expect(await done.textContent()).toContain("exit code 1");
    await li.locator("a").first().click();
    await page.locator("pre.stack", { hasText: "spin (file:///w.js:3:1)" }).waitFor({ timeout: 10_000 });
    // Relative times carry the UTC time on hover.
    const time = li.locator("time").first();
    expect(await time.getAttribute("title")).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    expect(Date.parse(((await time.getAttribute("title")) ?? "").replace(" ", "T").replace(" UTC", "Z"))).toBeGreaterThan(Date.now() - 120_000);

    await page.click("#nav-triggers");
    const rejected = page.locator("#rejected tbody tr", { hasText: "not JSON" });
    await rejected.waitFor({ timeout: 20_000 });
    expect((await rejected.locator("td").allTextContents()).slice(1)).toEqual(["ideas", "not JSON", "ideas.log@7", "{oops"]);
    await page.click("#nav-services");
    await page.locator("#services").waitFor({ timeout: 20_000 });
    await page.click("#nav-runs");
    await page.locator("#runs, #runs-error").first().waitFor({ timeout: 20_000 });
    expect(errors).toEqual([]);
  });

  it("switches light ↔ dark from the header, and keeps the choice", async () => {
    const ctx = await s.browser.newContext({ colorScheme: "light" });
    try {
      const page = await ctx.newPage();
      await page.goto(`${s.h.url}/`);
      const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      expect(await bg()).toBe("rgb(255, 255, 255)");
      await page.click("#theme");
      expect(await page.evaluate(() => document.documentElement.dataset["theme"])).toBe("dark");
      expect(await bg()).toBe("rgb(13, 17, 23)");
      await page.reload();
      await page.locator("#theme").waitFor();
      expect(await bg()).toBe("rgb(13, 17, 23)");
      expect(await page.locator("#theme").textContent()).toBe("Light");
      await page.click("#theme");
      expect(await bg()).toBe("rgb(255, 255, 255)");
    } finally {
      await ctx.close();
    }
  });

  it("hides every action button when the server is read-only", async () => {
    const ro = await startHttpServer({ port: 0, token: TOKEN, store: s.t.store, readOnly: true, restartService: async () => {} });
    try {
      const [id] = await killJobs(s.t.store, "outline", 1);
      const page = await s.browser.newPage();
      await page.goto(`${ro.url}/#/jobs?queue=outline&state=dead&job=${id}`);
      await page.locator(`#job-detail[data-job="${id}"]`).waitFor({ timeout: 20_000 });
      await page.locator("#readonly").waitFor({ timeout: 10_000 });
      expect(await page.locator("#bulk-retry-preview, #bulk-cancel-preview, button[data-retry], #login").count()).toBe(0);
      await page.click("#nav-services");
      await page.locator("#services").waitFor({ timeout: 10_000 });
      expect(await page.locator("button[data-restart]").count()).toBe(0);
      await page.click("#nav-overview");
      await page.locator('#queues tbody tr[data-queue="outline"]').waitFor({ timeout: 30_000 });
      expect(await page.locator("button[data-pause], button[data-resume]").count()).toBe(0);
    } finally {
      await ro.close();
    }
  });

  it("closes the live stream while the tab is hidden and reopens it when shown", async () => {
    const clients = async (want: number): Promise<void> => {
      for (let i = 0; i < 400 && s.h.liveClients() !== want; i++) await new Promise((r) => setTimeout(r, 50));
      expect(s.h.liveClients()).toBe(want);
    };
    for (const c of s.browser.contexts()) for (const p of c.pages()) await p.close();
    await clients(0);
    const { page, errors } = await open();
    await page.locator("#live.ok").waitFor({ timeout: 30_000 });
    await clients(1);
    const show = (state: string) =>
      page.evaluate((s) => {
        Object.defineProperty(document, "visibilityState", { get: () => s, configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
      }, state);
    await show("hidden");
    await clients(0);
    await show("visible");
    await clients(1);
    await page.locator("#live.ok").waitFor({ timeout: 30_000 });
    await page.close();
    await clients(0);
    expect(errors).toEqual([]);
  });
});
