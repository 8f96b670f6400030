/** `stopAll`: steps in order, each bounded; a failure or an overrun is reported and the rest still run. */
import { describe, expect, it } from "vitest";
import { stopAll, StopTimeoutError } from "../../src/core/stop-all.js";

describe("stopAll", () => {
  it("runs the steps in order, reports a failing and an overrunning step, and still runs the rest", async () => {
    const ran: string[] = [];
    const errors: [string, unknown][] = [];
    const started = Date.now();
    await stopAll(
      [
        { name: "a", stop: async () => void ran.push("a"), timeoutMs: 1000 },
        {
          name: "b",
          stop: () => {
            ran.push("b");
            throw new Error("b broke");
          },
          timeoutMs: 1000,
        },
        { name: "c", stop: () => new Promise(() => ran.push("c")), timeoutMs: 50 },
        { name: "d", stop: () => void ran.push("d"), timeoutMs: 1000 },
      ],
      (step, err) => errors.push([step, err]),
    );
    expect(ran).toEqual(["a", "b", "c", "d"]);
    expect(errors.map(([s, e]) => [s, (e as Error).message])).toEqual([
      ["b", "b broke"],
      ["c", "c did not stop within 50 ms"],
    ]);
    expect(errors[1]![1]).toBeInstanceOf(StopTimeoutError);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
