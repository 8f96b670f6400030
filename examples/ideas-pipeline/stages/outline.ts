/**
 * Stage 1, `outline`: asks the outline service for an outline of the idea, writes
 * data/outlines/<id>.md, and returns what `implement` needs (Vigil makes the result the
 * payload of the `implement` job, in the same transaction that completes this one).
 */
import { maybeChaos } from "./chaos.js";
import {
  NonRetryableError,
  safeId,
  writeDataFile,
  type Idea,
  type ImplementPayload,
  type OutlineSection,
  type StageContext,
  type StageJob,
} from "./common.js";

/** Where the outline service listens (the supervisor runs it; see vigil.yaml). */
const OUTLINE_URL = process.env.OUTLINE_URL ?? "http://127.0.0.1:7431";
/**
 * One request's limit. The service answers in milliseconds when healthy; a frozen service
 * must fail this attempt quickly (and be retried after backoff) rather than hold the job
 * until the stage's 10 s timeout.
 */
const REQUEST_TIMEOUT_MS = 3000;

/** Reads an idea from a tail-trigger payload (one JSON line of data/ideas.log). */
export function parseIdea(payload: unknown, jobId: number): Idea {
  const p = (payload ?? {}) as Record<string, unknown>;
  const title = typeof p.title === "string" ? p.title.trim() : "";
  if (!title) throw new NonRetryableError('an idea needs a "title"; this line of data/ideas.log has none');
  const id = typeof p.id === "string" && p.id.trim() ? p.id.trim() : `idea-job-${jobId}`;
  const description = typeof p.description === "string" ? p.description.trim() : "";
  return { id: safeId(id), title, description };
}

/** Asks the outline service; a refused connection or a 5xx fails the attempt (retried). */
async function fetchOutline(idea: Idea, signal: AbortSignal): Promise<OutlineSection[]> {
  const res = await fetch(`${OUTLINE_URL}/outline`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ title: idea.title, description: idea.description }),
    signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
  });
  const body = (await res.json().catch(() => ({}))) as { sections?: OutlineSection[]; error?: string };
  if (res.status >= 400 && res.status < 500) {
    throw new NonRetryableError(`the outline service refused the idea: ${body.error ?? res.status}`);
  }
  if (!res.ok || !Array.isArray(body.sections)) {
    throw new Error(`the outline service answered ${res.status}: ${body.error ?? "no sections"}`);
  }
  return body.sections;
}

function toMarkdown(idea: Idea, sections: OutlineSection[]): string {
  const lines = [`# ${idea.title}`, "", `Idea \`${idea.id}\`: ${idea.description}`, ""];
  for (const s of sections) {
    lines.push(`## ${s.heading}`, "", ...s.points.map((p) => `- ${p}`), "");
  }
  return lines.join("\n");
}

/** The `outline` handler: idea in, `{ idea, outline, outlinePath, round: 1, feedback: [] }` out. */
export default async function outline(job: StageJob<unknown>, ctx: StageContext): Promise<ImplementPayload> {
  const idea = parseIdea(job.payload, job.id);
  await maybeChaos("outline", idea.id, 1, job.attempt);
  const sections = await fetchOutline(idea, ctx.signal);
  const outlinePath = writeDataFile(`outlines/${idea.id}.md`, toMarkdown(idea, sections));
  ctx.log.info({ idea: idea.id, outlinePath }, "outline written");
  return { idea, outline: sections, outlinePath, round: 1, feedback: [] };
}
