/**
 * The supervisor with foreign commands (no worker runtime needed): a command that exits
 * at once goes crash-looping with backoff instead of spinning; a status file that stops
 * moving and a probe that stops answering are stalls; a process past maxMemory is
 * restarted. Every case is an incident row, and the replacement's recovery is recorded.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort, lines, makeProject, openProjectStore, row, snapshot, startVigil, vigil, waitFor, supervisorTest } from "./supervisor-helpers.js";

const t = supervisorTest();

/** An alert command that appends each message to alerts.log, one line each, prefixed by when it ran. */
const ALERT_SCRIPT = `import { appendFileSync } from "node:fs"; let s = ""; process.stdin.on("data", (d) => (s += d)); process.stdin.on("end", () => appendFileSync("alerts.log", Date.now() + " " + s.trim().replace(/\\n/g, " ") + "\\n"));`;

describe("supervisor with commands", () => {
  it("marks a command that exits at once crash-looping, backs off, alerts, keeps retrying, and ends its incidents when a later start runs it", async () => {
    t.project = makeProject(
      `services:
  quick: { command: [node, quick.mjs] }
supervision: { stallAfter: 2s, killTimeout: 1s, maxRestarts: 3/1m, crashLoopRetry: 3s }
http: { enabled: false }
alerts:
  - { command: [node, alert.mjs] }
`,
      {
        "quick.mjs": `import { appendFileSync } from "node:fs"; appendFileSync("spawns.log", Date.now() + "\\n"); process.exit(3);`,
        "alert.mjs": ALERT_SCRIPT,
      },
    );
    t.runs.push(startVigil(t.project));
    const spawns = join(t.project.dir, "spawns.log");
    const r = await waitFor("crash-looping", async () => ((await row(t.project!, "quick"))?.state === "crash-looping" ? row(t.project!, "quick") : null));
    // 1 start + 3 restarts allowed in the window; the 4th exit trips the limit.
    expect(lines(spawns).length).toBe(4);
    expect(r.nextRestartAt).toBeGreaterThan(Date.now());
    const times = lines(spawns).map(Number);
    // Backoff: each gap is at least the previous lower bound (100 ms, 200 ms, ...)/2.
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(100);
    expect(times[3]! - times[2]!).toBeGreaterThanOrEqual(200);
    // Not a tight loop: in the next second nothing more is spawned...
    const before = lines(spawns).length;
    await new Promise((res) => setTimeout(res, 1000));
    expect(lines(spawns).length).toBe(before);
    // ...but it is never given up on: the crash-loop retry comes.
    await waitFor("crash-loop retry", () => lines(spawns).length >= 5, 15_000);
    const store = await openProjectStore(t.project);
    try {
      const incs = await store.listIncidents({ service: "quick" });
      expect(incs.length).toBeGreaterThanOrEqual(4);
      expect(incs.every((i) => i.cause === "crash" && i.detail.code === 3)).toBe(true);
      expect(incs.some((i) => i.detail.crashLooping === true)).toBe(true);
    } finally {
      await store.close();
    }
    const alerts = await waitFor("crash-loop alert", () => lines(join(t.project!.dir, "alerts.log")).find((l) => l.includes('"crash-loop"')), 15_000);
    expect(alerts).toContain('"subject":"quick"');

    // Stopped while still crash-looping, its incidents stay open (it never recovered)...
    expect(vigil(t.project, ["stop"]).status).toBe(0);
    await waitFor("the supervisor to exit", () => t.runs[0]!.child.exitCode !== null);
    const openAfterStop = await openProjectStore(t.project);
    try {
      expect((await openAfterStop.listIncidents({ service: "quick" })).filter((i) => i.recoveredAt === null).length).toBeGreaterThan(0);
    } finally {
      await openAfterStop.close();
    }
    // ...until a later start runs it healthy: then they end, and a recovery is alerted.
    writeFileSync(join(t.project.dir, "quick.mjs"), "setInterval(() => {}, 1000);\n");
    const restartedAt = Date.now();
    t.runs.push(startVigil(t.project));
    const recovered = await waitFor("the old incidents to end", async () => {
      const store = await openProjectStore(t.project!);
      try {
        const incs = await store.listIncidents({ service: "quick" });
        return incs.every((i) => i.recoveredAt !== null) ? incs : null;
      } finally {
        await store.close();
      }
    });
    expect(recovered.every((i) => i.recoveredAt! >= restartedAt)).toBe(true);
    await waitFor("recovered alert", () => lines(join(t.project!.dir, "alerts.log")).find((l) => l.includes('"recovered"') && l.includes('"subject":"quick"')), 15_000);
  });

  it("declares a command whose status file goes stale stalled, kills it, records the recovery and alerts it after recoveredAfter", async () => {
    t.project = makeProject(
      `services:
  touchy: { command: [node, touchy.mjs], statusFile: beat.txt }
supervision: { stallAfter: 1s, killTimeout: 1s, recoveredAfter: 1s }
alerts:
  - { command: [node, alert.mjs] }
http: { enabled: false }
`,
      {
        "alert.mjs": ALERT_SCRIPT,
        // The first process touches the file for a while, then freezes its contract (but keeps running).
        "touchy.mjs": `import { appendFileSync, writeFileSync } from "node:fs";
appendFileSync("spawns.log", process.pid + "\\n");
const first = (await import("node:fs")).readFileSync("spawns.log", "utf8").trim().split("\\n").length === 1;
const t0 = Date.now();
setInterval(() => { if (!first || Date.now() - t0 < 1500) writeFileSync("beat.txt", String(Date.now())); }, 200);`,
      },
    );
    t.runs.push(startVigil(t.project));
    const store = await openProjectStore(t.project);
    try {
      const inc = await waitFor("stall incident", async () => (await store.listIncidents({ service: "touchy" })).find((i) => i.cause === "stall"));
      expect(String(inc.detail.reason)).toMatch(/status-file/);
      expect(inc.detail.procState).toMatch(/^[SR] /);
      const pids = lines(join(t.project.dir, "spawns.log"));
      expect(inc.detail.pid).toBe(Number(pids[0]));
      const healed = await waitFor("recovery recorded", async () => (await store.listIncidents({ service: "touchy" })).find((i) => i.id === inc.id && i.recoveredAt !== null));
      expect(healed.recoveredAt!).toBeGreaterThanOrEqual(inc.detectedAt);
      const r = await row(t.project, "touchy");
      expect(r?.restarts).toBe(1);
      expect(r?.state).toBe("running");
      expect(r?.pid).toBe(Number(lines(join(t.project.dir, "spawns.log"))[1]));
      // One stall alert, then one recovery once the new process stayed healthy for
      // recoveredAfter (1 s here, 30 s by default).
      const alerts = join(t.project.dir, "alerts.log");
      const line = await waitFor("recovered alert", () => lines(alerts).find((l) => l.includes('"kind":"recovered"')), 15_000);
      const sentAt = Number(line.slice(0, line.indexOf(" ")));
      expect(lines(alerts).filter((l) => l.includes('"kind":"stall"'))).toHaveLength(1);
      expect(sentAt - healed.recoveredAt!).toBeGreaterThanOrEqual(1000);
      expect(sentAt - healed.recoveredAt!).toBeLessThan(10_000);
    } finally {
      await store.close();
    }
  });

  it("treats a probe that stops answering as a probe incident and replaces the process", async () => {
    const port = await freePort();
    t.project = makeProject(
      `services:
  api: { command: [node, api.mjs], probe: "http://127.0.0.1:${port}/health" }
supervision: { stallAfter: 1500ms, killTimeout: 1s }
http: { enabled: false }
`,
      {
        // First process: answers for ~2 s, then hangs every request. Later ones answer.
        "api.mjs": `import { appendFileSync, readFileSync } from "node:fs"; import { createServer } from "node:http";
appendFileSync("spawns.log", process.pid + "\\n");
const first = readFileSync("spawns.log", "utf8").trim().split("\\n").length === 1;
const t0 = Date.now();
createServer((req, res) => { if (first && Date.now() - t0 > 2000) return; res.end("ok"); }).listen(${port}, "127.0.0.1");`,
      },
    );
    t.runs.push(startVigil(t.project));
    const store = await openProjectStore(t.project);
    try {
      const inc = await waitFor("probe incident", async () => (await store.listIncidents({ service: "api" })).find((i) => i.cause === "probe"));
      expect(String(inc.detail.reason)).toMatch(/probe failing/);
      await waitFor("recovered", async () => (await store.listIncidents({ service: "api" })).find((i) => i.id === inc.id && i.recoveredAt !== null));
      await waitFor("second process running", async () => (await row(t.project!, "api"))?.state === "running" && lines(join(t.project!.dir, "spawns.log")).length === 2);
    } finally {
      await store.close();
    }
  });

  it("restarts a process that grows past maxMemory, with a memory incident", async () => {
    t.project = makeProject(
      `services:
  hog: { command: [node, hog.mjs], maxMemory: 120mb }
supervision: { stallAfter: 2s, killTimeout: 1s }
http: { enabled: false }
`,
      {
        "hog.mjs": `import { appendFileSync, readFileSync } from "node:fs";
appendFileSync("spawns.log", process.pid + "\\n");
const first = readFileSync("spawns.log", "utf8").trim().split("\\n").length === 1;
const keep = [];
setInterval(() => { if (first && keep.length < 40) keep.push(Buffer.alloc(8 << 20, 1)); }, 50);`,
      },
    );
    t.runs.push(startVigil(t.project));
    const store = await openProjectStore(t.project);
    try {
      const inc = await waitFor("memory incident", async () => (await store.listIncidents({ service: "hog" })).find((i) => i.cause === "memory"));
      expect(inc.detail.rssBytes as number).toBeGreaterThan(120 << 20);
      expect(inc.detail.maxMemory).toBe(120 << 20);
      await waitFor("replaced", () => lines(join(t.project!.dir, "spawns.log")).length === 2);
      const s = await waitFor("snapshot", () => snapshot(t.project!));
      expect(s.services[0]!.restarts).toBe(1);
    } finally {
      await store.close();
    }
  });
});
