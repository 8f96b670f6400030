/**
 * Loop bounds. A pipeline may send work back (QA returns an implementation with its
 * findings); `maxRounds` on a queue bounds how many times one pipeline run (one root) may
 * pass through that queue. A hand-off that would pass the bound is not made: the job that
 * would have made it goes to `dead` with the reason, so a loop ends visibly instead of
 * spinning for ever.
 */
import type { Job, NextJob } from "../core/types.js";
import type { Store } from "../store/store.js";

/**
 * Checks `next` against the limits. Returns null when every hand-off is within bounds,
 * else a sentence saying which queue's bound was reached (the reason the job is dead).
 *
 * A root's passes through queue Q are its jobs on Q: the root itself if it is on Q, and
 * every job carrying its `rootId`. Two jobs of one root finishing at the same instant on
 * different workers may both pass the check; the bound is a guard against endless loops,
 * not an exact quota.
 */
export async function checkRounds(
  store: Store,
  job: Job,
  next: readonly NextJob[],
  maxRoundsFor: (queue: string) => number | undefined,
): Promise<string | null> {
  const adding = new Map<string, number>();
  for (const n of next) {
    if (maxRoundsFor(n.queue) !== undefined) adding.set(n.queue, (adding.get(n.queue) ?? 0) + 1);
  }
  if (adding.size === 0) return null;
  const rootId = job.rootId ?? job.id;
  for (const [queue, count] of adding) {
    const limit = maxRoundsFor(queue)!;
    // Counted in the store, and no further than the limit: a long lineage is never loaded.
    const passes = await store.countRounds(rootId, queue, limit);
    if (passes + count > limit) {
      return (
        `maxRounds reached: pipeline run ${rootId} has passed through queue "${queue}" ${passes} ` +
        `time${passes === 1 ? "" : "s"} (limit ${limit}); not handing on`
      );
    }
  }
  return null;
}
