/**
 * Chaos for the example (VIGIL_CHAOS=1): a stage's first attempt may crash its worker
 * process, hang (a promise that never settles), or block the event loop (`for (;;) {}`),
 * so a newcomer can watch Vigil recover.
 *
 * Reproducible: the draw is a hash of a fixed seed, the stage, the idea, the round and the
 * attempt, never Math.random. Bounded: only attempt 1 of a stage run can draw chaos, with
 * probability VIGIL_CHAOS_RATE (default 0.3, at most 0.5), so every retry runs clean and
 * the work always finishes. qa.py draws the same way.
 */
import { createHash } from "node:crypto";

export type ChaosAct = "crash" | "hang" | "block";

const ACTS: readonly ChaosAct[] = ["crash", "hang", "block"];

/** Whether chaos is on for this process. */
export function chaosEnabled(): boolean {
  return process.env.VIGIL_CHAOS === "1";
}

/** A number in [0, 1) from a SHA-256 of the parts: the same parts always give the same number. */
export function draw(...parts: (string | number)[]): number {
  const digest = createHash("sha256").update(parts.join(":")).digest();
  return digest.readUInt32BE(0) / 2 ** 32;
}

/** The chaos (if any) for one attempt of one stage run; null when none or chaos is off. */
export function chaosFor(stage: string, ideaId: string, round: number, attempt: number): ChaosAct | null {
  if (!chaosEnabled() || attempt !== 1) return null;
  const seed = process.env.VIGIL_CHAOS_SEED ?? "3";
  const rate = Math.min(Math.max(Number(process.env.VIGIL_CHAOS_RATE ?? 0.3) || 0, 0), 0.5);
  if (draw(seed, stage, ideaId, round, attempt) >= rate) return null;
  return ACTS[Math.floor(draw(seed, "act", stage, ideaId, round) * ACTS.length)] ?? "crash";
}

/**
 * Acts out the chaos for this attempt, if any. `crash` and `block` never return; `hang`
 * returns a promise that never settles (and ignores the abort signal, as a wedged
 * library call would), so the worker's timeout and killGrace have to deal with it.
 */
export async function maybeChaos(stage: string, ideaId: string, round: number, attempt: number): Promise<void> {
  const act = chaosFor(stage, ideaId, round, attempt);
  if (!act) return;
  process.stderr.write(`chaos: ${stage} ${ideaId} round ${round}: ${act} (pid ${process.pid})\n`);
  if (act === "crash") {
    // As abrupt as an out-of-memory kill: no exit handlers, no goodbye to the supervisor.
    process.kill(process.pid, "SIGKILL");
  } else if (act === "block") {
    // The main thread spins: no heartbeat, no lease renewal, no signal handlers run.
    for (;;) {
      // intentionally empty
    }
  }
  await new Promise<never>(() => {
    // hang: never settles
  });
}
