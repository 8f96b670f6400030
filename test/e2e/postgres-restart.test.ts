/**
 * A PostgreSQL restart in the middle of a run. A child process drains jobs with a
 * claim/complete loop while this test restarts the server with pg_ctlcluster. While it is
 * down, calls fail with STORE_UNREACHABLE (no crash, no unhandled 'error'); once it is
 * back, the loop carries on and every job completes exactly once. The server is left
 * running (checked with pg_isready).
 *
 * Other test files that use the same server see the outage too; it lasts a second or two.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { VigilError } from "../../src/core/errors.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchemaName, PG_URL, pgCtl, pgIsReady, requirePg } from "../store-contract/pg-helpers.js";

const JOBS = 3000;
const LOOP = resolve("test/e2e/fixtures/pg-claim-loop.ts");

const canRestart = existsSync("/etc/postgresql") && existsSync("/usr/bin/pg_ctlcluster");
if (!canRestart && process.env.CI === "true") {
  throw new Error("pg_ctlcluster and /etc/postgresql are needed to restart PostgreSQL (CI=true: failing, not skipping)");
}
if (!canRestart) console.warn("\n!!! SKIPPED: pg_ctlcluster is not available to restart PostgreSQL\n");
const ready = canRestart && (await requirePg("the PostgreSQL restart test"));


/** Polls `cond` until it holds; fails after `ms` (generous: a shared 2-core machine). */
async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Event = { t: string; ids?: number[]; op?: string; retry?: boolean };

describe.runIf(ready)("PostgreSQL restart in the middle of a run", () => {
  const schema = freshSchemaName("vigil_restart");
  let store: Store | null = null;
  let child: ChildProcess | null = null;

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    // Whatever happened above, leave the server running for everyone else.
    if (!(await pgIsReady())) {
      await pgCtl("start").catch(() => {});
      await waitFor(pgIsReady, "PostgreSQL to start again", 60_000);
    }
    await store?.close();
    await dropSchema(schema);
  });

  it("calls fail with STORE_UNREACHABLE while it is down, then every job completes exactly once", async () => {
    store = await openPostgresStore(PG_URL, { schema });
    for (let i = 0; i < JOBS; i += 1000) {
      await store.enqueueMany(Array.from({ length: 1000 }, (_, j) => ({ queue: "q", payload: { n: i + j } })));
    }
    const ids = (await store.list({ queue: "q", limit: 0 })).map((j) => j.id);
    expect(ids.length).toBe(JOBS);
    const heard: string[] = [];
    store.subscribe((q) => heard.push(q));

    const events: Event[] = [];
    let stderr = "";
    child = spawn(process.execPath, ["--import", "tsx", LOOP, PG_URL, schema], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((done) => {
      child!.on("error", (err) => {
        stderr += String(err);
        done(-1);
      });
      child!.on("close", (code) => done(code));
    });
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const line of lines) if (line.trim()) events.push(JSON.parse(line) as Event);
    });
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const completed = () => events.filter((e) => e.t === "done").reduce((n, e) => n + e.ids!.length, 0);

    // Jobs are flowing: restart in the middle of the run.
    await waitFor(() => completed() >= 300 || child!.exitCode !== null, "the loop to complete 300 jobs");
    expect(child.exitCode).toBeNull();
    const seen: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        await store!.stats().then(
          () => seen.push("ok"),
          (err: unknown) => seen.push(err instanceof VigilError ? err.code : `other: ${String(err)}`),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await pgCtl("restart");
    await waitFor(pgIsReady, "pg_isready after the restart");
    await waitFor(() => seen.at(-1) === "ok", "this process's store to answer again");
    watching = false;
    await watcher;

    // This process never crashed and its store works again, wake-ups included.
    const outage = seen.filter((s) => s !== "ok");
    expect(outage.length).toBeGreaterThan(0);
    expect([...new Set(outage)]).toEqual(["STORE_UNREACHABLE"]);
    await store.enqueue("ping", { after: "restart" });
    await waitFor(() => heard.includes("ping"), "a wake-up after the restart");

    // The loop carried on to the end.
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r("still running"), 90_000))])).toBe(0);
    expect(stderr).not.toMatch(/Error/);
    expect(events.at(-1)).toEqual({ t: "end" });
    expect(events.some((e) => e.t === "unreachable")).toBe(true);

    const count = (t: string) => events.filter((e) => e.t === t).length;
    console.log(`restart: ${outage.length} failed polls here; the loop saw ${count("unreachable")} failed calls, ${count("unsure")} unsure completions`);
    // Every job completed, each exactly once.
    const stats = (await store.stats()).q!;
    expect(stats).toEqual({ scheduled: 0, waiting: 0, active: 0, completed: JOBS, failed: 0, dead: 0, cancelled: 0 });
    const confirmed = events.filter((e) => e.t === "done").flatMap((e) => e.ids!);
    expect(new Set(confirmed).size).toBe(confirmed.length);
    const unsure = new Set(events.filter((e) => e.t === "unsure").flatMap((e) => e.ids!));
    // A completion is only refused when its first try's reply was lost and that try had committed.
    const refused = events.filter((e) => e.t === "lost");
    expect(refused.filter((e) => !e.retry)).toEqual([]);
    for (const id of refused.flatMap((e) => e.ids!)) expect(unsure.has(id)).toBe(true);
    const accounted = new Set([...confirmed, ...refused.flatMap((e) => e.ids!)]);
    expect([...ids].filter((id) => !accounted.has(id))).toEqual([]);
    const jobs = await store.list({ queue: "q", limit: 0 });
    expect(jobs.every((j) => j.state === "completed" && typeof (j.result as { ranBy?: unknown }).ranBy === "string")).toBe(true);

    expect(await pgIsReady()).toBe(true);
  });
});
