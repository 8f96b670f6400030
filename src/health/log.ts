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
