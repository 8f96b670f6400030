// Photographs each dashboard page, light and dark, into docs/img/ (1280×800 PNGs).
// Runs the ideas pipeline example with chaos on a temporary copy (its own ports), waits
// until there is something to see, then opens every page with the test suite's Chromium.
//
//   npx tsx scripts/dashboard-screenshots.ts [--wait 40]
import { spawn } from "node:child_process";
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { launchBrowser } from "../test/e2e/browser.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(ROOT, "docs", "img");
const { values } = parseArgs({ options: { wait: { type: "string", default: "30" } } });

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), "vigil-shots-"));
cpSync(join(ROOT, "examples", "ideas-pipeline"), dir, {
  recursive: true,
  filter: (src) => !/[/\\](data|\.vigil|node_modules)$/.test(src),
});
const [http, outline] = [await freePort(), await freePort()];
const config = readFileSync(join(dir, "vigil.yaml"), "utf8").replaceAll("7420", String(http)).replaceAll("7431", String(outline));
writeFileSync(join(dir, "vigil.yaml"), config);
mkdirSync(join(dir, "data"), { recursive: true });
writeFileSync(join(dir, "data", "ideas.log"), readFileSync(join(dir, "seeds.jsonl")));
// One malformed line, so the Triggers page has a rejected record to show.
appendFileSync(join(dir, "data", "ideas.log"), '{"title": "half a line\n');

const vigil = spawn(process.execPath, [join(ROOT, "bin", "vigil"), "start", "-c", join(dir, "vigil.yaml")], {
  cwd: dir,
  env: { ...process.env, VIGIL_CHAOS: "1" },
  stdio: "ignore",
});
const base = `http://127.0.0.1:${http}`;
// A new idea every 2 s keeps the queues moving, so the sparklines have a shape.
let n = 0;
const feed = setInterval(() => {
  n++;
  const idea = { id: `shot-${n}`, title: `Idea ${n}`, description: `A generated idea, number ${n}, to keep the pipeline busy.` };
  appendFileSync(join(dir, "data", "ideas.log"), JSON.stringify(idea) + "\n");
}, 2000);
try {
  const waitMs = Number(values.wait) * 1000;
  process.stdout.write(`running the example with chaos for ${waitMs / 1000} s at ${base}/ ...\n`);
  await new Promise((r) => setTimeout(r, waitMs));
  const runs = await fetch(`${base}/api/runs?limit=1`).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  const runId = (runs as { runs?: { id: number }[] } | null)?.runs?.[0]?.id;
  const incidents = (await fetch(`${base}/api/incidents?limit=50`).then((r) => r.json())) as { id: number; cause: string }[];
  const stall = incidents.find((i) => i.cause === "stall") ?? incidents[0];
  const pages: [string, string][] = [
    ["overview", "#/overview"],
    ["jobs", "#/jobs?queue=implement"],
    ["services", "#/services?name=workers:1"],
    ["incidents", `#/incidents${stall ? `?id=${stall.id}` : ""}`],
    ["triggers", "#/triggers"],
    ["runs", `#/runs${runId ? `?id=${runId}` : ""}`],
  ];
  // Queue qa paused, so the Overview shows the badge and the Resume button.
  const token = readFileSync(join(dir, ".vigil", "token"), "utf8").trim();
  await fetch(`${base}/api/queues/qa/pause`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
  const browser = await launchBrowser();
  mkdirSync(OUT, { recursive: true });
  for (const theme of ["light", "dark"]) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: theme as "light" | "dark" });
    await ctx.addInitScript(`localStorage.setItem("vigil-theme", "${theme}")`);
    const page = await ctx.newPage();
    for (const [name, hash] of pages) {
      await page.goto(`${base}/${hash}`);
      await page.locator("#live.ok").waitFor({ timeout: 30_000 });
      // Let the sparklines gather a few events and the page's own reads land.
      await page.waitForTimeout(name === "overview" ? 30_000 : 2500);
      // The run's first stage with its log lines open.
      const log = page.locator("#run-detail details[data-log] summary").first();
      if (name === "runs" && (await log.count())) {
        await log.click();
        await page.waitForTimeout(1000);
      }
      const file = join(OUT, `${name}-${theme}.png`);
      await page.screenshot({ path: file });
      process.stdout.write(`wrote ${file}\n`);
    }
    await ctx.close();
  }
  await browser.close();
} finally {
  clearInterval(feed);
  vigil.kill("SIGTERM");
  await new Promise((r) => vigil.once("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
