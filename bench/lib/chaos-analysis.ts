/**
 * What the chaos soak concludes, from the store (through the Store interface, never SQL),
 * the handlers' ledger and the status samples taken during the run. The definitions
 * printed with the results (DEFINITIONS) are the ones coded here.
 */
import { readFileSync } from "node:fs";
import type { Incident, Job } from "../../src/core/types.js";
import type { Fault, FaultKind } from "./chaos-faults.js";
import { IGNORE_ABORT_EXTRA_MS, INGEST_TIMEOUT_MS } from "./chaos-project.js";

export const DEFINITIONS = `Definitions:
- record: one input of the pipeline: a line the tail trigger should read (t-N, every line
  written), a record of a \`vigil enqueue\` batch (e-B-N, only batches whose command exited 0),
  a poison record (p-N) or an abort-ignoring record (a-N).
- lost: a record whose pipeline run did not end as it should: no ingest job at all
  (missing), a job of its run still not final after the drain (stuck), or a job of its run
  dead although the record is not poison (dead). A poison record's run may end dead or
  completed; it is lost only when stuck or missing.
- enqueued twice: a record that became more than one ingest job.
- run: one execution of a handler for a job: a ledger START line and, unless the process
  died first, its END line (same job, attempt and pid).
- twice: a job with a side effect that ran after Vigil had let go of it, either
  (overlap) two runs of the job whose spans overlap (a run without an END counts as ended
  at its START: it left no trace of going on), or (late end) a run whose END came after
  the store recorded that attempt as stalled or timed out (Vigil released it: any later
  side effect of that run is one the next attempt repeats). A rerun after a run that ended
  or died before its release is the at-least-once delivery Vigil promises, not a twice.
- healthy-worker incidents: stall, crash, probe or memory incidents of a service that no
  fault aimed at (the target of a worker fault, or the worker that ran an abort-ignoring
  job's first attempt) within [fault start - 1 s, fault end + 20 s].
- recovery: from the fault's start to the first moment, at or after the fault was lifted,
  when (1) every service reports running and the fault's target (if any) has sent a
  heartbeat since the fault was lifted, (2) every job the target worker held at the fault
  is final, (3) the pipeline run of every record the fault touched is final (the lines
  written around a rotation, the poison or abort-ignoring record), and (4) for faults of
  no one service (supervisor pause, SQLite lock, PostgreSQL restart) a job completed after
  the fault was lifted. (1) comes from \`vigil status\` samples every 500 ms, the rest from
  the jobs' finish times. A fault that never gets there before the drain ends is
  unrecovered.
- "during": a twice (from its release or the later run's start) or a healthy-worker
  incident is put down to the latest fault begun before it, if at most 30 s passed since
  that fault was lifted (for an abort-ignoring handler: since its first run's killGrace ran
  out); else to "none".`;

export interface Sample {
  t: number;
  allRunning: boolean;
  services: { name: string; pid: number | null; state: string; hbAt: number | null }[];
}

interface Run {
  job: number;
  attempt: number;
  pid: number;
  s: number;
  e?: number;
}

export interface Inputs {
  jobs: Job[];
  incidents: Incident[];
  faults: Fault[];
  samples: Sample[];
  ledgerPath: string;
  tailRecords: number;
  direct: Map<string, { poison: boolean }>;
}

export interface Findings {
  records: number;
  jobsCompleted: number;
  lost: { missing: string[]; stuck: string[]; dead: string[] };
  enqueuedTwice: string[];
  twice: { jobs: Set<number>; overlap: Set<number>; lateEnd: Set<number>; at: Map<number, number>; runs: number; reruns: number; cut: number };
  /** Twice jobs and healthy-worker incidents by the kind of fault under way when they began. */
  during: Map<string, { twice: number; healthy: number }>;
  healthyIncidents: Incident[];
  unexpectedTimeouts: Incident[];
  recovery: { fault: Fault; ms: number | null }[];
}

const FINAL = new Set(["completed", "dead", "cancelled"]);
const recOf = (j: Job): string | undefined => (j.payload as { rec?: string } | null)?.rec;

export function analyse(inp: Inputs): Findings {
  const byRec = new Map<string, Job[]>();
  for (const j of inp.jobs) {
    const r = recOf(j);
    if (r) byRec.set(r, [...(byRec.get(r) ?? []), j]);
  }
  const records = [...Array.from({ length: inp.tailRecords }, (_, i) => `t-${i}`), ...inp.direct.keys()];
  const lost = { missing: [] as string[], stuck: [] as string[], dead: [] as string[] };
  const enqueuedTwice: string[] = [];
  /** When a record's pipeline run ended (ms), or null while it has not. */
  const endOf = (rec: string): number | null => {
    const js = byRec.get(rec) ?? [];
    if (!js.some((j) => j.queue === "ingest") || js.some((j) => !FINAL.has(j.state))) return null;
    const done = js.filter((j) => (j.queue === "publish" && j.state === "completed") || j.state === "dead").map((j) => j.finishedAt ?? Infinity);
    return done.length ? Math.max(...done) : null;
  };
  for (const rec of records) {
    const js = byRec.get(rec) ?? [];
    if (js.filter((j) => j.queue === "ingest").length > 1) enqueuedTwice.push(rec);
    if (!js.some((j) => j.queue === "ingest")) lost.missing.push(rec);
    else if (js.some((j) => !FINAL.has(j.state))) lost.stuck.push(rec);
    else if (!inp.direct.get(rec)?.poison && !js.some((j) => j.queue === "publish" && j.state === "completed")) lost.dead.push(rec);
  }

  const runs = readRuns(inp.ledgerPath);
  const twice = judgeRuns(runs, inp.jobs);
  const pidService = new Map<number, string>();
  for (const s of inp.samples) for (const v of s.services) if (v.pid) pidService.set(v.pid, v.name);
  const targets = inp.faults.map((f) => targetOf(f, runs, inp.jobs, pidService));

  const healthyIncidents: Incident[] = [];
  const unexpectedTimeouts: Incident[] = [];
  for (const inc of inp.incidents) {
    if (inc.cause === "stop") continue;
    const aimed = inp.faults.some((f, i) => {
      const t = targets[i]!;
      return t.service === inc.service && inc.detectedAt >= f.t0 - 1000 && inc.detectedAt <= t.until + 20_000;
    });
    if (aimed) continue;
    if (inc.cause === "job-timeout") unexpectedTimeouts.push(inc);
    else healthyIncidents.push(inc);
  }

  const byId = new Map(inp.jobs.map((j) => [j.id, j]));
  const completions = inp.jobs.filter((j) => j.state === "completed" && j.finishedAt !== null).map((j) => j.finishedAt!).sort((a, b) => a - b);
  const recovery = inp.faults.map((f, i) => {
    const target = targets[i]!.service;
    const healthy = inp.samples.find((s) => s.t >= f.t1 && s.allRunning && (!target || (s.services.find((v) => v.name === target)?.hbAt ?? 0) > f.t1));
    const ends: number[] = [healthy ? healthy.t : Infinity];
    for (const id of f.jobs) {
      const j = byId.get(id);
      ends.push(j && FINAL.has(j.state) ? (j.finishedAt ?? Infinity) : Infinity);
    }
    for (const rec of f.recs) ends.push(endOf(rec) ?? Infinity);
    if (f.kind === "supervisor-stop" || f.kind === "sqlite-lock" || f.kind === "pg-restart") ends.push(completions.find((t) => t > f.t1) ?? Infinity);
    const at = Math.max(...ends);
    return { fault: f, ms: Number.isFinite(at) ? Math.max(0, at - f.t0) : null };
  });

  // Which fault was under way: the latest one begun before t whose effects may still show.
  const during = new Map<string, { twice: number; healthy: number }>();
  const kindAt = (t: number): string => {
    let best: Fault | null = null;
    inp.faults.forEach((f, i) => {
      if (f.t0 - 1000 <= t && t <= targets[i]!.until + 30_000 && (!best || f.t0 > best.t0)) best = f;
    });
    return (best as Fault | null)?.kind ?? "none";
  };
  const bump = (k: string, what: "twice" | "healthy") => {
    const e = during.get(k) ?? { twice: 0, healthy: 0 };
    e[what]++;
    during.set(k, e);
  };
  for (const t of twice.at.values()) bump(kindAt(t), "twice");
  for (const inc of healthyIncidents) bump(kindAt(inc.detectedAt), "healthy");

  return {
    records: records.length,
    during,
    jobsCompleted: inp.jobs.filter((j) => j.state === "completed").length,
    lost,
    enqueuedTwice,
    twice,
    healthyIncidents,
    unexpectedTimeouts,
    recovery,
  };
}

/** START/END ledger lines paired into runs. */
function readRuns(path: string): Map<number, Run[]> {
  const out = new Map<number, Run[]>();
  const open = new Map<string, Run[]>();
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line.trim()) continue;
    let l: { job: number; attempt: number; pid: number; ph: string; t: number };
    try {
      l = JSON.parse(line);
    } catch {
      continue; // a line cut by a killed process
    }
    const k = `${l.job}:${l.attempt}:${l.pid}`;
    if (l.ph === "S") {
      const r: Run = { job: l.job, attempt: l.attempt, pid: l.pid, s: l.t };
      out.set(l.job, [...(out.get(l.job) ?? []), r]);
      open.set(k, [...(open.get(k) ?? []), r]);
    } else {
      const r = open.get(k)?.shift();
      if (r) r.e = l.t;
    }
  }
  return out;
}

function judgeRuns(runs: Map<number, Run[]>, jobs: Job[]): Findings["twice"] {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const overlap = new Set<number>();
  const lateEnd = new Set<number>();
  /** When each twice began: the later run's START (overlap) or the release (late end). */
  const at = new Map<number, number>();
  const note = (id: number, t: number) => at.set(id, Math.min(at.get(id) ?? Infinity, t));
  let n = 0;
  let reruns = 0;
  let cut = 0;
  for (const [id, rs] of runs) {
    n += rs.length;
    if (rs.length > 1) reruns++;
    cut += rs.filter((r) => r.e === undefined).length;
    const sorted = [...rs].sort((a, b) => a.s - b.s);
    for (let i = 0; i < sorted.length; i++) {
      for (let k = i + 1; k < sorted.length; k++) {
        if ((sorted[i]!.e ?? sorted[i]!.s) > sorted[k]!.s) {
          overlap.add(id);
          note(id, sorted[k]!.s);
        }
      }
    }
    const history = byId.get(id)?.history ?? [];
    for (const r of rs) {
      const released = history.find((h) => h.attempt === r.attempt && (h.outcome === "stall" || h.outcome === "timeout"));
      if (released && r.e !== undefined && r.e > released.at) {
        lateEnd.add(id);
        note(id, released.at);
      }
    }
  }
  return { jobs: new Set([...overlap, ...lateEnd]), overlap, lateEnd, at, runs: n, reruns, cut };
}

/** The service a fault aimed at and until when its effects may show (abort-ignored: the worker that ran attempt 1). */
function targetOf(f: Fault, runs: Map<number, Run[]>, jobs: Job[], pidService: Map<number, string>): { service: string | null; until: number } {
  if (f.kind !== "abort-ignored") return { service: f.target, until: f.t1 };
  const job = jobs.find((j) => j.queue === "ingest" && recOf(j) === f.recs[0]);
  const first = job ? runs.get(job.id)?.find((r) => r.attempt === 1) : undefined;
  if (!first) return { service: null, until: f.t1 };
  // After the timeout the handler has killGrace (5 s) to settle before its worker is replaced.
  return { service: pidService.get(first.pid) ?? null, until: first.s + INGEST_TIMEOUT_MS + IGNORE_ABORT_EXTRA_MS + 5000 };
}

export function summariseRecovery(rs: Findings["recovery"]): Map<FaultKind, { ms: number[]; unrecovered: number }> {
  const out = new Map<FaultKind, { ms: number[]; unrecovered: number }>();
  for (const r of rs) {
    const e = out.get(r.fault.kind) ?? { ms: [], unrecovered: 0 };
    if (r.ms === null) e.unrecovered++;
    else e.ms.push(r.ms);
    out.set(r.fault.kind, e);
  }
  return out;
}
