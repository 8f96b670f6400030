/**
 * What most commands need: the config (when there is one) and the store it names.
 * `--store` overrides the config; with neither, the default SQLite file in `.vigil/`.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import type { VigilConfig } from "../config/schema.js";
import type { Store } from "../store/store.js";

export interface GlobalOptions {
  config: string;
  store?: string;
  debug?: boolean;
}

export interface CliContext {
  /** The loaded config, or null when there is no config file (and none was asked for). */
  config: VigilConfig | null;
  configPath: string | null;
  /** The folder that holds `.vigil/`: the config's folder, else the current one. */
  dir: string;
  storeUrl: string;
}

export const DEFAULT_STORE = "sqlite:.vigil/vigil.db";

/** The options given before the command name (`vigil -c x.yaml status`) or after it. */
export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/**
 * Loads the config if the file exists. A missing *default* `vigil.yaml` is fine (the
 * defaults apply); a missing file the user named with `-c` is an error.
 */
export async function loadContext(cmd: Command): Promise<CliContext> {
  const opts = globalOptions(cmd);
  const path = resolve(opts.config ?? "vigil.yaml");
  const named = cmd.getOptionValueSourceWithGlobals("config") === "cli";
  let config: VigilConfig | null = null;
  let dir = process.cwd();
  if (existsSync(path) || named) {
    const { loadConfig } = await import("../config/load.js");
    const loaded = await loadConfig(path);
    config = loaded.config;
    dir = loaded.dir;
  }
  let storeUrl = opts.store ?? config?.store ?? DEFAULT_STORE;
  // A relative SQLite path on the command line is relative to where the user stands.
  if (opts.store && !/^postgres(ql)?:/.test(storeUrl)) {
    const file = storeUrl.startsWith("sqlite:") ? storeUrl.slice(7) : storeUrl;
    storeUrl = `sqlite:${resolve(file)}`;
  } else if (!config && storeUrl === DEFAULT_STORE) {
    storeUrl = `sqlite:${resolve(dir, ".vigil/vigil.db")}`;
  }
  return { config, configPath: config ? path : null, dir, storeUrl };
}

/** Opens the store the context names, with the config's store options. */
export async function openContextStore(ctx: CliContext, extra: { readOnly?: boolean } = {}): Promise<Store> {
  const { openStore } = await import("../store/open.js");
  return openStore(ctx.storeUrl, {
    durability: ctx.config?.durability,
    maxPayload: ctx.config?.maxPayload,
    schema: ctx.config?.schema,
    // Every process judges a queue's stalls by that queue's own maxStalls.
    queueMaxStalls: ctx.config ? Object.fromEntries(Object.entries(ctx.config.queues).map(([name, q]) => [name, q.maxStalls])) : undefined,
    // …and every enqueue into a queue with `onDuplicate: replace` replaces a waiting job's payload.
    queueOnDuplicate: ctx.config
      ? Object.fromEntries(Object.entries(ctx.config.queues).flatMap(([name, q]) => (q.onDuplicate ? [[name, q.onDuplicate]] : [])))
      : undefined,
    // …and every job of a grouped queue keeps its group's value, for the claim.
    queueGroupBy: ctx.config
      ? Object.fromEntries(Object.entries(ctx.config.queues).flatMap(([name, q]) => (q.group ? [[name, q.group.by]] : [])))
      : undefined,
    ...extra,
  });
}

/** Runs `fn` with the store open and closes it after, whatever happens. */
export async function withStore<T>(cmd: Command, fn: (store: Store, ctx: CliContext) => Promise<T>): Promise<T> {
  const ctx = await loadContext(cmd);
  const store = await openContextStore(ctx);
  try {
    return await fn(store, ctx);
  } finally {
    await store.close();
  }
}

/**
 * Opens the store read-only for commands that must report on a broken store rather than
 * fail on it (`health`, `doctor`): the error, if any, is returned as a sentence.
 */
export async function tryOpenContextStore(ctx: CliContext): Promise<{ store: Store | null; storeError?: string }> {
  try {
    return { store: await openContextStore(ctx, { readOnly: true }) };
  } catch (err) {
    return { store: null, storeError: (err as Error).message };
  }
}
