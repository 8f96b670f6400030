/**
 * Command handlers with real child processes: JSON in, JSON out, failures with stderr's
 * tail, a group killed whole (checked in /proc), bounded stdout.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NonRetryableError } from "../../src/core/errors.js";
import { commandHandler } from "../../src/handlers/command.js";
import { COMMAND_TOKEN_ENV, CommandRegistry, killOrphanCommands, type CommandGroup } from "../../src/handlers/command-registry.js";
import type { Handler, HandlerContext, HandlerJob } from "../../src/handlers/types.js";
import { groupMembers, isAlive, killGroup, procInfo, spawnGroup } from "../../src/os/process.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import { Worker } from "../../src/worker/worker.js";
import { waitFor } from "../e2e/supervisor-helpers.js";

const silent = pino({ level: "silent" });
const node = process.execPath;
let dir: string;
const spawnedGroups: number[] = [];

const job: HandlerJob = {
  id: 7,
  queue: "qa",
  payload: { text: "hello" },
  key: "k",
  attempt: 2,
  createdAt: 0,
  source: null,
  parentId: null,
  rootId: null,
};

function ctx(signal = new AbortController().signal): HandlerContext {
  return { signal, heartbeat: () => {}, log: silent };
}

/** Runs a handler once, always as a promise. */
function call(h: Handler, c: HandlerContext = ctx()): Promise<unknown> {
  return Promise.resolve(h(job, c));
}

function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

/** Gone, or a zombie waiting for its parent: either way it runs no more. */
function dead(pid: number): boolean {
  const info = procInfo(pid);
  return info === null || info.state === "Z";
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-cmd-"));
});

afterAll(() => {
  for (const pgid of spawnedGroups) killGroup(pgid, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("commandHandler", () => {
  it("passes the job on stdin and returns JSON stdout as the result", async () => {
    const echo = script(
      "echo.mjs",
      `let s = ""; process.stdin.on("data", (d) => (s += d)); process.stdin.on("end", () => {
         const job = JSON.parse(s);
         console.log(JSON.stringify({ job, cwd: process.cwd(), env: process.env.STAGE, id: process.env.VIGIL_JOB_ID }));
       });`,
    );
    const h = commandHandler({ command: [node, echo], env: { STAGE: "qa-env" }, cwd: dir });
    const result = (await h(job, ctx())) as Record<string, unknown>;
    expect(result.job).toEqual({ id: 7, queue: "qa", payload: { text: "hello" }, key: "k", attempt: 2 });
    expect(result.cwd).toBe(dir);
    expect(result.env).toBe("qa-env");
    expect(result.id).toBe("7");
  });

  it("turns stdout that is not JSON into { stdout }, and empty stdout into null", async () => {
    const text = script("text.mjs", `process.stdout.write("all good\\nsecond line\\n");`);
    expect(await commandHandler({ command: [node, text] })(job, ctx())).toEqual({ stdout: "all good\nsecond line" });
    const quiet = script("quiet.mjs", ``);
    expect(await commandHandler({ command: [node, quiet] })(job, ctx())).toBeNull();
  });

  it("logs a successful command's stderr once, on the job's log", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    const chatty = script("chatty.mjs", `process.stderr.write("fetching 3 pages\\nslow answer from upstream\\n"); console.log(JSON.stringify({ ok: 1 }));`);
    expect(await commandHandler({ command: [node, chatty] })(job, { ...ctx(), log })).toEqual({ ok: 1 });
    expect(lines.map((l) => [l["msg"], l["stderr"]])).toEqual([["command wrote to stderr", "fetching 3 pages\nslow answer from upstream"]]);
    // Nothing on stderr: nothing logged.
    const quiet = script("quiet2.mjs", `console.log("{}");`);
    await commandHandler({ command: [node, quiet] })(job, { ...ctx(), log });
    expect(lines).toHaveLength(1);
  });

  it("fails with the tail of stderr on a non-zero exit", async () => {
    const fail = script(
      "fail.mjs",
      `process.stderr.write("EARLY-MARKER\\n" + "x".repeat(10000) + "\\nTraceback: the real cause\\n"); process.exit(3);`,
    );
    const err = await call(commandHandler({ command: [node, fail] })).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain("exited with code 3");
    expect(err!.message).toContain("Traceback: the real cause");
    expect(err!.message).not.toContain("EARLY-MARKER");
    expect(err!.message.length).toBeLessThan(4096 + 200);
  });

  it("kills the whole process group when aborted, leaving no orphan", async () => {
    const pidFile = join(dir, "grandchild.pid");
    const parent = script(
      "parent.mjs",
      `import { spawn } from "node:child_process"; import { renameSync, writeFileSync } from "node:fs";
       process.on("SIGTERM", () => {}); // ignores SIGTERM: only SIGKILL ends it
       const c = spawn(process.execPath, ["-e", "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], { stdio: "ignore" });
       writeFileSync(${JSON.stringify(pidFile + ".tmp")}, process.pid + " " + c.pid);
       renameSync(${JSON.stringify(pidFile + ".tmp")}, ${JSON.stringify(pidFile)}); // never seen half-written
       setInterval(() => {}, 1000);`,
    );
    const ac = new AbortController();
    const running = call(commandHandler({ command: [node, parent], termGraceMs: 300 }), ctx(ac.signal));
    const [leader, grandchild] = (
      await waitFor("the pid file", () => {
        try {
          return readFileSync(pidFile, "utf8");
        } catch {
          return null;
        }
      })
    )
      .split(" ")
      .map(Number) as [number, number];
    spawnedGroups.push(leader);
    expect(procInfo(grandchild)!.pgid).toBe(leader);
    expect(groupMembers(leader).sort()).toEqual([leader, grandchild].sort());
    ac.abort(new Error("timed out after 100 ms"));
    const err = await running.then(
      () => null,
      (e: Error) => e,
    );
    expect(err!.message).toContain("was stopped: timed out after 100 ms");
    await waitFor("the group to be gone", () => groupMembers(leader).length === 0 && dead(grandchild) && dead(leader));
    // The leader may linger a moment as an unreaped zombie, which kill(-pgid, 0) still sees.
    await waitFor("the group's leader to be reaped", () => !isAlive(-leader));
    expect(isAlive(-leader)).toBe(false);
  });

  it("bounds stdout: over maxOutput the program is killed and the attempt fails", async () => {
    const flood = script(
      "flood.mjs",
      `const chunk = "y".repeat(65536); function go() { while (process.stdout.write(chunk)) {} process.stdout.once("drain", go); } go();`,
    );
    const err = await call(commandHandler({ command: [node, flood], maxOutput: 256 * 1024 })).then(
      () => null,
      (e: Error) => e,
    );
    expect(err!.message).toContain("printed more than 262144 bytes on stdout");
  });

  it("refuses a missing program without retries", async () => {
    const err = await call(commandHandler({ command: [join(dir, "no-such-program")] })).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(NonRetryableError);
    expect(err!.message).toContain("cannot run");
  });

  it("under a Worker, a timeout kills the group and records a timeout attempt", async () => {
    const slow = script("slow.mjs", `setInterval(() => {}, 1000);`);
    // The real registry, noting the groups it is told about (known at spawn, however slow
    // the program is to start on a busy machine).
    class Noting extends CommandRegistry {
      readonly seen: Pick<CommandGroup, "pgid" | "jobId">[] = [];
      private readonly jobs = new Map<string, number>();
      override reserve(jobId: number, argv: string[]): string {
        const token = super.reserve(jobId, argv);
        this.jobs.set(token, jobId);
        return token;
      }
      override started(token: string, pgid: number): void {
        this.seen.push({ pgid, jobId: this.jobs.get(token)! });
        super.started(token, pgid);
      }
    }
    const registry = new Noting(join(dir, "commands"), "test-worker");
    const store = await openSqliteStore(join(dir, "vigil.db"));
    const w = new Worker(store, {
      queues: { slow: { handler: commandHandler({ command: [node, slow], registry }), timeout: 300, attempts: 1 } },
      logger: silent,
    }).start();
    try {
      const { job: j } = await store.enqueue("slow", {});
      const done = await waitFor("dead", async () => {
        const x = await store.get(j.id);
        return x?.state === "dead" ? x : null;
      });
      expect(done.history.map((h) => h.outcome)).toEqual(["timeout"]);
      expect(registry.seen.map((g) => g.jobId)).toEqual([j.id]);
      const pgid = registry.seen[0]!.pgid;
      spawnedGroups.push(pgid);
      await waitFor("the program to be gone", () => dead(pgid) && groupMembers(pgid).length === 0);
      // Gone from the registry file too once it ended.
      await waitFor("the registry to be empty", () => JSON.parse(readFileSync(join(dir, "commands", `${process.pid}.json`), "utf8")).groups.length === 0);
    } finally {
      await w.stop({ timeoutMs: 0 });
      await store.close();
    }
  });

  it("records a command before it starts: the program finds its own record in the registry file", async () => {
    const regDir = join(dir, "commands-reserve");
    const registry = new CommandRegistry(regDir, "test-worker");
    const check = script(
      "check-record.mjs",
      `import { readFileSync } from "node:fs";
const token = process.env.${COMMAND_TOKEN_ENV};
const reg = JSON.parse(readFileSync(process.argv[2], "utf8"));
console.log(JSON.stringify({ token: typeof token, recorded: reg.groups.some((g) => g.token === token && g.jobId === Number(process.env.VIGIL_JOB_ID)) }));`,
    );
    const h = commandHandler({ command: [node, check, join(regDir, `${process.pid}.json`)], registry });
    expect(await call(h)).toEqual({ token: "string", recorded: true });
    // Removed once it ended.
    expect(JSON.parse(readFileSync(join(regDir, `${process.pid}.json`), "utf8")).groups).toEqual([]);
  });

  it("a record made before its command started (no group id yet) still ends the orphan of a dead worker", async () => {
    const regDir = join(dir, "commands-orphan");
    mkdirSync(regDir, { recursive: true });
    // A worker pid that is gone: a real process that has exited.
    const gone = spawnGroup([node, "-e", ""], { stdio: "ignore" });
    await new Promise((r) => gone.once("exit", r));
    const token = "b1c7e0a2-orphan-test";
    const orphan = spawnGroup([node, "-e", "setInterval(() => {}, 1000)"], { stdio: "ignore", env: { ...process.env, VIGIL_JOB_ID: "42", [COMMAND_TOKEN_ENV]: token } });
    spawnedGroups.push(orphan.pid!);
    await waitFor("the orphan to run", () => groupMembers(orphan.pid!).length > 0);
    const record = (jobId: number, t: string) =>
      writeFileSync(join(regDir, `${gone.pid}.json`), JSON.stringify({ workerPid: gone.pid, workerId: "w", groups: [{ pgid: 0, jobId, argv: [node], startedAt: Date.now(), token: t }] }));
    record(42, token);
    const killed = killOrphanCommands(regDir);
    expect(killed.map((g) => ({ pgid: g.pgid, jobId: g.jobId }))).toEqual([{ pgid: orphan.pid, jobId: 42 }]);
    await waitFor("the orphan to be gone", () => groupMembers(orphan.pid!).length === 0);
    // A token nobody carries kills nothing.
    record(43, "nobody");
    expect(killOrphanCommands(regDir)).toEqual([]);
  });
});
