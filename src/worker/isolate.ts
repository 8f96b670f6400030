/**
 * Finding the completion a store refuses. When a batch's transaction fails for something it
 * carries (a value a column or a constraint refuses, not a store that is down), sending it
 * again fails again, forever: its jobs stay active, their leases renewed, and the worker's
 * claims, which wait on the committer, stop, while every heartbeat stays green. So the batch
 * is committed in halves, each half that fails split again, until the item the store refuses
 * stands alone: that one is reported refused and the rest commit. A batch with one bad item
 * costs about 2·log2(n) more transactions.
 *
 * A store-wide error (store-wide.ts) met on the way stops the search: what is not settled yet
 * is handed back to be retried whole, as any batch is when the store is down.
 */
import type { CompleteOutcome, Store } from "../store/store.js";
import { isStoreWideError } from "../store/store-wide.js";
import type { PendingCompletion } from "./committer.js";

export interface IsolateHooks {
  /** Told the outcome of each completion in a part that committed. */
  onOutcome(item: PendingCompletion, outcome: CompleteOutcome): void;
  /** Told of a completion the store refused on its own, with the store's error. */
  onRefused(item: PendingCompletion, err: unknown): void;
  /** Parts waiting their turn (their leases must still be renewed: committer.ts `pending`). */
  waiting: Set<PendingCompletion[]>;
  /** The part in a transaction now. */
  inFlight: Set<PendingCompletion[]>;
}

/**
 * Commits `batch`, whose transaction failed with `err` (not store-wide), part by part; see
 * the file comment. Resolves to null once every item is settled, or to the items left and
 * the store-wide error that stopped the search.
 */
export async function isolateRefused(
  store: Store,
  batch: PendingCompletion[],
  err: unknown,
  hooks: IsolateHooks,
): Promise<{ left: PendingCompletion[]; err: unknown } | null> {
  // Parts in order; `failed` is the error of a part already known to fail as a whole.
  const parts: { items: PendingCompletion[]; failed?: unknown }[] = [{ items: batch, failed: err }];
  try {
    while (parts.length > 0) {
      const part = parts.shift()!;
      hooks.waiting.delete(part.items);
      if (part.failed === undefined) {
        hooks.inFlight.add(part.items);
        try {
          const outcomes = await store.completeMany(part.items.map((p) => ({ lease: p.lease, result: p.result, next: p.next })));
          part.items.forEach((p, i) => hooks.onOutcome(p, outcomes[i]!));
          continue;
        } catch (e) {
          if (isStoreWideError(e)) return { left: [part.items, ...parts.map((p) => p.items)].flat(), err: e };
          part.failed = e;
        } finally {
          hooks.inFlight.delete(part.items);
        }
      }
      if (part.items.length === 1) {
        hooks.onRefused(part.items[0]!, part.failed);
        continue;
      }
      const mid = Math.ceil(part.items.length / 2);
      const halves = [{ items: part.items.slice(0, mid) }, { items: part.items.slice(mid) }];
      for (const h of halves) hooks.waiting.add(h.items);
      parts.unshift(...halves);
    }
    return null;
  } finally {
    for (const p of parts) hooks.waiting.delete(p.items);
  }
}
