/**
 * A project, resolved once: its config (when there is one), the folder that holds
 * `.vigil/` and the paths in it, and the store URL in use. Every command and every process
 * entry point starts from a `Project`; the CLI only turns its arguments into a
 * `ProjectInput`.
 *
 *   const project = await loadProject({ configPath: "vigil.yaml", store: "sqlite:x.db" });
 *   const store = await openProjectStore(project);
 */
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { backoffDelay, type BackoffPolicy } from "../core/backoff.js";
import { VigilError } from "../core/errors.js";
import { DEFAULT_STORE_URL, isServerStore, parseStoreUrl, resolveStoreUrl } from "../core/store-url.js";
import type { VigilConfig } from "../config/schema.js";
import type { Store } from "../store/store.js";
import { vigilPaths, type VigilPaths } from "./paths.js";

/** What a project is loaded from (the global options of the command line). */
export interface ProjectInput {
  /** The config file (default `vigil.yaml` in the current folder). */
  configPath?: string;
  /** The file was named (`-c FILE`): a missing one is an error, not "use the defaults". */
  configNamed?: boolean;
  /** A store URL that overrides the config's; a relative SQLite path is relative to the current folder. */
  store?: string;
}

export interface Project {
  /** The loaded config, or null when there is no config file (and none was asked for). */
  config: VigilConfig | null;
  configPath: string | null;
  /** The folder that holds `.vigil/`: the config's folder, else the current one. */
  dir: string;
  paths: VigilPaths;
  /** The store URL in use, SQLite paths made absolute. */
  storeUrl: string;
  /** `storeUrl` when it came from `ProjectInput.store` (handed on to child processes). */
  storeOverride?: string;
}

/**
 * The folder holding `.vigil/` without reading the config: the config file's folder,
 * whether or not the file exists (what `vigil stop`, `status` and `logs` need).
 */
export function projectDirOf(input: ProjectInput = {}): string {
  return dirname(resolve(input.configPath ?? "vigil.yaml"));
}

/**
 * Loads the config if the file exists. A missing *default* `vigil.yaml` is fine (the
 * defaults apply); a missing file that was named is an error.
 */
export async function loadProject(input: ProjectInput = {}): Promise<Project> {
  const path = resolve(input.configPath ?? "vigil.yaml");
  let config: VigilConfig | null = null;
  let dir = process.cwd();
  if (existsSync(path) || input.configNamed) {
    const { loadConfig } = await import("../config/load.js");
    const loaded = await loadConfig(path);
    config = loaded.config;
    dir = loaded.dir;
  }
  let storeUrl: string;
  if (input.store) {
    // A relative SQLite path on the command line is relative to where the user stands.
    const target = parseStoreUrl(input.store);
    storeUrl = target.engine === "sqlite" ? `sqlite:${resolve(target.file)}` : input.store;
  } else {
    // The config's URL is already resolved against its folder; the default against `dir`.
    storeUrl = config?.store ?? resolveStoreUrl(DEFAULT_STORE_URL, dir);
  }
  return {
    config,
    configPath: config ? path : null,
    dir,
    paths: vigilPaths(dir),
    storeUrl,
    storeOverride: input.store ? storeUrl : undefined,
  };
}

/** Opens the store the project names, with the config's store options. */
export async function openProjectStore(project: Project, extra: { readOnly?: boolean } = {}): Promise<Store> {
  const { openStore } = await import("../store/open.js");
  const { config } = project;
  return openStore(project.storeUrl, {
    durability: config?.durability,
    maxPayload: config?.maxPayload,
    schema: config?.schema,
    // Every process judges a queue's stalls by that queue's own maxStalls.
    queueMaxStalls: config ? Object.fromEntries(Object.entries(config.queues).map(([name, q]) => [name, q.maxStalls])) : undefined,
    // …and every enqueue into a queue with `onDuplicate: replace` replaces a waiting job's payload.
    queueOnDuplicate: config
      ? Object.fromEntries(Object.entries(config.queues).flatMap(([name, q]) => (q.onDuplicate ? [[name, q.onDuplicate]] : [])))
      : undefined,
    // …and every job of a grouped queue keeps its group's value, for the claim.
    queueGroupBy: config
      ? Object.fromEntries(Object.entries(config.queues).flatMap(([name, q]) => (q.group ? [[name, q.group.by]] : [])))
      : undefined,
    ...extra,
  });
}

/**
 * Opens the store read-only for commands that must report on a broken store rather than
 * fail on it (`health`, `doctor`): the error, if any, is returned as a sentence.
 */
export async function tryOpenProjectStore(project: Project): Promise<{ store: Store | null; storeError?: string }> {
  try {
    return { store: await openProjectStore(project, { readOnly: true }) };
  } catch (err) {
    return { store: null, storeError: (err as Error).message };
  }
}

/**
 * Waits between tries to reach a store server that is down at start-up (a host booting
 * before its database, the database restarting): 1 s doubling to 30 s, with jitter.
 */
export const STORE_WAIT: BackoffPolicy = { baseMs: 1000, maxMs: 30_000 };

/**
 * Opens the store; a server that cannot be reached yet is waited for instead of given up
 * on: the supervisor rides out an outage once running, and should not need a person (or a
 * service manager's restart) when the outage comes first. One line per failed try goes to
 * stderr. Any other error (a bad URL, refused credentials, a corrupt file) is thrown at
 * once, and a SQLite file that cannot be opened is not waited for: it will not get better.
 */
export async function openProjectStoreWhenReachable(project: Project): Promise<Store> {
  if (!isServerStore(project.storeUrl)) return openProjectStore(project);
  for (let attempt = 1; ; attempt++) {
    try {
      return await openProjectStore(project);
    } catch (err) {
      if (!(err instanceof VigilError) || err.code !== "STORE_UNREACHABLE") throw err;
      const ms = backoffDelay(STORE_WAIT, attempt);
      if (attempt === 1) process.stderr.write(`vigil: ${err.message}\n`);
      process.stderr.write(`vigil: waiting for the store: try ${attempt} failed, next in ${(ms / 1000).toFixed(1)} s\n`);
      await new Promise((r) => setTimeout(r, ms));
    }
  }
}
