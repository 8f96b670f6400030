/**
 * How a worker gives jobs back unrun (src/worker/give-backs.ts), against real stores: the
 * wrapper below only counts calls, every verb runs on the store itself.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { LeaseRef } from "../../src/core/types.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import { openSqliteStore } from "../../src/store/sqlite/store.js";
import type { Store } from "../../src/store/store.js";
import { Worker } from "../../src/worker/worker.js";
import { wrap } from "./fixtures/wrap-store.js";
import { waitFor } from "../e2e/supervisor-helpers.js";
import { dropSchema, freshSchemaName, PG_URL, requirePg } from "../store-contract/pg-helpers.js";

const silent = pino({ level: "silent" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Opened = { store: Store; cleanup: () => Promise<void> };

async function sqlite(): Promise<Opened> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-give-back-"));
  return { store: await openSqliteStore(join(dir, "vigil.db")), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
}

async function postgres(): Promise<Opened> {
  const schema = freshSchemaName("vigil_give_back");
  return { store: await openPostgresStore(PG_URL, { schema }), cleanup: () => dropSchema(schema) };
}

const stores: [string, () => Promise<Opened>, boolean][] = [
  ["sqlite", sqlite, true],
  ["postgres", postgres, await requirePg("giving jobs back on PostgreSQL")],
];

for (const [name, open, available] of stores) {
  describe.runIf(available)(`a worker giving jobs back: ${name}`, () => {
    let opened: Opened | undefined;
    let worker: Worker | undefined;
    afterEach(async () => {
      await worker?.stop();
      await opened?.store.close();
      await opened?.cleanup();
      worker = opened = undefined;
    });

    it("gives back its whole claim-ahead buffer in one store call when its handlers turn slow", async () => {
      opened = await open();
      const { store } = opened;
      // Job 2 is slow (200 ms): by then jobs 3.. are held ahead, and its run makes the queue slow.
      await store.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ queue: "q", payload: i + 1 })));
      const single: number[] = [];
      const batches: number[] = [];
      const counted = wrap(store, {
        release: (lease: LeaseRef) => (single.push(lease.jobId), store.release(lease)),
        releaseMany: (leases: LeaseRef[]) => (batches.push(leases.length), store.releaseMany(leases)),
      });
      const done = new Set<number>();
      worker = new Worker(counted, {
        queues: {
          q: {
            concurrency: 1,
            handler: async (job) => {
              if (job.payload === 2) await sleep(200);
              done.add(job.payload as number);
            },
          },
        },
        logger: silent,
      });
      worker.start();
      await waitFor("every job done", () => done.size === 20, 30_000, 10);
      await worker.stop(); // commits every completion
      expect(single).toEqual([]);
      expect(batches.length).toBe(1);
      expect(batches[0]).toBeGreaterThan(1);
      // The jobs given back were claimed again and ran: none lost, none run twice.
      expect((await store.stats()).q?.completed).toBe(20);
    }, 60_000);
  });
}
