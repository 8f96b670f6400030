/**
 * A command handler: any program as a stage, in any language (DESIGN.md, "Handler
 * contract"). Per job, the program runs without a shell, as the leader of its own process
 * group; it reads `{ id, queue, payload, key, attempt }` as JSON on stdin and prints its
 * result on stdout.
 *
 * - exit 0: stdout parsed as JSON is the result; stdout that is not JSON becomes
 *   `{ stdout }`; empty stdout is `null`. Anything on stderr (its last 4 KiB) is logged
 *   once, as `stderr` on the job's log line.
 * - non-zero exit (or death by a signal): the attempt fails with the tail of stderr.
 * - the job's signal aborts (timeout, lost lease, shutdown): SIGTERM to the whole group,
 *   SIGKILL `termGraceMs` later.
 * - stdout over `maxOutput`: the group is killed and the attempt fails saying so.
 * - when the program exits, whatever it left running in its group is killed, so nothing a
 *   job started outlives the job.
 */
import { basename } from "node:path";
import { NonRetryableError } from "../core/errors.js";
import { killGroup, spawnGroup } from "../os/process.js";
import { COMMAND_TOKEN_ENV, type CommandRegistry } from "./command-registry.js";
import type { Handler } from "./types.js";

/** Largest stdout a command handler may print (1 MiB), as in the config's `maxOutput`. */
export const DEFAULT_MAX_OUTPUT = 1 << 20;
/** How much of stderr's end becomes the error message (4 KiB): enough for a traceback. */
export const STDERR_TAIL_BYTES = 4096;
/**
 * Between SIGTERM and SIGKILL when a command is aborted (2 s). It lets a program flush or
 * clean up; it must stay well under the queue's `killGrace` (default 5 s) so the handler
 * settles before the worker would declare itself wedged.
 */
export const DEFAULT_TERM_GRACE_MS = 2000;

export interface CommandHandlerOptions {
  /** Program and arguments; never run through a shell. */
  command: readonly string[];
  /** Added to the worker's environment. */
  env?: Record<string, string>;
  /** Working folder (default: the worker's). */
  cwd?: string;
  /** Largest stdout in bytes (default 1 MiB). */
  maxOutput?: number;
  /** ms between SIGTERM and SIGKILL on abort (default 2 s). */
  termGraceMs?: number;
  /** Records the running groups so orphans of a killed worker can be ended (see command-registry.ts). */
  registry?: CommandRegistry;
}

/** Builds a handler that runs `opts.command` once per job. */
export function commandHandler(opts: CommandHandlerOptions): Handler {
  const argv = [...opts.command];
  if (argv.length === 0) throw new Error("commandHandler: empty command");
  const name = basename(argv[0]!);
  const maxOutput = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
  const termGraceMs = opts.termGraceMs ?? DEFAULT_TERM_GRACE_MS;

  return (job, ctx) =>
    new Promise((resolve, reject) => {
      if (ctx.signal.aborted) {
        reject(new Error(`${name} not started: the job was aborted`));
        return;
      }
      const input = JSON.stringify({
        id: job.id,
        queue: job.queue,
        payload: job.payload,
        key: job.key,
        attempt: job.attempt,
      });
      // Recorded before it starts: a worker killed right after the start still leaves a
      // record that finds the command (command-registry.ts).
      const token = opts.registry?.reserve(job.id, argv);
      const child = spawnGroup(argv, {
        cwd: opts.cwd,
        env: {
          ...process.env,
          ...opts.env,
          VIGIL_JOB_ID: String(job.id),
          VIGIL_QUEUE: job.queue,
          VIGIL_ATTEMPT: String(job.attempt),
          ...(token ? { [COMMAND_TOKEN_ENV]: token } : {}),
        },
        stdio: ["pipe", "pipe", "pipe"],
      });
      const pgid = child.pid;
      // (A spawn that failed has no pid; 'close' below removes its record.)
      if (token && pgid) opts.registry!.started(token, pgid);
      const out: Buffer[] = [];
      let outBytes = 0;
      let errTail = Buffer.alloc(0);
      let killedFor: Error | null = null;
      let spawnError: Error | null = null;
      let termTimer: NodeJS.Timeout | undefined;

      const kill = (reason: Error, now: boolean) => {
        if (killedFor) return;
        killedFor = reason;
        if (now) {
          killGroup(child.pid, "SIGKILL");
          return;
        }
        killGroup(child.pid, "SIGTERM");
        termTimer = setTimeout(() => killGroup(child.pid, "SIGKILL"), termGraceMs);
      };
      const onAbort = () => {
        const why = ctx.signal.reason instanceof Error ? ctx.signal.reason.message : "aborted";
        kill(new Error(`${name} was stopped: ${why}`), false);
      };
      ctx.signal.addEventListener("abort", onAbort, { once: true });

      child.stdout!.on("data", (chunk: Buffer) => {
        if (killedFor) return;
        outBytes += chunk.length;
        if (outBytes > maxOutput) {
          out.length = 0;
          kill(
            new Error(
              `${name} printed more than ${maxOutput} bytes on stdout and was killed; ` +
                `write large results to a file and print its path, or raise the queue's maxOutput`,
            ),
            true,
          );
          return;
        }
        out.push(chunk);
      });
      child.stderr!.on("data", (chunk: Buffer) => {
        errTail = Buffer.concat([errTail, chunk]);
        if (errTail.length > STDERR_TAIL_BYTES) errTail = errTail.subarray(errTail.length - STDERR_TAIL_BYTES);
      });
      // A program that exits without reading stdin makes our write fail with EPIPE; its exit
      // status says what happened, so the write error itself is not news.
      child.stdin!.on("error", () => {});
      child.stdout!.on("error", () => {});
      child.stderr!.on("error", () => {});
      child.on("error", (err) => {
        spawnError = err;
      });
      child.on("exit", () => {
        // The leader is gone; anything it left in its group would hold our pipes open (so
        // 'close' would never come) and outlive the job. The group id stays reserved while
        // any member lives, so this cannot reach an unrelated process.
        if (child.pid) {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {
            // the group is already empty
          }
        }
      });
      child.on("close", (code, signal) => {
        clearTimeout(termTimer);
        if (token) opts.registry!.remove(token);
        ctx.signal.removeEventListener("abort", onAbort);
        const stderr = errTail.toString("utf8").trim();
        if (spawnError) {
          const errno = (spawnError as NodeJS.ErrnoException).code;
          const msg = `cannot run ${argv[0]}: ${spawnError.message}`;
          // A missing or non-executable program will not appear on a retry.
          reject(errno === "ENOENT" || errno === "EACCES" ? new NonRetryableError(msg) : new Error(msg));
          return;
        }
        if (killedFor) {
          if (stderr) killedFor.message += `; stderr: ${stderr}`;
          reject(killedFor);
          return;
        }
        if (code !== 0) {
          const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
          reject(new Error(stderr ? `${name} ${how}: ${stderr}` : `${name} ${how} (stderr was empty)`));
          return;
        }
        // A successful command's stderr (its last 4 KiB) goes to the job's log, where the
        // dashboard's Runs page shows it beside the job; a failure's is in its error.
        if (stderr) ctx.log.info({ stderr }, "command wrote to stderr");
        resolve(parseOutput(Buffer.concat(out).toString("utf8")));
      });
      child.stdin!.end(input);
    });
}

/** JSON stdout is the result; other text is `{ stdout }`; nothing at all is `null`. */
export function parseOutput(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  try {
    return JSON.parse(trimmed);
  } catch {
    return { stdout: text.replace(/\r?\n$/, "") };
  }
}
