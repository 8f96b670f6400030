/**
 * `vigil worker`'s side of the supervisor channel. The library Worker only emits events
 * (events.ts); this turns them into the messages protocol.ts defines, and beats the
 * process heartbeat from the main event loop while the worker runs.
 */
import { ProcessHeartbeat } from "../child/heartbeat.js";
import type { WorkerMessage } from "../child/protocol.js";
import type { Worker } from "./worker.js";

/** Sends the supervisor what `worker` does, through `send`, from before `worker.start()`. */
export function linkToSupervisor(worker: Worker, send: (m: WorkerMessage) => void): void {
  const heartbeat = new ProcessHeartbeat(send, () => worker.activeJobs());
  worker.on("ready", (ready) => {
    heartbeat.start();
    send({ t: "ready", ...ready });
    // At once, so the supervisor need not wait a whole interval for the first beat.
    heartbeat.beat();
  });
  worker.on("timeout", (t) => send({ t: "job-timeout", ...t }));
  worker.on("store-refused", (r) => send({ t: "store-refused", ...r }));
  worker.on("wedged", (w) => send({ t: "wedged", ...w }));
  worker.on("draining", () => send({ t: "draining" }));
  worker.on("stopped", () => heartbeat.stop());
}
