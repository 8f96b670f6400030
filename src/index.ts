/**
 * Vigil's public library API (DESIGN.md, "Library API"):
 *
 * ```ts
 * import { openStore, Worker } from "vigil";
 * const store = await openStore("sqlite:.vigil/vigil.db");
 * await store.enqueue("outline", { idea: "..." }, { key: "idea-42" });
 * new Worker(store, { queues: { outline: async (job, ctx) => ({ ... }) } }).start();
 * ```
 */
export { openStore } from "./store/open.js";
export type { Store, StoreOptions, StoreCaps } from "./store/store.js";
export { Worker, RoundsExceededError } from "./worker/worker.js";
export type { WorkerOptions, QueueOptions, WedgedInfo } from "./worker/options.js";
export { JobTimeoutError, ShutdownAbortError } from "./worker/job-run.js";
export type { Handler, HandlerContext, HandlerJob } from "./handlers/types.js";
export { commandHandler, type CommandHandlerOptions } from "./handlers/command.js";
export { loadModuleHandler } from "./handlers/module.js";
export { isRoute, isFanOut, nextJobs, type Route } from "./pipeline/route.js";
export {
  VigilError,
  LeaseLostError,
  NonRetryableError,
  RetryAfterError,
  BadInputError,
  PayloadTooLargeError,
} from "./core/errors.js";
export type { Job, JobState, EnqueueOptions, JobSource, AttemptRecord } from "./core/types.js";
