/**
 * The watchdog thread in a real `vigil worker` (run `npm run build` first): a handler
 * stuck in `for (;;) {}` blocks the main loop; the stack file names its file and function.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import { parseBlockedStack } from "../../src/worker/watchdog.js";
import { waitFor } from "./supervisor-helpers.js";
import { killAll, removeProject, started, startWorker, workerProject } from "./worker-helpers.js";

const p = workerProject(
  `
store: sqlite:vigil.db
queues:
  spin: { handler: ./spin.mjs }
`,
  {
    "spin.mjs": `export default async function spinForever(job) {
  let n = 0;
  for (;;) { n++; }
}`,
  },
);

afterEach(() => killAll());
afterAll(() => removeProject(p));

describe("watchdog", () => {
  it("writes the blocked main thread's stack, naming the handler's file and function", async () => {
    const stackFile = join(p.dir, "stack.json");
    const w = startWorker(p, "spin-1", "spin", { VIGIL_STACK_FILE: stackFile });
    await started(w);
    const store = await openStore(`sqlite:${p.db}`);
    try {
      await store.enqueue("spin", {});
    } finally {
      await store.close();
    }
    const stack = await waitFor("the stack file", () => {
      try {
        return parseBlockedStack(readFileSync(stackFile, "utf8"));
      } catch {
        return null;
      }
    });
    expect(stack.pid).toBe(w.pid);
    const top = stack.frames[0]!;
    expect(top.functionName).toBe("spinForever");
    expect(top.url).toMatch(/spin\.mjs$/);
    expect(top.line).toBe(3);
  });
});
