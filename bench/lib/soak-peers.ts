/**
 * `npm run bench -- soak --peers N`: claim rate with history kept, beside the PostgreSQL
 * peers. Each system gets a fresh store and one holding N completed jobs as its defaults
 * keep them, then one worker process (the throughput bench's child) drains 20,000 no-op
 * jobs at concurrency 50; the two stores alternate, `--runs` times.
 *
 * - Vigil keeps completed jobs in `jobs` until `vigil prune`: filled as bench/scale fills it.
 * - pg-boss 10 keeps completed jobs in its job table for `archiveCompletedAfterSeconds`
 *   (12 h) and then moves them to `archive`: filled with N completed rows finished over the
 *   last 10 hours, so they are still in the table its workers fetch from. Its `batchSize:
 *   1000` variant: with batchSize 1 it is held to a fetch per 2 s polling interval.
 * - Graphile Worker deletes a job when it completes: it keeps no completed history, so its
 *   only store is the empty one.
 */
import { median } from "./report.js";
import { drainInChild } from "./child.js";
import { PG_URL, pgQuery } from "./pg.js";
import { fill } from "./scale-fill.js";
import { loadTarget } from "./targets.js";
import type { TargetCtx } from "./target.js";
import { printTable } from "../../src/cli/output.js";

const DRAIN = 20_000;
const CAP_MS = 180_000;
const RUNS = 3;

interface Peer {
  key: string;
  /** Fills a created store with n completed jobs; null: the system keeps none. */
  fill: ((ctx: TargetCtx, n: number) => Promise<void>) | null;
}

const PEERS: Peer[] = [
  {
    key: "vigil-postgres:defaults",
    fill: (ctx, n) => {
      const schema = String(ctx["schema"]);
      return fill({ engine: "postgres", url: `${PG_URL}?schema=${schema}`, schema }, n);
    },
  },
  {
    key: "pg-boss:batch1000",
    fill: async (ctx, n) => {
      const S = `"${String(ctx["schema"])}"`;
      for (let from = 1; from <= n; from += 250_000) {
        await pgQuery(
          `INSERT INTO ${S}.job (name, data, state, created_on, start_after, started_on, completed_on, output)
           SELECT 'bench', jsonb_build_object('i', i, 'text', repeat('x', 90)), 'completed',
             now() - make_interval(secs => (($1::bigint - i) * 36000.0) / $1::bigint) - interval '10 ms',
             now() - make_interval(secs => (($1::bigint - i) * 36000.0) / $1::bigint) - interval '10 ms',
             now() - make_interval(secs => (($1::bigint - i) * 36000.0) / $1::bigint) - interval '4 ms',
             now() - make_interval(secs => (($1::bigint - i) * 36000.0) / $1::bigint), '{"ok":true}'::jsonb
           FROM generate_series($2::bigint, $3::bigint) AS i`,
          [n, from, Math.min(n, from + 249_999)],
        );
      }
      await pgQuery(`VACUUM ANALYZE ${S}.job`);
    },
  },
  { key: "graphile-worker:tuned", fill: null },
];

async function drainOnce(key: string, ctx: TargetCtx): Promise<number> {
  const target = await loadTarget(key);
  const producer = await target.openProducer(ctx);
  try {
    for (let from = 0; from < DRAIN; from += 1000) {
      await producer.enqueueBulk(Array.from({ length: Math.min(1000, DRAIN - from) }, (_, k) => ({ i: from + k, t: 0 })));
    }
  } finally {
    await producer.close();
  }
  return drainInChild(key, ctx, DRAIN, 50, CAP_MS);
}

export async function comparePeers(n: number): Promise<void> {
  process.stdout.write(`vigil bench soak --peers: drain of ${DRAIN} jobs at c50, fresh and with ${n} completed jobs kept, ${RUNS} runs alternating\n`);
  const rows: { system: string; scenario: string; value: number; unit: string }[] = [];
  for (const peer of PEERS) {
    const target = await loadTarget(peer.key);
    const stores: [string, TargetCtx][] = [["fresh", await target.create()]];
    try {
      if (peer.fill) {
        const ctx = await target.create();
        stores.push([String(n), ctx]);
        const t = performance.now();
        await peer.fill(ctx, n);
        process.stdout.write(`${peer.key}: ${n} completed jobs filled in ${Math.round((performance.now() - t) / 1000)} s\n`);
      }
      const rates = new Map<string, number[]>(stores.map(([l]) => [l, []]));
      for (let run = 0; run < RUNS; run++) {
        for (const [l, ctx] of stores) {
          const r = await drainOnce(peer.key, ctx);
          rates.get(l)!.push(r);
          process.stdout.write(`  ${peer.key} @${l} run ${run + 1}: ${Math.round(r)} jobs/s\n`);
        }
      }
      for (const [l] of stores) rows.push({ system: peer.key, scenario: `drain-c50@${l}`, value: Math.round(median(rates.get(l)!)), unit: "jobs/s" });
    } finally {
      for (const [, ctx] of stores) await target.destroy(ctx);
    }
  }
  process.stdout.write("\n");
  printTable(["system", "measure", "jobs/s (median)"], rows.map((r) => [r.system, r.scenario, r.value]));
  process.stdout.write(JSON.stringify({ bench: "soak-peers", rows }) + "\n");
}
