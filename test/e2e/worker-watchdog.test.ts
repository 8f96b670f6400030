/**
 * The watchdog thread in a real `vigil worker` (run `npm run build` first): a handler
 * stuck in `for (;;) {}` blocks the main loop; the stack file names its file and function.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import { parseBlockedStack } from "../../src/child/watchdog.js";
import { waitFor } from "./supervisor-helpers.js";
import { killAll, removeProject, started, startWorker, workerProject } from "./worker-helpers.js";

const p = workerProject(
  `
store: sqlite:vigil.db
queues:
  spin: { handler: ./spin.mjs }
  spints: { handler: ./spin.ts }
`,
  {
    "spin.ts": `export default async function spinTyped(job: { payload: { n: number } }): Promise<number> {
  let i: number = 0;
  for (;;) { i += job.payload.n; }
}`,
    "spin.mjs": `export default async function spinForever(job) {
  let n = 0;
  for (;;) { n++; }
}`,
  },
);

afterEach(() => killAll());
afterAll(() => removeProject(p));

async function enqueue(queue: string): Promise<void> {
  const store = await openStore(`sqlite:${p.db}`);
  try {
    await store.enqueue(queue, { n: 1 });
  } finally {
    await store.close();
  }
}

function stackIn(file: string) {
  return waitFor("the stack file", () => {
    try {
      return parseBlockedStack(readFileSync(file, "utf8"));
    } catch {
      return null;
    }
  });
}

describe("watchdog", () => {
  it("writes the blocked main thread's stack, naming the handler's file and function", async () => {
    const stackFile = join(p.dir, "stack.json");
    const w = startWorker(p, "spin-1", "spin", { VIGIL_STACK_FILE: stackFile });
    await started(w);
    await enqueue("spin");
    const stack = await stackIn(stackFile);
    expect(stack.pid).toBe(w.pid);
    const top = stack.frames[0]!;
    expect(top.functionName).toBe("spinForever");
    expect(top.url).toMatch(/spin\.mjs$/);
    expect(top.line).toBe(3);
  });

  it("names a TypeScript handler's file (loaded through tsx) and function", async () => {
    const stackFile = join(p.dir, "stack-ts.json");
    const w = startWorker(p, "spin-2", "spints", { VIGIL_STACK_FILE: stackFile });
    await started(w);
    await enqueue("spints");
    const stack = await stackIn(stackFile);
    expect(stack.frames[0]!.functionName).toBe("spinTyped");
    expect(stack.frames[0]!.url).toBe(`file://${join(p.dir, "spin.ts")}`);
  });
});
