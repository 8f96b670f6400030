/**
 * The supervisor's queue-counts cache over a real SQLite store, with a hand-moved clock:
 * counts are reused while fresh, re-read after a second, read less often when a read is
 * slow, and callers asking at once share one read.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { QueueCountsCache } from "../../src/supervisor/counts-cache.js";
import { tempStore, type TempStore } from "./ops-fixtures.js";

describe("queue counts cache", () => {
  let t: TempStore;
  let clock: ManualClock;
  let reads: number;
  /** How long (on the hand-moved clock) each read takes. */
  let readCostMs: number;
  let cache: QueueCountsCache;

  beforeEach(async () => {
    clock = new ManualClock(1_000_000);
    t = await tempStore(clock);
    reads = 0;
    readCostMs = 0;
    cache = new QueueCountsCache(
      async () => {
        reads++;
        const counts = await t.store.stats();
        clock.advance(readCostMs);
        return counts;
      },
      1000,
      () => clock.now(),
    );
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it("reuses a read for a second, then reads again and sees new jobs", async () => {
    await t.store.enqueue("q", 1);
    expect((await cache.get())["q"]!.waiting).toBe(1);
    await t.store.enqueue("q", 2);
    clock.advance(999);
    expect((await cache.get())["q"]!.waiting).toBe(1);
    expect(reads).toBe(1);
    clock.advance(1);
    expect((await cache.get())["q"]!.waiting).toBe(2);
    expect(reads).toBe(2);
  });

  it("reads a slow store at most every 50 read-times, and shares one read among callers", async () => {
    readCostMs = 200;
    const [a, b, c] = await Promise.all([cache.get(), cache.get(), cache.get()]);
    expect(reads).toBe(1);
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(cache.maxAgeMs).toBe(10_000);
    clock.advance(9_999);
    await cache.get();
    expect(reads).toBe(1);
    clock.advance(1);
    readCostMs = 10;
    await cache.get();
    expect(reads).toBe(2);
    // Cheap again: back to the one-second floor.
    expect(cache.maxAgeMs).toBe(1000);
  });
});
