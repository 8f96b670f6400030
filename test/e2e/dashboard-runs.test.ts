/**
 * The Runs page in a real browser over the real HTTP server and a real SQLite store: runs
 * listed and searched, one run's stages in order, a rerun from a stage with its input
 * edited in the page (after logging in), and a job's `why` on the Jobs page.
 */
import { describe, expect, it } from "vitest";
import { dashboardSuite, logIn, noWorkerSnapshot } from "./dashboard-helpers.js";

const TOKEN = "dashboard-runs-token-0123456789";

describe("dashboard Runs page", () => {
  const runs: Record<string, [number, number]> = {};
  const s = dashboardSuite({
    token: TOKEN,
    fill: async (t) => {
      for (const [key, text] of [["k-1", "alpha"], ["k-2", "beta"]] as const) {
        const { job } = await t.store.enqueue("a", { text }, { key });
        const [lease] = await t.store.claim({ workerId: "w", queues: { a: 1 }, leaseMs: 60_000 });
        const [next] = await t.store.complete(lease!, { outline: text }, [{ queue: "b", payload: { from: key, text } }]);
        runs[key] = [job.id, next!.id];
      }
    },
    server: (t) => ({ snapshot: noWorkerSnapshot(t.store), queueServices: { a: ["workers"], b: ["workers"] } }),
  });

  it("lists and searches runs, shows a run's stages, and reruns from a stage with edited input", async () => {
    const page = await s.browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${s.h.url}/#/runs`);
    await page.locator(`#runs tr[data-run="${runs["k-1"]![0]}"]`).waitFor({ timeout: 30_000 });
    expect(await page.locator("#runs tbody tr").count()).toBe(2);

    await page.fill("#runs-search", "alpha");
    await page.locator("#runs-search").press("Enter");
    await page.waitForURL(/#\/runs\?search=alpha/, { timeout: 10_000 });
    await page.locator("#runs tbody tr").nth(1).waitFor({ state: "detached", timeout: 20_000 });
    const row = page.locator(`#runs tr[data-run="${runs["k-1"]![0]}"]`);
    expect(await row.locator("td").nth(1).textContent()).toBe("k-1");
    await row.click();
    // The search is kept beside the chosen run.
    await page.waitForURL(new RegExp(`#/runs\\?search=alpha&id=${runs["k-1"]![0]}$`), { timeout: 10_000 });

    const detail = page.locator("#run-detail");
    await detail.locator('li[data-stage="b"]').waitFor({ timeout: 20_000 });
    expect(await detail.locator("li").evaluateAll((lis) => lis.map((li) => li.getAttribute("data-stage")))).toEqual(["a", "b"]);

    await logIn(page, TOKEN);

    await detail.locator('button[data-rerun="b"]').click();
    const input = page.locator("#rerun-input");
    await page.waitForFunction(() => (document.querySelector("#rerun-input") as HTMLTextAreaElement | null)?.value.includes("alpha"), null, { timeout: 20_000 });
    expect(JSON.parse(await input.inputValue())).toEqual({ from: "k-1", text: "alpha" });
    await input.fill(JSON.stringify({ from: "k-1", text: "edited" }));
    await page.click("#rerun-confirm");
    await page.locator("#rerun-msg", { hasText: "Rerun started" }).waitFor({ timeout: 20_000 });

    const waiting = (await s.t.store.list({ queue: "b", state: "waiting", limit: 10 })).filter((j) => (j.payload as { text?: string }).text === "edited");
    expect(waiting).toHaveLength(1);
    expect(waiting[0]!.source).toMatchObject({ trigger: "rerun", rerunOf: runs["k-1"]![0] });
    expect(errors).toEqual([]);
  });

  it("shows why a job is not finished", async () => {
    const page = await s.browser.newPage();
    const id = runs["k-2"]![1];
    await page.goto(`${s.h.url}/#/jobs?queue=b&job=${id}`);
    await page.locator("#job-why", { hasText: "waiting: queue b has no running worker" }).waitFor({ timeout: 30_000 });
  });
});
