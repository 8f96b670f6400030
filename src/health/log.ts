/**
 * The logging surface the operations code needs: a subset of pino's `Logger`, so the
 * supervisor can hand in its pino logger and tests can pass nothing at all.
 */
export interface OpsLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Drops everything; the default where no logger is given. */
export const silentLogger: OpsLogger = {
  info() {},
  warn() {},
  error() {},
};

/** Adapts a one-argument log function (the supervisor's) to `OpsLogger`. */
export function loggerFromFn(log: (msg: string) => void): OpsLogger {
  const line = (obj: object, msg?: string): void => {
    const err = (obj as { err?: unknown }).err;
    log(err instanceof Error ? `${msg ?? "error"}: ${err.message}` : (msg ?? JSON.stringify(obj)));
  };
  return { info: line, warn: line, error: line };
}
