/**
 * Vigil's library API: open a store, enqueue jobs, run a worker in your own process.
 * Everything else (supervisor, triggers, HTTP) runs through the `vigil` command.
 */
export { openStore } from "./store/open.js";
export type { Store, StoreOptions, StoreCaps, ClaimRequest, CompleteItem } from "./store/store.js";
export { Worker, RoundsExceededError } from "./worker/worker.js";
export type { WorkerOptions, QueueOptions, WedgedInfo } from "./worker/options.js";
export type {
  WorkerEvents,
  ReadyEvent,
  CompletedEvent,
  FailedEvent,
  LeaseLostEvent,
  TimeoutEvent,
  WedgedEvent,
  FrozenEvent,
  StoreRefusedEvent,
} from "./worker/events.js";
export type { Handler, HandlerJob, HandlerContext } from "./handlers/types.js";
export { commandHandler } from "./handlers/command.js";
export { loadModuleHandler } from "./handlers/module.js";
export { isRoute } from "./pipeline/route.js";
export type { Route } from "./pipeline/route.js";
export { loadConfig } from "./config/load.js";
export type { VigilConfig, QueueConfig, TriggerConfig, ServiceConfig } from "./config/schema.js";
export {
  VigilError,
  LeaseLostError,
  NonRetryableError,
  RetryAfterError,
  RateLimitedError,
  BadInputError,
  PayloadTooLargeError,
  NotFoundError,
} from "./core/errors.js";
export type { ErrorCode } from "./core/errors.js";
export type * from "./core/types.js";
export { parseDuration, formatDuration } from "./core/duration.js";
