/**
 * What the example's stages share: the shapes they hand each other, where they write,
 * and an atomic file write (a stage may be killed mid-write by chaos; a reader must never
 * see half a file).
 *
 * The stages are self-contained on purpose (no import from Vigil's source), so the
 * example folder can be copied anywhere and still run.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** The example's folder (this file lives in stages/). */
export const EXAMPLE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Where everything the pipeline writes goes; ignored by git. */
export const DATA_DIR = join(EXAMPLE_DIR, "data");

/** The parts of a Vigil job a stage reads (the full shape: `HandlerJob` in src/handlers/types.ts). */
export interface StageJob<P> {
  id: number;
  queue: string;
  payload: P;
  key: string | null;
  attempt: number;
}

/** The parts of the handler context a stage uses. */
export interface StageContext {
  signal: AbortSignal;
  heartbeat(progress?: unknown): void;
  log: { info(...args: unknown[]): void; warn(...args: unknown[]): void };
}

/** One line of data/ideas.log. */
export interface Idea {
  id: string;
  title: string;
  description: string;
}

/** One section of an outline: a heading and its points. */
export interface OutlineSection {
  heading: string;
  points: string[];
}

/** What `outline` hands to `implement`, and QA hands back with its feedback. */
export interface ImplementPayload {
  idea: Idea;
  outline: OutlineSection[];
  /** data/outlines/<id>.md, relative to the example folder. */
  outlinePath: string;
  /** 1 for the first implementation, 2 and 3 after QA sent it back. */
  round: number;
  /** QA's findings on the previous round, empty on round 1. */
  feedback: string[];
}

/** What `implement` hands to `qa`. */
export interface QaPayload extends ImplementPayload {
  /** data/implementations/<id>.md, relative to the example folder. */
  implementationPath: string;
}

/** A job's error that Vigil sends straight to `dead` (recognised by its name). */
export class NonRetryableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NonRetryableError";
  }
}

/** Writes a file under data/ via a temp file and a rename; returns its path relative to the example. */
export function writeDataFile(rel: string, text: string): string {
  const path = join(DATA_DIR, rel);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
  return relative(EXAMPLE_DIR, path);
}

/** A file-name-safe form of an idea id. */
export function safeId(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 80) || "idea";
}
