/**
 * A store error in the worker's own bookkeeping is the store's, not the handler's: a real
 * `vigil worker` on PostgreSQL whose connection is terminated (pg_terminate_backend, the
 * server stays up) exactly while it checks a next stage's `maxRounds` retries the check and
 * completes the job; the attempt is not charged, so a job with `attempts: 1` lives.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";
import { waitFor } from "./supervisor-helpers.js";
import { killAll, removeProject, started, startWorker, workerProject, type WorkerProject } from "./worker-helpers.js";

const ready = await requirePg("the worker bookkeeping test");

describe.runIf(ready)("a brief store error while checking maxRounds", () => {
  const schema = freshSchemaName("vigil_rounds");
  const url = `${PG_URL}?schema=${schema}`;
  let p: WorkerProject | undefined;
  let store: Store | undefined;
  const lock = new pg.Client({ connectionString: PG_URL });
  lock.on("error", () => {});

  afterAll(async () => {
    await lock.end().catch(() => {});
    await killAll();
    await store?.close();
    await dropSchema(schema);
    if (p) removeProject(p);
  });

  it("is retried: the job completes and hands on, no attempt is charged", async () => {
    p = workerProject(
      `store: ${url}
queues:
  a: { handler: ./a.mjs, next: b, attempts: 1, lease: 30s }
  b: { handler: ./b.mjs, maxRounds: 3 }
`,
      {
        // Runs until the test says go (so the test can hold the jobs table first); says when it returns.
        "a.mjs": `import { existsSync, writeFileSync } from "node:fs";
export default async function a(job) {
  const go = new URL("./go", import.meta.url);
  while (!existsSync(go)) await new Promise((r) => setTimeout(r, 20));
  writeFileSync(new URL("./done", import.meta.url), "");
  return { from: job.id };
}`,
        "b.mjs": `export default async function b(job) { return job.payload; }`,
      },
    );
    store = await openStore(url);
    const w = startWorker(p, "rounds-w", "a,b");
    await started(w);
    const { job } = await store.enqueue("a", { n: 1 });
    const s = store;
    await waitFor("job a to run", async () => (await s.get(job.id))?.state === "active");

    // Hold the jobs table so the worker's rounds check waits on the lock, then end its
    // connection. A read that waits shows in pg_locks as an ungranted AccessShareLock (the
    // worker's claims and renewals write, and wait for stronger locks); pg_stat_activity may
    // still show the connection's previous statement while it waits, so it is not used.
    await lock.connect();
    await lock.query("BEGIN");
    await lock.query(`LOCK TABLE "${schema}".jobs IN ACCESS EXCLUSIVE MODE`);
    const goAt = (await lock.query<{ t: Date }>("SELECT clock_timestamp() AS t")).rows[0]!.t;
    writeFileSync(join(p.dir, "go"), "");
    const dir = p.dir;
    const readers = async (since?: Date) =>
      (
        await lock.query<{ pid: number }>(
          `SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE NOT l.granted AND l.mode = 'AccessShareLock' AND a.application_name = $1
             AND ($2::timestamptz IS NULL OR l.waitstart >= $2::timestamptz)`,
          [`vigil:${schema}`, since ?? null],
        )
      ).rows.map((r) => r.pid);
    await waitFor("the worker's rounds check to wait on the lock", async () =>
      existsSync(join(dir, "done")) && (await readers(goAt)).length > 0,
    );
    for (const pid of await readers()) await lock.query("SELECT pg_terminate_backend($1)", [pid]);
    await lock.query("ROLLBACK");

    const done = await waitFor("job a to finish", async () => {
      const j = await s.get(job.id);
      return j && (j.state === "completed" || j.state === "dead" || j.state === "failed") ? j : null;
    }, 60_000);
    expect({ state: done.state, error: done.error, history: done.history }).toEqual({ state: "completed", error: null, history: [] });
    const next = await s.list({ rootId: job.id, queue: "b", limit: 0 });
    expect(next).toHaveLength(1);
    // The worker saw the error, as a store error.
    await waitFor("the store error in the worker's log", () =>
      w.logs().some((l) => String(l.msg).includes("store error while checking maxRounds")),
    );
  });
});
