/**
 * The command line's share of loading a project: turning the global options (`-c`,
 * `--store`) into a `ProjectInput`. Loading, resolving and opening are src/project/'s.
 */
import type { Command } from "commander";
import { loadProject, openProjectStore, projectDirOf, type Project, type ProjectInput } from "../project/project.js";
import type { Store } from "../store/store.js";

export interface GlobalOptions {
  config: string;
  store?: string;
  debug?: boolean;
}

/** The options given before the command name (`vigil -c x.yaml status`) or after it. */
export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** The project the command line names: `-c` (named or the default), `--store`. */
export function projectInput(cmd: Command): ProjectInput {
  const opts = globalOptions(cmd);
  return {
    configPath: opts.config,
    configNamed: cmd.getOptionValueSourceWithGlobals("config") === "cli",
    store: opts.store,
  };
}

/** The folder holding `.vigil/`: the config file's folder, whether or not the file exists. */
export function projectDir(cmd: Command): string {
  return projectDirOf(projectInput(cmd));
}

/** Loads the project the command line names. */
export function loadContext(cmd: Command): Promise<Project> {
  return loadProject(projectInput(cmd));
}

/** Runs `fn` with the store open and closes it after, whatever happens. */
export async function withStore<T>(cmd: Command, fn: (store: Store, project: Project) => Promise<T>): Promise<T> {
  const project = await loadContext(cmd);
  const store = await openProjectStore(project);
  try {
    return await fn(store, project);
  } finally {
    await store.close();
  }
}
