/**
 * Each job's own log lines on the Runs page, under a real `vigil start`: a JavaScript stage
 * writes with `ctx.log` and a command stage writes to stderr; the supervisor collects both
 * worker processes' output into `.vigil/logs/`, and opening a job's "log" in the run's
 * timeline shows that job's lines and no other job's.
 */
import type { Browser } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { launchBrowser } from "./browser.js";
import { allRunning, freePort, makeProject, openProjectStore, startVigil, supervisorTest, waitFor } from "./supervisor-helpers.js";

const OUTLINE = `export default async function handle(job, ctx) {
  ctx.log.info({ words: job.payload.text.split(" ").length }, "outlining " + job.payload.text);
  ctx.log.warn("upstream slow for " + job.payload.text);
  return { text: job.payload.text.toUpperCase() };
}
`;
const SHOUT = `let input = "";
for await (const chunk of process.stdin) input += chunk;
const { payload } = JSON.parse(input);
process.stderr.write("shout read " + payload.text + "\\n");
console.log(JSON.stringify({ said: payload.text + "!" }));
`;

const t = supervisorTest();

describe("dashboard: a job's own log lines", () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  it("shows what ctx.log wrote and a command's stderr, each under its own job", async () => {
    const port = await freePort();
    t.project = makeProject(
      `queues:
  outline: { handler: ./outline.mjs, next: shout }
  shout: { command: [${JSON.stringify(process.execPath)}, ./shout.mjs] }
services:
  workers: { queues: [outline, shout], instances: 1 }
http: { port: ${port} }
`,
      { "outline.mjs": OUTLINE, "shout.mjs": SHOUT },
    );
    t.runs.push(startVigil(t.project));
    await allRunning(t.project, t.runs[0]);
    t.store = await openProjectStore(t.project);
    const store = t.store;
    const runs = [];
    for (const text of ["first idea", "second idea"]) runs.push((await store.enqueue("outline", { text })).job.id);
    const jobsOf = async (root: number) => (await store.getRun(root))?.jobs ?? [];
    for (const root of runs) {
      await waitFor(`run ${root} done`, async () => {
        const jobs = await jobsOf(root);
        return jobs.length === 2 && jobs.every((j) => j.state === "completed") ? jobs : null;
      });
    }
    const [outline, shout] = await jobsOf(runs[0]!);

    browser = await launchBrowser();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/#/runs?id=${runs[0]}`);
    const first = page.locator(`details[data-log="${outline!.id}"]`);
    await first.locator("summary").click();
    const rows = page.locator(`#log-${outline!.id} tr`);
    await rows.first().waitFor({ timeout: 20_000 });
    const text = (await rows.allTextContents()).join("\n");
    expect(text).toContain("outlining first idea");
    expect(text).toContain('{"words":2}');
    expect(text).toContain("upstream slow for first idea");
    expect(await page.locator(`#log-${outline!.id} tr.level-warn`).count()).toBe(1);
    // Only this job's lines: not the other run's, not the next stage's.
    expect(text).not.toContain("second idea");
    expect(text).not.toContain("shout read");

    await page.locator(`details[data-log="${shout!.id}"] summary`).click();
    const stderr = page.locator(`#log-${shout!.id} pre.stderr`);
    await stderr.waitFor({ timeout: 20_000 });
    expect(await stderr.textContent()).toBe("shout read FIRST IDEA");
    expect(await page.locator(`#log-${shout!.id} tr`).count()).toBe(1);
    expect(errors).toEqual([]);
  });
});
