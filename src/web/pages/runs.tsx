// Runs: pipeline runs with search, one run's stages in order (each job's own log lines on
// click), and a rerun from a stage with its input open for editing. Tolerant of fields the
// server does not send.
import { useState } from "preact/hooks";
import { fmtDuration, Json, Rel, State } from "../format.js";
import { JobLog } from "./job-log.js";
import { go, href, postJson, useJson } from "../lib.js";
import { act, useSession } from "../session.js";

interface RunRow {
  id: number;
  key?: string | null;
  state?: string;
  createdAt?: number;
  finishedAt?: number | null;
  stages?: unknown;
}
interface RunJob {
  id: number;
  queue: string;
  state: string;
  attempt?: number;
  workerId?: string | null;
  host?: string | null;
  createdAt?: number;
  startedAt?: number | null;
  finishedAt?: number | null;
  error?: string | null;
  resultPreview?: unknown;
  result?: unknown;
  payload?: unknown;
  runMs?: number | null;
}

/** The stages in a line, each with its state when the server gives one. */
function Stages({ s }: { s: unknown }) {
  if (!Array.isArray(s)) return <>{typeof s === "number" ? s : "-"}</>;
  return (
    <>
      {s.map((x: unknown, i) => {
        const st = typeof x === "string" ? { queue: x } : (x as { queue?: string; state?: string });
        return (
          <span key={i}>
            {i > 0 && " → "}
            <span class={st.state ? `state-${st.state}` : ""} title={st.state}>{st.queue ?? "?"}</span>
          </span>
        );
      })}
    </>
  );
}

export function Runs({ params }: { params: URLSearchParams }) {
  const search = params.get("search") ?? "";
  const state = params.get("state") ?? "";
  const before = params.get("before") ?? "";
  const id = Number(params.get("id") ?? 0);
  const q = new URLSearchParams({ limit: "50" });
  if (search) q.set("search", search);
  if (state) q.set("state", state);
  if (before) q.set("before", before);
  const { data, error } = useJson<{ runs: RunRow[]; nextBefore?: number | null }>(`/api/runs?${q}`);
  const [text, setText] = useState(search);
  return (
    <>
      <h2>Runs</h2>
      <form class="filters" onSubmit={(e) => (e.preventDefault(), go("runs", { search: text, state }))}>
        <input id="runs-search" placeholder="search key or payload" value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        <select id="runs-state" value={state} onChange={(e) => go("runs", { search, state: (e.target as HTMLSelectElement).value })}>
          <option value="">any state</option>
          {["running", "completed", "dead", "cancelled"].map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
        <button type="submit">Search</button>
      </form>
      {error && <p class="error" id="runs-error">{/404|no such endpoint/.test(error) ? "This server has no runs API yet." : error}</p>}
      {id > 0 && <RunPanel id={id} />}
      <table id="runs">
        <thead><tr><th>Run</th><th>Key</th><th>State</th><th>Stages</th><th>Started</th><th>Took</th></tr></thead>
        <tbody>
          {(data?.runs ?? []).map((r) => (
            <tr key={r.id} data-run={r.id} class={`click ${id === r.id ? "sel" : ""}`} onClick={() => go("runs", { search, state, before, id: r.id })}>
              <td><a href={href("runs", { search, state, before, id: r.id })}>{r.id}</a></td>
              <td>{r.key ?? "-"}</td>
              <td>{r.state ? <State s={r.state} /> : "-"}</td>
              <td class="wrap"><Stages s={r.stages} /></td>
              <td><Rel at={r.createdAt} /></td>
              <td>{r.createdAt && r.finishedAt ? fmtDuration(r.finishedAt - r.createdAt) : "-"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.runs.length === 0 && <p class="muted">No runs match.</p>}
      {data?.nextBefore ? <a href={href("runs", { search, state, before: data.nextBefore })}>older runs →</a> : null}
    </>
  );
}

function RunPanel({ id }: { id: number }) {
  const session = useSession();
  const [n, setN] = useState(0);
  const { data: run, error } = useJson<RunRow & { jobs?: RunJob[] }>(`/api/runs/${id}`, [n]);
  const [from, setFrom] = useState<RunJob | null>(null);
  const [input, setInput] = useState("");
  const [msg, setMsg] = useState("");
  if (error) return <p class="error">{error}</p>;
  if (!run) return <p class="muted">Loading run {id}…</p>;
  const jobs = run.jobs ?? [];
  const pick = async (j: RunJob): Promise<void> => {
    setFrom(j);
    setMsg("");
    const full = await fetch(`/api/jobs/${j.id}`).then((r) => (r.ok ? r.json() : null)).catch(() => null);
    setInput(JSON.stringify((full as { payload?: unknown } | null)?.payload ?? j.payload ?? null, null, 2));
  };
  const rerun = async (): Promise<void> => {
    if (!from) return;
    let payload: unknown;
    try {
      payload = JSON.parse(input);
    } catch {
      setMsg("The input is not valid JSON.");
      return;
    }
    try {
      const out = await act(() => postJson<{ id?: number; runId?: number }>(`/api/runs/${id}/rerun`, { from: from.queue, payload }));
      if (out) {
        const to = out.runId ?? out.id;
        setMsg(to ? `Rerun started: run ${to}.` : "Rerun started.");
        setFrom(null);
        setN((x) => x + 1);
      }
    } catch (e) {
      setMsg((e as Error).message);
    }
  };
  return (
    <div class="panel" id="run-detail" data-run={id}>
      <b>Run {id}</b> {run.key && <span class="muted">key {run.key}</span>} {run.state && <State s={run.state} />}
      <ol class="timeline">
        {jobs.map((j) => (
          <li key={j.id} class={j.state === "completed" ? "dot-ok" : j.state === "dead" || j.state === "failed" ? "dot-bad" : ""} data-stage={j.queue}>
            <b>{j.queue}</b> <State s={j.state} /> · <a href={href("jobs", { queue: j.queue, job: j.id })}>job {j.id}</a>
            {j.attempt ? <> · attempt {j.attempt}</> : null}
            {j.host || j.workerId ? <span class="muted"> · {j.workerId ?? j.host}</span> : null}
            {" · "}
            <Rel at={j.startedAt ?? j.createdAt} />
            {j.startedAt && j.finishedAt ? <> · took {fmtDuration(j.finishedAt - j.startedAt)}</> : null}
            {j.error && <div class="error">{j.error}</div>}
            <JobLog id={j.id} />
            {(j.resultPreview ?? j.result ?? null) !== null && (
              <details>
                <summary class="muted">result</summary>
                <Json v={j.resultPreview ?? j.result} />
              </details>
            )}
            {!session.readOnly && (
              <>
                {" "}
                <button type="button" data-rerun={j.queue} onClick={() => void pick(j)}>Rerun from here…</button>
              </>
            )}
          </li>
        ))}
      </ol>
      {from && (
        <div id="rerun-editor">
          <p>Rerun from <b>{from.queue}</b> with this input:</p>
          <textarea id="rerun-input" value={input} onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)} />
          <button type="button" id="rerun-confirm" onClick={() => void rerun()}>Rerun</button> <button type="button" onClick={() => setFrom(null)}>Never mind</button>
        </div>
      )}
      {msg && <p id="rerun-msg" role="status">{msg}</p>}
    </div>
  );
}
