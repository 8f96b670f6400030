/**
 * Flow control as arithmetic both adapters share: given what the store holds (active jobs,
 * recent starts), how many jobs a claim may start now, and if it may start fewer than it
 * asked for, until when and why. The adapters read those facts and write the starts inside
 * the claim's transaction, under a lock on the queue's row, so two claimers never both
 * spend the same budget.
 *
 * The rate is a sliding window, not a fixed one: a claim at `now` counts the starts in
 * (now − interval, now] and adds its own at `now`, so no window of the interval's length
 * ever holds more than N starts. (A fixed window lets up to 2N into one sliding interval:
 * N at the end of one window and N at the start of the next.)
 */
import { formatDuration } from "../core/duration.js";
import type { FlowRate, QueueFlow } from "./store.js";

/** Starts recorded by one claim: one row per claim and queue (or group), not per job. */
export interface StartRow {
  at: number;
  n: number;
}

/**
 * How often a worker held back by `limit` (no free slot across the hosts) asks again
 * anyway (3 s). A slot that frees wakes it at once: its own completions directly, those
 * of other processes and hosts through the store's wake-up (`Store.announce`, sent by the
 * worker whose job ended). This recheck is the safety net for a wake-up that never came
 * (a job cancelled or reaped while running, a notification lost with a broken connection).
 */
export const LIMIT_RECHECK_MS = 3000;

/**
 * How late after its claim a job of a rate-limited queue may still start (100 ms). The
 * store counts a claim's starts at the claim's time, but a handler starts a little later
 * (the commit's reply, a busy event loop, a process the OS left waiting). So each start
 * occupies the window for the interval plus this slack, and a worker gives back, uncounted,
 * a job it could not start within it (worker.ts): then no window of the interval's length
 * holds more than N handler starts either, not only N claims. The cost: at most N starts
 * per interval + 100 ms (a 10/1s queue runs at most ~9.1 jobs a second).
 */
export const START_SLACK_MS = 100;

/** Room left in the sliding window, and when at least one start leaves it (null: room now). */
export function rateRoom(rate: FlowRate, starts: StartRow[], now: number): { left: number; freeAt: number | null } {
  const span = rate.intervalMs + START_SLACK_MS;
  const from = now - span;
  const inWindow = starts.filter((s) => s.at > from).sort((a, b) => a.at - b.at);
  const used = inWindow.reduce((sum, s) => sum + s.n, 0);
  const left = rate.count - used;
  if (left > 0) return { left, freeAt: null };
  // The oldest starts leave the window first; find when enough have left for one more.
  let drop = used - rate.count + 1;
  for (const s of inWindow) {
    drop -= s.n;
    if (drop <= 0) return { left: 0, freeAt: s.at + span };
  }
  return { left: 0, freeAt: now + span };
}

/** `60/1m` back from its parts. */
export function formatRate(rate: FlowRate): string {
  const units: [string, number][] = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]];
  const unit = units.find(([, ms]) => rate.intervalMs % ms === 0);
  return `${rate.count}/${unit ? `${rate.intervalMs / unit[1]}${unit[0]}` : `${rate.intervalMs}ms`}`;
}

/** What a claim may take of one queue (or group) now. */
export interface Allowance {
  take: number;
  /** Held back: until when (null: until a slot frees) and why. */
  hold?: { until: number | null; reason: string };
}

/**
 * How many of `want` jobs may start now under `limit` (given `active`) and `rate` (given
 * `starts`). `what` names the queue or group in the reason.
 */
export function allowance(
  what: string,
  want: number,
  limits: { limit?: number; rate?: FlowRate },
  facts: { active: number; starts: StartRow[] },
  now: number,
): Allowance {
  let take = want;
  let hold: Allowance["hold"];
  if (limits.limit !== undefined) {
    const room = Math.max(0, limits.limit - facts.active);
    if (room < take) {
      take = room;
      hold = { until: null, reason: `${what}: limit ${limits.limit} reached (${facts.active} active)` };
    }
  }
  if (limits.rate !== undefined) {
    const { left } = rateRoom(limits.rate, facts.starts, now);
    if (left < take) {
      take = Math.max(0, left);
      // When the window, with this claim's own starts in it, next has room.
      const after = take > 0 ? [...facts.starts, { at: now, n: take }] : facts.starts;
      const at = rateRoom(limits.rate, after, now).freeAt ?? now;
      // A rate hold has a known end; it wins over a limit hold for the wake-up time.
      hold = {
        until: at,
        reason: `${what}: rate ${formatRate(limits.rate)} reached, next start in ${formatDuration(Math.max(0, at - now))}`,
      };
    }
  }
  return hold ? { take, hold } : { take };
}

/**
 * The group value of a payload at `path` (dots), as the stores read it in SQL: a string as
 * it is, a number in decimal, anything else as JSON; "" when absent.
 */
export function groupOf(payload: unknown, path: string): string {
  let v: unknown = payload;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object") return "";
    v = (v as Record<string, unknown>)[part];
  }
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : JSON.stringify(v);
}

/** A waiting job a grouped claim may take: its id and its group's value (as text). */
export interface Candidate {
  id: number;
  group: string;
}

/** What is known of each group met among the candidates. */
export interface GroupFacts {
  active: Map<string, number>;
  starts: Map<string, StartRow[]>;
  /** Groups a handler's `ctx.rateLimited` holds: until when, and why. */
  held?: Map<string, { until: number; reason: string }>;
}

/** A hold row (`queue_holds`) as the reason people read. */
export function holdReason(queue: string, group: string | null, ms: number, why?: string): string {
  const what = group === null ? `queue ${queue}` : `queue ${queue} group ${group}`;
  return `${what}: rate limited by its handler for ${formatDuration(ms)}${why ? ` (${why})` : ""}`;
}

/**
 * Picks, in claim order, up to `max` candidates whose group still has room under the
 * group's `limit` and `rate`; returns the picked ids, how many each group took, and the
 * first hold met (for the reason and the wake-up time).
 */
export function pickGrouped(
  queue: string,
  flow: QueueFlow,
  candidates: Candidate[],
  max: number,
  facts: GroupFacts,
  now: number,
): { ids: number[]; perGroup: Map<string, number>; hold?: Allowance["hold"] } {
  const g = flow.group!;
  const limits = { limit: g.limit, rate: g.rate };
  const what = (group: string) => `queue ${queue} group ${g.by}=${group}`;
  const perGroup = new Map<string, number>();
  const full = new Set<string>();
  const ids: number[] = [];
  let hold: Allowance["hold"];
  for (const c of candidates) {
    if (ids.length >= max) break;
    if (full.has(c.group)) continue;
    const held = facts.held?.get(c.group);
    if (held && held.until > now) {
      full.add(c.group);
      hold = earlier(hold, held);
      continue;
    }
    const taken = perGroup.get(c.group) ?? 0;
    const starts = facts.starts.get(c.group) ?? [];
    // The group's facts with this claim's own picks so far in them.
    const a = allowance(
      what(c.group),
      1,
      limits,
      { active: (facts.active.get(c.group) ?? 0) + taken, starts: taken > 0 ? [...starts, { at: now, n: taken }] : starts },
      now,
    );
    if (a.take < 1) {
      full.add(c.group);
      hold = earlier(hold, a.hold);
      continue;
    }
    perGroup.set(c.group, taken + 1);
    ids.push(c.id);
  }
  return hold ? { ids, perGroup, hold } : { ids, perGroup };
}

/**
 * The groups that can start nothing now (their limit reached, their rate window full, or
 * held by a handler), from the facts alone, and the hold that ends first among them: a
 * claim leaves their jobs out of its scan (by the `grp` column), so candidates it reads are
 * not spent on groups that cannot start.
 */
export function saturatedGroups(
  queue: string,
  flow: QueueFlow,
  facts: GroupFacts,
  now: number,
): { groups: string[]; hold?: Allowance["hold"] } {
  const g = flow.group!;
  const names = new Set([...facts.active.keys(), ...facts.starts.keys(), ...(facts.held?.keys() ?? [])]);
  const groups: string[] = [];
  let hold: Allowance["hold"];
  for (const name of names) {
    const held = facts.held?.get(name);
    const a = held && held.until > now
      ? { take: 0, hold: held }
      : allowance(`queue ${queue} group ${g.by}=${name}`, 1, { limit: g.limit, rate: g.rate }, { active: facts.active.get(name) ?? 0, starts: facts.starts.get(name) ?? [] }, now);
    if (a.take >= 1) continue;
    groups.push(name);
    hold = earlier(hold, a.hold);
  }
  return hold ? { groups, hold } : { groups };
}

/** Of two holds, the one that ends first (a known time beats "until a slot frees"). */
export function earlier(a: Allowance["hold"], b: Allowance["hold"]): Allowance["hold"] {
  if (!a) return b;
  if (!b) return a;
  if (a.until === null) return b;
  if (b.until === null) return a;
  return a.until <= b.until ? a : b;
}

/** The longest interval any part of a flow counts starts over (what older rows may be pruned past). */
export function longestInterval(flow: QueueFlow): number {
  const longest = Math.max(flow.rate?.intervalMs ?? 0, flow.group?.rate?.intervalMs ?? 0);
  return longest > 0 ? longest + START_SLACK_MS : 0;
}

/** Candidates a grouped claim reads per request (its `want` times this, at least 200). */
export const GROUP_SCAN_FACTOR = 20;
export const GROUP_SCAN_MIN = 200;

/**
 * Start rows of a group are kept under `g:` and its value, the queue's own under ''; so a
 * job without the field (group value '') never counts against the queue's rate.
 */
export const GROUP_PREFIX = "g:";

/** The group rows of `byGroup`'s map, by group value. */
export function groupStarts(all: Map<string, StartRow[]>): Map<string, StartRow[]> {
  const out = new Map<string, StartRow[]>();
  for (const [k, v] of all) if (k.startsWith(GROUP_PREFIX)) out.set(k.slice(GROUP_PREFIX.length), v);
  return out;
}

/** Splits start rows by their `grp` column. */
export function byGroup(rows: { grp: string; at: number; n: number }[]): Map<string, StartRow[]> {
  const out = new Map<string, StartRow[]>();
  for (const r of rows) {
    const list = out.get(r.grp);
    if (list) list.push({ at: r.at, n: r.n });
    else out.set(r.grp, [{ at: r.at, n: r.n }]);
  }
  return out;
}
