/**
 * Connecting to PostgreSQL: the URL (with an optional `?schema=`), the pool, and the one
 * place where driver errors become Vigil errors. A server that is down or restarting
 * surfaces as `STORE_UNREACHABLE`, never as an unhandled 'error' event.
 */
import pg from "pg";
import { BadInputError, VigilError } from "../../core/errors.js";

/** Where a store lives, parsed from its URL. */
export interface PgTarget {
  /** The URL handed to `pg`, without Vigil's own `schema` parameter. */
  connectionString: string;
  schema: string;
  /** `postgres://user@host:port/db#schema`, never with a password. */
  location: string;
}

/** The default schema for Vigil's tables. */
export const DEFAULT_SCHEMA = "vigil";

/**
 * Schema names: an identifier short enough that `<schema>:jobs` stays a valid NOTIFY channel
 * (PostgreSQL caps channel names at 63 bytes).
 */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,49}$/;

/**
 * Splits a `postgres://` URL into what `pg` needs and the schema: the URL's `?schema=` if
 * present (the most specific place, and the config's `schema` key always supplies its
 * default), else `schemaOption`, else `vigil`.
 */
export function parsePostgresUrl(url: string, schemaOption?: string): PgTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new BadInputError(`store "${redact(url)}" is not a valid URL; write it like postgres://user@host/db`, {
      cause: err,
    });
  }
  const fromUrl = parsed.searchParams.get("schema") ?? undefined;
  parsed.searchParams.delete("schema");
  const schema = fromUrl ?? schemaOption ?? DEFAULT_SCHEMA;
  if (!SCHEMA_NAME.test(schema)) {
    throw new BadInputError(
      `PostgreSQL schema ${JSON.stringify(schema)} is not valid: use letters, digits and _ (at most 50, not starting with a digit)`,
    );
  }
  const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : "";
  const location = `postgres://${user}${parsed.host}${parsed.pathname}#${schema}`;
  return { connectionString: parsed.toString(), schema, location };
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

/** `"name"`: a double-quoted identifier (names are validated first, this is belt and braces). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const INT8_OID = 20;
const INT8_ARRAY_OID = 1016;

/**
 * Type parsing for this pool only (never the process-wide `pg.types`, which other code in
 * the same process may rely on): bigint columns hold ids and ms timestamps, all far below
 * 2^53, so they come back as numbers rather than strings.
 */
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (format !== "binary") {
      if (oid === INT8_OID) return (value: string) => Number(value);
      if (oid === INT8_ARRAY_OID) {
        const parseArray = pg.types.getTypeParser(oid as 20, "text") as unknown as (value: string) => (string | null)[];
        return (value: string) => parseArray(value).map((v) => (v === null ? null : Number(v)));
      }
    }
    return pg.types.getTypeParser(oid, format as "text");
  },
} as pg.CustomTypesConfig;

/**
 * How long to wait for a connection before a query fails with STORE_UNREACHABLE. The
 * driver's default is to wait forever, which would freeze a worker silently while the
 * server is down; 5 s rides out a slow accept on a busy machine but reports a real outage
 * quickly so health can show it.
 */
export const CONNECT_TIMEOUT_MS = 5_000;

/**
 * Pool size. A worker overlaps at most a claim, a renewal batch and a completion batch,
 * and the rest of Vigil issues a query now and then; 10 leaves headroom without taking a
 * large share of the server's 100 default connections when several hosts run.
 */
export const POOL_MAX = 10;

/** Connection settings shared by the pool and the LISTEN client. */
export function clientConfig(target: PgTarget): pg.ClientConfig {
  return {
    connectionString: target.connectionString,
    types,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // TCP keep-alive notices a peer that vanished (a lost host) instead of waiting on a dead
    // socket; probing starts after 10 s idle rather than the kernel's default of two hours.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // Names the schema in pg_stat_activity, so an operator (or a test) can tell stores apart.
    application_name: `vigil:${target.schema}`.slice(0, 63),
    options: SESSION_OPTIONS,
  };
}

/**
 * Named statements are parsed once per connection but planned on every run: after five
 * runs PostgreSQL would switch to a generic plan, which cannot see how few rows an array
 * parameter holds, and a 500-row completion went from 16 ms to 118 ms. Planning costs
 * well under a millisecond.
 */
const SESSION_OPTIONS = "-c plan_cache_mode=force_custom_plan";

/** A pool whose idle-client errors (a server restart kills them all) are absorbed, not thrown. */
export function createPool(target: PgTarget, onError: (err: Error) => void, readOnly = false): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(target),
    // A read-only store (CLI reads, doctor) cannot write even by mistake: the server refuses.
    ...(readOnly ? { options: `${SESSION_OPTIONS} -c default_transaction_read_only=on` } : {}),
    max: POOL_MAX,
    // Idle connections are closed after 30 s so a quiet store holds few server slots.
    idleTimeoutMillis: 30_000,
  });
  pool.on("error", onError);
  // A client checked out of the pool can also emit 'error' between queries.
  pool.on("connect", (client) => client.on("error", onError));
  return pool;
}

/** Socket-level error codes that mean "the server cannot be reached right now". */
const NET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
]);

/**
 * SQLSTATEs of an unreachable server: class 08 (connection exception), 57P01–57P03
 * (shutting down, crashed, starting up) and 53300 (no connection slots left).
 */
function isUnreachableState(code: string): boolean {
  return code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300";
}

const UNREACHABLE_MESSAGE =
  /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Connection timeout|connection is closed|Client was closed/i;

/** Whether a driver error means the server is (for now) out of reach. */
export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (NET_CODES.has(code) || isUnreachableState(code))) return true;
  if (err instanceof AggregateError) return err.errors.some(isUnreachable);
  return UNREACHABLE_MESSAGE.test(err.message);
}

/** Turns a driver error into a Vigil error where one applies; Vigil errors pass through. */
export function toStoreError(err: unknown, location: string): unknown {
  if (err instanceof VigilError) return err;
  if (isUnreachable(err)) {
    return new VigilError(
      "STORE_UNREACHABLE",
      `PostgreSQL at ${location} cannot be reached (${(err as Error).message || (err as { code?: string }).code}); ` +
        "Vigil retries on its own — check that the server is running and accepts connections",
      { cause: err },
    );
  }
  return err;
}
