/**
 * `vigil queues list` and `GET /api/queues/list`: each queue's counts, whether it is paused,
 * the last time its flow control held a claim back, and its `rate`/`limit`/`group` as the
 * config read here says (other hosts' configs may differ: the numbers travel with each
 * worker's claims, see docs/flow-control.md).
 */
import type { VigilConfig } from "../config/schema.js";
import type { QueueCounts } from "../core/types.js";
import { formatRate } from "../store/flow.js";
import type { Store } from "../store/store.js";

export interface QueueListing {
  name: string;
  paused: boolean;
  pausedAt: number | null;
  /** When a claim was last held back by the queue's flow control, and why. */
  heldAt: number | null;
  heldReason: string | null;
  counts: QueueCounts | null;
  /** From the config read here (absent: not set, or the queue is not in it). */
  rate?: string;
  limit?: number;
  group?: { by: string; limit?: number; rate?: string };
}

/** Every queue the store or the config knows, by name. */
export async function listQueues(store: Store, config: VigilConfig | null = null): Promise<QueueListing[]> {
  const [stats, states] = await Promise.all([store.stats(), store.queueStates()]);
  const byName = new Map(states.map((s) => [s.name, s]));
  const names = new Set([...Object.keys(stats), ...byName.keys(), ...Object.keys(config?.queues ?? {})]);
  return [...names].sort().map((name): QueueListing => {
    const s = byName.get(name);
    const out: QueueListing = {
      name,
      paused: s?.paused ?? false,
      pausedAt: s?.pausedAt ?? null,
      heldAt: s?.heldAt ?? null,
      heldReason: s?.heldReason ?? null,
      counts: stats[name] ?? null,
    };
    const q = config?.queues[name];
    if (q?.rate) out.rate = formatRate(q.rate);
    if (q?.limit !== undefined) out.limit = q.limit;
    if (q?.group) {
      out.group = { by: `payload.${q.group.by}` };
      if (q.group.limit !== undefined) out.group.limit = q.group.limit;
      if (q.group.rate) out.group.rate = formatRate(q.group.rate);
    }
    return out;
  });
}

/** The names of the paused queues (empty when the store cannot say: a health check must not fail on it). */
export async function pausedQueues(store: Store): Promise<string[]> {
  try {
    return (await store.queueStates()).filter((s) => s.paused).map((s) => s.name);
  } catch {
    return [];
  }
}

/**
 * A held claim's reason stays shown this long (30 s) after the last hold: a worker blocked
 * by a rate or limit claims again as soon as the budget frees, so an older hold is news
 * about the past, not about why the job waits now.
 */
const HELD_FRESH_MS = 30_000;

/**
 * Why a due job of a flow-controlled or paused queue has not started, as a sentence; null
 * when neither holds it (or it is running or finished). Part of a job's `why` (why.ts).
 */
export async function flowWhy(store: Store, job: { queue: string; state: string }): Promise<string | null> {
  if (job.state !== "waiting" && job.state !== "scheduled" && job.state !== "failed") return null;
  const state = (await store.queueStates().catch(() => [])).find((q) => q.name === job.queue);
  if (!state) return null;
  if (state.paused) return `queue ${job.queue} is paused; \`vigil queues resume ${job.queue}\` starts its jobs again`;
  const now = store.clock.now();
  if (state.heldAt !== null && state.heldReason && now - state.heldAt <= HELD_FRESH_MS) {
    return `held by flow control: ${state.heldReason} (${Math.max(0, Math.round((now - state.heldAt) / 1000))} s ago)`;
  }
  return null;
}
