/**
 * Stage 2, `implement`: turns the outline into an implementation plan with tests, writes
 * data/implementations/<id>.md, and hands it to `qa`. When QA sent the work back, the
 * payload carries every finding so far and the draft addresses them.
 */
import { createHash } from "node:crypto";
import { maybeChaos } from "./chaos.js";
import {
  NonRetryableError,
  writeDataFile,
  type Idea,
  type ImplementPayload,
  type OutlineSection,
  type QaPayload,
  type StageContext,
  type StageJob,
} from "./common.js";

/**
 * How a first draft falls short, so QA has something to find and the loop back to
 * `implement` is visible: `none` passes at once; `todo` leaves a TODO (fixed in round 2);
 * `no-tests` forgets the tests, then writes too few (fixed in round 3). Chosen from a hash
 * of the idea id, so every run of the example behaves the same.
 */
export type DraftHabit = "none" | "todo" | "no-tests";

/** The draft habit of an idea: the same for an id on every run. */
export function habitOf(ideaId: string): DraftHabit {
  const n = createHash("sha256").update(`habit:${ideaId}`).digest().readUInt32BE(0);
  return (["none", "todo", "no-tests"] as const)[n % 3]!;
}

// ---------------------------------------------------------------------------------------
// GENERATOR — the one function to replace with a real implementation generator (a model
// call, a code template...). It gets the idea, its outline and QA's findings so far, and
// returns the Markdown for data/implementations/<id>.md. QA (qa.py) expects: a section
// per outline heading, no TODO left, and a `## Tests` section naming every heading.
// ---------------------------------------------------------------------------------------
export async function draftImplementation(
  idea: Idea,
  outline: OutlineSection[],
  feedback: string[],
  round: number,
): Promise<string> {
  const habit = habitOf(idea.id);
  const heard = (pattern: RegExp) => feedback.some((f) => pattern.test(f));
  const lines = [`<!-- vigil-example round: ${round} -->`, `# ${idea.title}: implementation`, ""];
  for (const section of outline) {
    lines.push(`## ${section.heading}`, "");
    for (const point of section.points) lines.push(`- Build: ${point.replace(/\.$/, "")}.`);
    if (habit === "todo" && section.heading === "Edge cases" && !heard(/TODO/)) {
      lines.push("- TODO: decide what happens here.");
    }
    lines.push("");
  }
  if (habit !== "no-tests" || heard(/no `## Tests` section/)) {
    const covered = habit === "no-tests" && !heard(/tests do not cover/) ? outline.slice(0, 1) : outline;
    lines.push("## Tests", "");
    for (const section of covered) lines.push(`- ${section.heading}: one check per point above.`);
    lines.push("");
  }
  if (feedback.length > 0) {
    lines.push("## Review history", "", ...feedback.map((f) => `- addressed: ${f}`), "");
  }
  return lines.join("\n");
}

function readPayload(payload: unknown): ImplementPayload {
  const p = payload as Partial<ImplementPayload> | null;
  if (!p?.idea?.id || !Array.isArray(p.outline)) {
    throw new NonRetryableError("an implement job needs { idea, outline } from the outline stage");
  }
  return {
    idea: p.idea,
    outline: p.outline,
    outlinePath: p.outlinePath ?? "",
    round: typeof p.round === "number" ? p.round : 1,
    feedback: Array.isArray(p.feedback) ? p.feedback : [],
  };
}

/** The `implement` handler: writes the draft for this round and hands it to `qa`. */
export default async function implement(job: StageJob<unknown>, ctx: StageContext): Promise<QaPayload> {
  const input = readPayload(job.payload);
  await maybeChaos("implement", input.idea.id, input.round, job.attempt);
  ctx.heartbeat({ step: "drafting", round: input.round });
  const text = await draftImplementation(input.idea, input.outline, input.feedback, input.round);
  const implementationPath = writeDataFile(`implementations/${input.idea.id}.md`, text);
  ctx.log.info({ idea: input.idea.id, round: input.round, implementationPath }, "implementation written");
  return { ...input, implementationPath };
}
