/**
 * One runner per trigger across hosts, on the local PostgreSQL (a fresh schema, dropped
 * afterwards): two runners with different hosts share one store; only the lock holder
 * polls, and when it vanishes without a word the other takes the trigger over within the
 * lock's TTL, from the cursor the first one left — nothing lost, nothing repeated.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store } from "../../src/store/store.js";
import { lockTtl, TriggerRunner } from "../../src/triggers/runner.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";

const hasPg = await requirePg("the multi-host trigger test");
const schema = freshSchemaName("vigil_trig");
let dir: string;
let storeA: Store;
let storeB: Store;

beforeAll(async () => {
  if (!hasPg) return;
  dir = mkdtempSync(join(tmpdir(), "vigil-trig-hosts-"));
  storeA = await openPostgresStore(PG_URL, { schema });
  storeB = await openPostgresStore(PG_URL, { schema });
});

afterAll(async () => {
  if (!hasPg) return;
  await storeA?.close();
  await storeB?.close();
  await dropSchema(schema);
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasPg)("triggers on several hosts", () => {
  it("hands a trigger over when its leader vanishes, with the cursor intact", async () => {
    const log = join(dir, "ideas.log");
    writeFileSync(log, "1\n2\n3\n");
    const yaml = "queues:\n  q: { command: [cat] }\ntriggers:\n  ideas: { tail: ideas.log, queue: q, every: 100ms }\n";
    const { config } = parseConfigText(yaml, join(dir, "vigil.yaml"));
    const runner = (store: Store, host: string) =>
      new TriggerRunner(store, { triggers: config.triggers, host, owner: `${host}:1`, maxPayload: config.maxPayload });
    const a = runner(storeA, "host-a");
    const b = runner(storeB, "host-b");

    await a.pollAll();
    await b.pollAll();
    expect(a.status()[0]).toMatchObject({ leader: true, seen: 3 });
    expect(b.status()[0]).toMatchObject({ leader: false, seen: 0 });

    // host-a vanishes (no stop, no unlock); lines keep arriving.
    appendFileSync(log, "4\n5\n");
    const deadline = Date.now() + lockTtl(100) + 20_000;
    while (!b.status()[0]!.leader && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      await b.pollAll();
    }
    expect(b.status()[0]).toMatchObject({ leader: true, seen: 2, error: null });

    // host-a comes back (a paused process waking up): it is no longer the leader.
    appendFileSync(log, "6\n");
    await a.pollAll();
    expect(a.status()[0]!.leader).toBe(false);
    await b.pollAll();

    const jobs = (await storeA.list({ queue: "q", limit: 0 })).sort((x, y) => x.id - y.id);
    expect(jobs.map((j) => (j.payload as { line: string }).line)).toEqual(["1", "2", "3", "4", "5", "6"]);
    await b.stop();
    await a.stop();
  });

  it("keeps the lock of a trigger that polls rarely through a step back of its wall clock", async () => {
    writeFileSync(join(dir, "rare.log"), "1\n");
    // Polled every 30 s: between polls only the keep-alive renews the 10 s lock.
    const yaml = "queues:\n  r: { command: [cat] }\ntriggers:\n  rare: { tail: rare.log, queue: r, every: 30s }\n";
    const { config } = parseConfigText(yaml, join(dir, "vigil.yaml"));
    let offset = 0;
    const clock = { now: () => Date.now() + offset, monotonic: () => performance.now() };
    const a = new TriggerRunner(storeA, { triggers: config.triggers, host: "host-a", owner: "host-a:2", clock, maxPayload: config.maxPayload });
    const b = new TriggerRunner(storeB, { triggers: config.triggers, host: "host-b", owner: "host-b:2", maxPayload: config.maxPayload });
    a.start();
    const leading = Date.now() + 20_000;
    while (!a.status()[0]!.leader && Date.now() < leading) await new Promise((r) => setTimeout(r, 50));
    expect(a.status()[0]!.leader).toBe(true);

    // NTP steps host-a's clock 15 s back; host-b keeps trying for longer than the lock's TTL.
    offset = -15_000;
    const until = Date.now() + lockTtl(30_000) + 3000;
    while (Date.now() < until) {
      await b.pollAll();
      expect(b.status()[0]!.leader).toBe(false);
      await new Promise((r) => setTimeout(r, 500));
    }
    await a.stop();
    await b.stop();
  });
});
