/**
 * Bulk retry and cancel by filter: `POST /api/jobs/retry` and `POST /api/jobs/cancel` with
 * `{ queue?, state?, confirm? }`. Without `confirm: true` nothing changes and the answer is
 * how many jobs match (`{ count, dryRun: true }`), so a person sees the number before acting;
 * with it, every matching job goes through the store's own `retry` / `cancel`, one by one,
 * and the answer is how many changed. Everything goes through the Store interface.
 */
import { BadInputError, InvalidStateError } from "../core/errors.js";
import type { JobState, QueueCounts } from "../core/types.js";
import type { Store } from "../store/store.js";
import type { ApiRoute } from "./api.js";

/** Which states each verb accepts (the store's own rules). */
export const BULK_STATES: Record<"retry" | "cancel", JobState[]> = {
  retry: ["dead", "failed", "cancelled"],
  cancel: ["scheduled", "waiting", "failed"],
};

/** Jobs read per page while acting; bounded so a big filter never loads everything at once. */
const PAGE = 500;

export interface BulkFilter {
  queue?: string;
  state?: JobState;
  confirm: boolean;
}

/** Checks a request body into a filter. */
export function parseBulkBody(verb: "retry" | "cancel", text: string | undefined): BulkFilter {
  let b: Record<string, unknown> = {};
  if (text) {
    try {
      b = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new BadInputError("the body is not JSON");
    }
  }
  if (typeof b !== "object" || b === null || Array.isArray(b)) throw new BadInputError("the body must be a JSON object");
  const queue = b["queue"];
  const state = b["state"];
  if (queue !== undefined && queue !== "" && typeof queue !== "string") throw new BadInputError("queue must be a string");
  if (state !== undefined && state !== "" && !BULK_STATES[verb].includes(state as JobState)) {
    throw new BadInputError(`${verb} applies to jobs that are ${BULK_STATES[verb].join(", ")}; not "${String(state)}"`);
  }
  return {
    queue: (queue as string) || undefined,
    state: (state as JobState) || undefined,
    confirm: b["confirm"] === true,
  };
}

/** Counts, or with `confirm` changes, the jobs a filter matches. */
export async function runBulk(
  store: Store,
  verb: "retry" | "cancel",
  f: BulkFilter,
): Promise<{ count: number; dryRun: boolean; skipped?: number }> {
  const states = f.state ? [f.state] : BULK_STATES[verb];
  if (!f.confirm) {
    const stats = await store.stats();
    let count = 0;
    for (const [q, counts] of Object.entries(stats)) {
      if (f.queue && q !== f.queue) continue;
      for (const s of states) count += (counts as QueueCounts)[s] ?? 0;
    }
    return { count, dryRun: true };
  }
  let count = 0;
  let skipped = 0;
  for (const state of states) {
    let beforeId: number | undefined;
    for (;;) {
      const page = await store.list({ queue: f.queue, state, limit: PAGE, beforeId, preview: 0 });
      if (page.length === 0) break;
      for (const job of page) {
        try {
          await (verb === "retry" ? store.retry(job.id) : store.cancel(job.id));
          count++;
        } catch (err) {
          // The job moved on since the page was read (a worker took it, someone else acted).
          if (err instanceof InvalidStateError) skipped++;
          else throw err;
        }
      }
      beforeId = page[page.length - 1]!.id;
    }
  }
  return { count, dryRun: false, skipped };
}

/** The two bulk routes (token needed, refused under `http.readOnly`). */
export const BULK_ROUTES: ApiRoute[] = (["retry", "cancel"] as const).map((verb) => ({
  method: "POST" as const,
  path: new RegExp(`^/api/jobs/${verb}$`),
  name: `bulk-${verb}`,
  mutating: true,
  run: async (ctx, req) => ({ body: await runBulk(ctx.store, verb, parseBulkBody(verb, req.body)) }),
}));
