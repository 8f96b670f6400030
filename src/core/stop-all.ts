/**
 * Ordered shutdown: named steps run one after another, each given at most its bound. A
 * step that throws or overruns is reported and the next one still runs, so one stuck part
 * (a store that stopped answering) never keeps the rest open.
 *
 *   await stopAll([
 *     { name: "worker", stop: () => worker.stop(), timeoutMs: 25_000 },
 *     { name: "store", stop: () => store.close(), timeoutMs: 5_000 },
 *   ], (name, err) => logger.error({ step: name, err }, "error while stopping"));
 */

export interface StopStep {
  name: string;
  stop: () => unknown;
  /** How long this step may take before the next one starts anyway (ms). */
  timeoutMs: number;
}

/** Thrown (to `onError`) for a step that did not finish within its bound. */
export class StopTimeoutError extends Error {
  constructor(
    readonly step: string,
    readonly timeoutMs: number,
  ) {
    super(`${step} did not stop within ${timeoutMs} ms`);
    this.name = "StopTimeoutError";
  }
}

/** Runs every step in order; never throws. `onError` hears of each failure or overrun. */
export async function stopAll(steps: StopStep[], onError: (step: string, err: unknown) => void): Promise<void> {
  for (const step of steps) {
    let timer: NodeJS.Timeout | undefined;
    const overrun = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StopTimeoutError(step.name, step.timeoutMs)), step.timeoutMs);
      timer.unref();
    });
    try {
      await Promise.race([Promise.resolve().then(step.stop), overrun]);
    } catch (err) {
      onError(step.name, err);
    } finally {
      clearTimeout(timer);
    }
  }
}
