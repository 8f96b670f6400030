/**
 * Turns the `services` of a config into process rows. A worker service is `instances`
 * processes of `vigil worker`; a config with triggers gets a `triggers` process (unless
 * started with `--role workers`); a command service runs its program without a shell.
 */
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { VigilConfig } from "../config/schema.js";
import { ENV_STALL_AFTER } from "../child/protocol.js";
import type { SlotSpec } from "./process-slot.js";
import { rowFileName, type VigilPaths } from "../project/paths.js";

/** `bin/vigil` of this checkout: what worker and triggers processes run. */
export const VIGIL_BIN = fileURLToPath(new URL("../../bin/vigil", import.meta.url));

/** The service name the triggers process gets in status and incidents. */
export const TRIGGERS_SERVICE = "triggers";

export interface SlotSpecInput {
  config: VigilConfig;
  /** Absolute path of the config file. */
  configPath: string;
  /** The config file's folder: relative paths resolve against it. */
  dir: string;
  paths: VigilPaths;
  /** `workers`: no triggers process (extra hosts). Default `all`. */
  role?: "all" | "workers";
  /** A `--store` URL given on the command line, handed on to every child. */
  storeUrl?: string;
}

function rowName(service: string, index: number, instances: number): string {
  return instances > 1 ? `${service}:${index}` : service;
}

function stringEnv(env: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return { ...process.env, ...(env ?? {}) };
}

/**
 * The rows to run. A config with queues but no `services` gets one worker process for
 * every queue, so the smallest config still runs its pipeline.
 */
export function buildSlotSpecs(input: SlotSpecInput): SlotSpec[] {
  const { config, configPath, dir, paths } = input;
  const cli = (sub: string[]): string[] => [
    process.execPath,
    VIGIL_BIN,
    ...sub,
    "-c",
    configPath,
    ...(input.storeUrl ? ["--store", input.storeUrl] : []),
  ];
  const services = { ...config.services };
  if (Object.keys(services).length === 0 && Object.keys(config.queues).length > 0) {
    services.workers = { queues: Object.keys(config.queues), instances: 1 };
  }
  // A draining worker must finish (or give back) its jobs before the supervisor's SIGKILL
  // lands `killTimeout` after SIGTERM; a second of slack covers closing the store.
  const drainMs = Math.max(500, config.supervision.killTimeout - 1000);
  const out: SlotSpec[] = [];
  for (const [service, svc] of Object.entries(services)) {
    for (let i = 1; i <= svc.instances; i++) {
      const name = rowName(service, i, svc.instances);
      const file = rowFileName(name);
      const common = {
        name,
        service,
        index: i,
        env: stringEnv(svc.env),
        maxMemory: svc.maxMemory || undefined,
        logFile: join(paths.logs, `${file}.log`),
      };
      if ("queues" in svc) {
        const env = { ...common.env, [ENV_STALL_AFTER]: String(config.supervision.stallAfter) };
        out.push({ ...common, env, kind: "worker", argv: cli(["worker", "--queues", svc.queues.join(","), "--shutdown-timeout", `${drainMs}ms`]), cwd: dir, ipc: true, stackFile: join(paths.stacks, `${file}.json`), commandsDir: paths.commands });
      } else {
        out.push({
          ...common,
          kind: "command",
          argv: [...svc.command],
          cwd: svc.cwd ? resolve(dir, svc.cwd) : dir,
          ipc: false,
          ...(svc.probe ? { probe: svc.probe } : {}),
          ...(svc.statusFile ? { statusFile: isAbsolute(svc.statusFile) ? svc.statusFile : resolve(dir, svc.statusFile) } : {}),
        });
      }
    }
  }
  if (input.role !== "workers" && Object.keys(config.triggers).length > 0 && !services[TRIGGERS_SERVICE]) {
    out.push({
      name: TRIGGERS_SERVICE,
      service: TRIGGERS_SERVICE,
      kind: "worker",
      index: 1,
      argv: cli(["triggers"]),
      cwd: dir,
      env: stringEnv(undefined),
      ipc: true,
      stackFile: join(paths.stacks, `${TRIGGERS_SERVICE}.json`),
      logFile: join(paths.logs, `${TRIGGERS_SERVICE}.log`),
    });
  }
  return out;
}
