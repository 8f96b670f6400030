/**
 * Values a store cannot hold, through the real command and real worker processes: `vigil
 * enqueue` refuses them with a BAD_INPUT sentence (not a driver error), on both stores; and
 * under `vigil start` on PostgreSQL, a completion the server refuses (a CHECK constraint
 * added to the test schema) kills that job alone, the rest of its batch commits, the worker
 * goes on, and the refusal is an incident `vigil incidents` shows.
 */
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import { dropSchema, freshSchemaName, PG_URL, pgExec, requirePg } from "../store-contract/pg-helpers.js";
import { allRunning, cleanUp, makeProject, startVigil, supervisorTest, vigil, waitFor } from "./supervisor-helpers.js";

const t = supervisorTest();
const hasPg = await requirePg("the refused-value end-to-end tests on PostgreSQL");

/** Each stage-`a` job hands its payload on to `b`; the one marked `bad` hands on "poison". */
const HANDLER = `export default async function (job) {
  return { next: "b", payload: job.payload.bad ? "poison" : { i: job.payload.i } };
}
`;

const yaml = (store: string) => `${store}
queues:
  a: { handler: ./stage.mjs, concurrency: 50 }
  b: { handler: ./done.mjs, concurrency: 50 }
services:
  workers: { queues: [a, b] }
http: { enabled: false }
`;

const stores: [string, () => string, () => Promise<void>][] = [["sqlite", () => "", async () => {}]];
if (hasPg) {
  const schema = freshSchemaName("vigil_refused_e2e");
  stores.push(["postgres", () => `store: ${PG_URL}\nschema: ${schema}`, () => dropSchema(schema)]);
}

describe.each(stores)("vigil enqueue on %s", (_name, storeLines, drop) => {
  it("refuses a priority, delay or key the store cannot hold with a BAD_INPUT sentence, writing nothing", async () => {
    t.project = makeProject(yaml(storeLines()), { "stage.mjs": HANDLER, "done.mjs": "export default async () => 'done';\n" });
    try {
      expect(vigil(t.project, ["migrate"]).status).toBe(0);
      const cases: [string[], RegExp][] = [
        [["--priority", "2147483648"], /^vigil: priority 2147483648 is out of range: use a whole number from -2147483648 to 2147483647/],
        [["--priority", "-2147483649"], /^vigil: priority -2147483649 is out of range/],
        [["--delay", "4000d"], /^vigil: delayMs 345600000000 is too long: at most 315360000000 ms \(10 years\)/],
        [["--key", "k".repeat(4000)], /^vigil: key is 4000 characters long: at most 512 characters/],
      ];
      for (const [flags, says] of cases) {
        const r = vigil(t.project, ["enqueue", "a", "{}", ...flags]);
        expect(r.status, r.stderr).toBe(1);
        expect(r.stderr).toMatch(says);
        expect(r.stderr).not.toMatch(/DatabaseError|out of range for type/);
      }
      const list = vigil(t.project, ["jobs", "list", "--json"]);
      expect(JSON.parse(list.stdout)).toEqual([]);
      // The limit itself is fine.
      expect(vigil(t.project, ["enqueue", "a", "{}", "--priority", "2147483647", "--delay", "1h"]).status).toBe(0);
    } finally {
      await drop();
    }
  });
});

describe.skipIf(!hasPg)("vigil start on PostgreSQL", () => {
  it("a completion the server refuses kills that job alone; the worker goes on and records an incident", async () => {
    const schema = freshSchemaName("vigil_refused_e2e");
    t.project = makeProject(yaml(`store: ${PG_URL}\nschema: ${schema}`), {
      "stage.mjs": HANDLER,
      "done.mjs": "export default async () => 'done';\n",
    });
    try {
      expect(vigil(t.project, ["migrate"]).status).toBe(0);
      await pgExec(`ALTER TABLE "${schema}".jobs ADD CONSTRAINT no_poison CHECK (payload <> '"poison"')`);
      t.runs.push(startVigil(t.project));
      await allRunning(t.project, t.runs[0]);
      t.store = await openStore(PG_URL, { schema });
      const results = await t.store.enqueueMany(Array.from({ length: 100 }, (_, i) => ({ queue: "a", payload: { i, bad: i === 50 } })));
      const poisoned = results[50]!.job.id;

      const incident = await waitFor("a store-refused incident", async () =>
        (await t.store!.listIncidents({ service: "workers" })).find((i) => i.cause === "store-refused"),
      );
      expect(incident.detail).toMatchObject({ jobId: poisoned, queue: "a", errorCode: "23514" });
      expect(String(incident.detail["error"])).toMatch(/no_poison/);
      // The worker went on: recorded and recovered at once.
      expect(incident.recoveredAt).toBe(incident.detectedAt);
      const dead = await t.store.get(poisoned);
      expect(dead?.state).toBe("dead");
      expect(dead?.error).toMatch(/the store refused it/);
      await waitFor("the other 99 handed on and completed", async () => {
        const s = await t.store!.stats();
        return s["a"]?.completed === 99 && s["b"]?.completed === 99 && s["a"]?.active === 0;
      });
      // And it still claims.
      const more = await t.store.enqueue("a", { i: 100 });
      await waitFor("one more job completed", async () => (await t.store!.get(more.job.id))?.state === "completed");

      const shown = JSON.parse(vigil(t.project, ["incidents", "--json"]).stdout) as { cause: string; detail: { jobId: number } }[];
      expect(shown.filter((i) => i.cause === "store-refused").map((i) => i.detail.jobId)).toEqual([poisoned]);
      const table = vigil(t.project, ["incidents"]).stdout.split("\n").find((l) => l.includes("store-refused"));
      expect(table).toMatch(new RegExp(`job ${poisoned} \\(a\\); new row for relation "jobs" violates check constraint "no_poison"`));
    } finally {
      // Stopped before its schema goes.
      await t.store?.close();
      t.store = null;
      await cleanUp(t.project, t.runs);
      t.project = null;
      t.runs = [];
      await dropSchema(schema);
    }
  });
});
