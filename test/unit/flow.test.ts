/** The flow-control arithmetic both stores share (src/store/flow.ts). */
import { describe, expect, it } from "vitest";
import type { Lease } from "../../src/core/types.js";
import { allowance, pickGrouped, rateRoom, START_SLACK_MS } from "../../src/store/flow.js";
import { FLOW_PREFETCH_WAIT_MS, LeaseBuffer } from "../../src/worker/lease-buffer.js";

const SPAN = 1000 + START_SLACK_MS;

describe("rate window", () => {
  it("is sliding: N starts at the end of one second leave no room at the start of the next", () => {
    const rate = { count: 20, intervalMs: 1000 };
    // A fixed window would reset at t=1000 and allow 20 more: 40 in [990, 1990).
    const starts = [{ at: 990, n: 20 }];
    expect(rateRoom(rate, starts, 1000)).toEqual({ left: 0, freeAt: 990 + SPAN });
    expect(rateRoom(rate, starts, 990 + SPAN - 1).left).toBe(0);
    expect(rateRoom(rate, starts, 990 + SPAN)).toEqual({ left: 20, freeAt: null });
  });

  it("frees as soon as enough of the oldest starts have left, and counts starts dated after now", () => {
    const rate = { count: 5, intervalMs: 1000 };
    const starts = [
      { at: 100, n: 2 },
      { at: 300, n: 2 },
      { at: 500, n: 1 },
    ];
    expect(rateRoom(rate, starts, 600)).toEqual({ left: 0, freeAt: 100 + SPAN });
    // A claimer whose clock is behind still sees the starts recorded ahead of it.
    expect(rateRoom(rate, starts, 50).left).toBe(0);
  });

  it("allowance takes the smaller of limit and rate room and says why", () => {
    const a = allowance("queue q", 10, { limit: 5, rate: { count: 3, intervalMs: 60_000 } }, { active: 1, starts: [] }, 0);
    expect(a.take).toBe(3);
    expect(a.hold).toEqual({ until: 60_000 + START_SLACK_MS, reason: "queue q: rate 3/1m reached, next start in 1m 0s" });
    const b = allowance("queue q", 10, { limit: 4 }, { active: 3, starts: [] }, 0);
    expect(b).toEqual({ take: 1, hold: { until: null, reason: "queue q: limit 4 reached (3 active)" } });
    expect(allowance("queue q", 2, { limit: 4 }, { active: 0, starts: [] }, 0)).toEqual({ take: 2 });
  });
});

describe("groups", () => {
  it("skips a full group's jobs and takes the next groups' in claim order", () => {
    const flow = { group: { by: "customer", limit: 1 } };
    const candidates = [
      { id: 1, group: "a" },
      { id: 2, group: "a" },
      { id: 3, group: "b" },
      { id: 4, group: "a" },
      { id: 5, group: "c" },
    ];
    const pick = pickGrouped("q", flow, candidates, 10, { active: new Map([["c", 1]]), starts: new Map() }, 0);
    expect(pick.ids).toEqual([1, 3]);
    expect([...pick.perGroup]).toEqual([["a", 1], ["b", 1]]);
    expect(pick.hold?.reason).toMatch(/^queue q group customer=(a|c): limit 1 reached \(1 active\)$/);
  });
});

describe("claim-ahead of a rate-limited queue", () => {
  it("holds what its slots together start within the wait, not what one slot would", () => {
    const buffer = new LeaseBuffer(["q"]);
    buffer.ran("q", 0.5);
    // One slot: 20 ms of 0.5 ms handlers. Fifty slots start fifty times as many in 20 ms.
    expect(buffer.room("q", 10_000, FLOW_PREFETCH_WAIT_MS)).toBe(40);
    expect(buffer.room("q", 10_000, FLOW_PREFETCH_WAIT_MS, 50)).toBe(2000);
    expect(buffer.room("q", 1000, FLOW_PREFETCH_WAIT_MS, 50)).toBe(1000);
    for (let i = 0; i < 30; i++) buffer.add({ jobId: i, job: { queue: "q" } } as Lease, Infinity);
    expect(buffer.room("q", 10_000, FLOW_PREFETCH_WAIT_MS, 50)).toBe(1970);
    // Slow handlers lease nothing ahead, whatever the slots.
    buffer.ran("q", 500);
    expect(buffer.room("q", 10_000, FLOW_PREFETCH_WAIT_MS, 50)).toBe(0);
  });
});
