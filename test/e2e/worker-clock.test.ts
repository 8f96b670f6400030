/**
 * A real `vigil worker` whose wall clock steps 30 s forward (the preloaded clock-step
 * module stands in for NTP) while a handler with a 20 s timeout runs: the step is not
 * time passing, so the handler is not timed out, even when the worker's one deadline timer
 * fires for another job meanwhile.
 */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import { lines, waitFor } from "./supervisor-helpers.js";
import { started, startWorker, workerSuite, type WorkerProject } from "./worker-helpers.js";

const STEP_MODULE = resolve(import.meta.dirname, "fixtures", "clock-step.mjs");

const CONFIG = `
store: sqlite:vigil.db
queues:
  slow: { handler: ./h.mjs, timeout: 20s, attempts: 1 }
  quick: { handler: ./h.mjs, timeout: 3s }
`;
const FILES = {
  // Logs each start and end; payload.ms: run that long, giving up when aborted.
  "h.mjs": `import { appendFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
export default async function h(job, ctx) {
  const log = (what) => appendFileSync(new URL("./runs.log", import.meta.url), job.queue + " " + job.id + " " + what + "\\n");
  log("start");
  await sleep(job.payload.ms, undefined, { signal: ctx.signal });
  log("end");
  return null;
}`,
};

let p: WorkerProject;
let store: Store;
workerSuite(CONFIG, FILES, (proj, s) => {
  p = proj;
  store = s;
});

describe("vigil worker and the wall clock", () => {
  it("a +30 s step does not time out a handler with 20 s to go", async () => {
    const clockFile = join(p.dir, "clock-offset");
    writeFileSync(clockFile, "0");
    const w = startWorker(p, "w1", "slow,quick", { NODE_OPTIONS: `--import=${STEP_MODULE}`, VIGIL_TEST_CLOCK_FILE: clockFile });
    await started(w);
    const runs = join(p.dir, "runs.log");
    const { job: slow } = await store.enqueue("slow", { ms: 8000 });
    await waitFor("the slow handler to start", () => lines(runs).includes(`slow ${slow.id} start`));

    writeFileSync(clockFile, "30000");
    // Its 3 s timeout arms the worker's deadline timer, which fires while the slow one runs.
    const { job: quick } = await store.enqueue("quick", { ms: 10 });

    await waitFor("both jobs finished", async () => {
      const [a, b] = await Promise.all([store.get(slow.id), store.get(quick.id)]);
      return a?.finishedAt !== null && b?.finishedAt !== null;
    }, 60_000);
    const done = await store.get(slow.id);
    expect(done?.error ?? null).toBeNull();
    expect(done).toMatchObject({ state: "completed", attempt: 1 });
    expect(lines(runs).filter((l) => l.startsWith(`slow ${slow.id} `))).toEqual([`slow ${slow.id} start`, `slow ${slow.id} end`]);
  });
});
