/**
 * Entry of a benchmark child process: a worker that drains or measures pick-up latency,
 * or a producer that enqueues one job at a time on a fixed beat.
 */
import type { ChildMessage, ParentMessage, ProducerInit, WorkerInit } from "./child.js";
import { preciseNow } from "./target.js";
import type { BenchPayload, Consumer } from "./target.js";
import { loadTarget } from "./targets.js";

/**
 * Between "all handlers ran" and "the store says none outstanding" the completions of the
 * last jobs are still being written; poll often so the timing is not rounded up much.
 */
const SETTLE_POLL_MS = 2;

function send(m: ChildMessage): void {
  process.send?.(m);
}

function nextMessage(t: ParentMessage["t"]): Promise<void> {
  return new Promise((resolve) => {
    const on = (m: ParentMessage) => {
      if (m.t === t) {
        process.off("message", on);
        resolve();
      }
    };
    process.on("message", on);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runWorker(init: WorkerInit): Promise<Consumer> {
  const target = await loadTarget(init.target);
  let count = 0;
  const samples: number[] = [];
  let reached: () => void = () => {};
  const enough = new Promise<void>((resolve) => (reached = resolve));
  const onJob = (p: BenchPayload) => {
    if (init.mode === "latency") {
      if (p.w) return;
      samples.push(preciseNow() - p.t);
      if (samples.length >= init.n) reached();
      return;
    }
    if (++count >= init.n) reached();
  };
  const consumer = await target.openConsumer(init.ctx, init.concurrency, onJob);
  const t0 = performance.now();
  await consumer.start();
  send({ t: "ready" });
  const capped = await Promise.race([enough.then(() => false), sleep(init.capMs).then(() => true)]);
  if (init.mode === "latency") {
    send({ t: "latency", samples: samples.slice(), partial: capped });
    return consumer;
  }
  // Every handler has run: now wait until the store has recorded every completion.
  const settleBy = performance.now() + init.capMs;
  while (!capped && (await consumer.outstanding()) > 0 && performance.now() < settleBy) await sleep(SETTLE_POLL_MS);
  const ms = performance.now() - t0;
  send({ t: "drained", ms, done: Math.min(count, init.n), partial: capped || performance.now() >= settleBy });
  return consumer;
}

async function runProducer(init: ProducerInit): Promise<() => Promise<void>> {
  const target = await loadTarget(init.target);
  const producer = await target.openProducer(init.ctx);
  send({ t: "ready" });
  await nextMessage("go");
  const start = performance.now();
  const total = init.warm + init.n;
  for (let i = 0; i < total; i++) {
    await producer.enqueueOne({ i, t: preciseNow(), ...(i < init.warm ? { w: true } : {}) });
    // A fixed beat from the start, so a slow enqueue does not shift every later job.
    const wait = start + (i + 1) * init.everyMs - performance.now();
    if (wait > 0) await sleep(wait);
  }
  send({ t: "produced", n: total });
  return () => producer.close();
}

async function main(): Promise<void> {
  const init = JSON.parse(process.argv[2] ?? "{}") as WorkerInit | ProducerInit;
  // If the benchmark itself dies, do not linger holding connections.
  process.on("disconnect", () => process.exit(1));
  let close: () => Promise<void>;
  if (init.role === "worker") {
    const consumer = await runWorker(init);
    close = () => consumer.close();
  } else {
    close = await runProducer(init);
  }
  await nextMessage("stop");
  await close();
  process.exit(0);
}

main().catch((err: unknown) => {
  send({ t: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  // Let the IPC message flush before exiting.
  setTimeout(() => process.exit(1), 100);
});
