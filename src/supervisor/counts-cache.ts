/**
 * Queue counts for the supervisor's status snapshot, read no more often than they are
 * cheap. The snapshot is asked for every 2 s (status.json), by every open dashboard every
 * 2 s and by each /metrics scrape; counting is a scan of the jobs table, a few ms on a
 * small store but 120 ms on PostgreSQL and 40 ms on SQLite once it holds a million
 * retained jobs (measured here). So a read is reused for `minAgeMs` (1 s), or for 50
 * times as long as the last read took, whichever is longer: by construction the counts
 * keep the store busy at most 1/50 (2 %) of the time, and callers asking at once share
 * one read.
 */
import type { QueueCounts } from "../core/types.js";

/** A read is reused for this many times its own duration. */
const COST_FACTOR = 50;

export type Counts = Record<string, QueueCounts>;

export class QueueCountsCache {
  private value: Counts = {};
  private readAt = -Infinity;
  private tookMs = 0;
  private pending: Promise<Counts> | null = null;

  constructor(
    private readonly read: () => Promise<Counts>,
    private readonly minAgeMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** How long the current value is reused before the next read. */
  get maxAgeMs(): number {
    return Math.max(this.minAgeMs, this.tookMs * COST_FACTOR);
  }

  /** The counts: the last read while it is fresh enough, else a new one (shared). */
  get(): Promise<Counts> {
    if (this.now() - this.readAt < this.maxAgeMs) return Promise.resolve(this.value);
    this.pending ??= this.refresh().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async refresh(): Promise<Counts> {
    const started = this.now();
    const value = await this.read();
    const done = this.now();
    this.value = value;
    this.tookMs = done - started;
    this.readAt = done;
    return value;
  }
}
