// Jobs: filter by queue and state, click a job for its payload, result, history and why (kept
// current by the live stream);
// retry or cancel everything a filter matches, after seeing how many that is.
import { useState } from "preact/hooks";
import { Json, Rel, State } from "../format.js";
import { go, href, postJson, useJson, useLive } from "../lib.js";
import { act, useSession } from "../session.js";

const STATES = ["scheduled", "waiting", "active", "completed", "failed", "dead", "cancelled"];
const RETRYABLE = ["dead", "failed", "cancelled"];
const CANCELLABLE = ["scheduled", "waiting", "failed"];

interface JobRow {
  id: number;
  queue: string;
  state: string;
  key: string | null;
  attempt: number;
  maxAttempts: number;
  createdAt: number;
  finishedAt: number | null;
  error: string | null;
  rootId?: number | null;
}
interface JobDetail extends JobRow {
  payload: unknown;
  result: unknown;
  history?: { attempt?: number; at?: number; error?: string; kind?: string }[];
  why?: string;
  workerId?: string | null;
  startedAt?: number | null;
}

export function Jobs({ params }: { params: URLSearchParams }) {
  const { ev } = useLive();
  const session = useSession();
  const queue = params.get("queue") ?? "";
  const state = params.get("state") ?? "";
  const sel = Number(params.get("job") ?? 0);
  const before = params.get("before") ?? "";
  const [n, setN] = useState(0);
  const q = new URLSearchParams({ limit: "100" });
  if (queue) q.set("queue", queue);
  if (state) q.set("state", state);
  if (before) q.set("before", before);
  const list = useJson<JobRow[] | { jobs: JobRow[] }>(`/api/jobs?${q}`, [n, ev ? Math.floor(ev.at / 6000) : 0]);
  const jobs = list.data ? (Array.isArray(list.data) ? list.data : list.data.jobs ?? []) : [];
  const queues = Object.keys(ev?.snapshot.queues ?? {});
  const set = (p: Record<string, string | null>) => go("jobs", { queue, state, ...p, job: null, before: null });
  const canAct = !session.readOnly;
  return (
    <>
      <h2>Jobs</h2>
      <div class="filters">
        <label>
          Queue{" "}
          <select id="filter-queue" value={queue} onChange={(e) => set({ queue: (e.target as HTMLSelectElement).value })}>
            <option value="">all</option>
            {[...new Set([...queues, ...(queue ? [queue] : [])])].map((x) => <option key={x} value={x}>{x}</option>)}
          </select>
        </label>
        <label>
          State{" "}
          <select id="filter-state" value={state} onChange={(e) => set({ state: (e.target as HTMLSelectElement).value })}>
            <option value="">all</option>
            {STATES.map((x) => <option key={x} value={x}>{x}</option>)}
          </select>
        </label>
        {canAct && <Bulk key={`r|${queue}|${state}`} verb="retry" queue={queue} state={state} allowed={RETRYABLE} done={() => setN((x) => x + 1)} />}
        {canAct && <Bulk key={`c|${queue}|${state}`} verb="cancel" queue={queue} state={state} allowed={CANCELLABLE} done={() => setN((x) => x + 1)} />}
      </div>
      {list.error && <p class="error">{list.error}</p>}
      <table id="jobs">
        <thead>
          <tr><th>ID</th><th>Queue</th><th>State</th><th>Attempt</th><th>Key</th><th>Created</th><th>Finished</th><th>Error</th></tr>
        </thead>
        <tbody>
          {jobs.map((j) => (
            <tr key={j.id} data-job={j.id} class={`click ${sel === j.id ? "sel" : ""}`} onClick={() => go("jobs", { queue, state, before, job: sel === j.id ? null : j.id })}>
              <td><a href={href("jobs", { queue, state, before, job: j.id })}>{j.id}</a></td>
              <td>{j.queue}</td>
              <td><State s={j.state} /></td>
              <td>{j.attempt}/{j.maxAttempts}</td>
              <td>{j.key ?? "-"}</td>
              <td><Rel at={j.createdAt} /></td>
              <td><Rel at={j.finishedAt} /></td>
              <td class="wrap error">{j.error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && jobs.length === 0 && <p class="muted">No jobs match.</p>}
      <p>
        {before && <a id="jobs-newest" href={href("jobs", { queue, state })}>← newest</a>}{" "}
        {jobs.length === 100 && <a id="jobs-older" href={href("jobs", { queue, state, before: jobs[jobs.length - 1]!.id })}>older →</a>}
      </p>
      {sel > 0 && <JobPanel id={sel} canAct={canAct} changed={() => setN((x) => x + 1)} />}
    </>
  );
}

function JobPanel({ id, canAct, changed }: { id: number; canAct: boolean; changed: () => void }) {
  const [n, setN] = useState(0);
  const [msg, setMsg] = useState("");
  // Read again on each live event (one every 2 s, none while the tab is hidden), so the
  // state and the why follow the job: waiting → active on a worker → done.
  const { ev } = useLive();
  const { data: j, error } = useJson<JobDetail>(`/api/jobs/${id}`, [n, ev?.at]);
  const run = async (verb: "retry" | "cancel"): Promise<void> => {
    try {
      const out = await act(() => postJson(`/api/jobs/${id}/${verb}`));
      if (out) setMsg(`${verb === "retry" ? "Retried" : "Cancelled"} job ${id}.`);
    } catch (e) {
      setMsg((e as Error).message);
    }
    setN((x) => x + 1);
    changed();
  };
  if (error) return <p class="error">{error}</p>;
  if (!j) return <p class="muted">Loading job {id}…</p>;
  return (
    <div class="panel" id="job-detail" data-job={j.id}>
      <b>Job {j.id}</b> on <a href={href("jobs", { queue: j.queue })}>{j.queue}</a>: <State s={j.state} />, attempt {j.attempt}/{j.maxAttempts}
      {j.rootId ? <> · <a href={href("runs", { id: j.rootId })}>run {j.rootId}</a></> : null}
      {canAct && RETRYABLE.includes(j.state) && <> <button type="button" data-retry={j.id} onClick={() => void run("retry")}>Retry</button></>}
      {canAct && !["completed", "dead", "cancelled"].includes(j.state) && <> <button type="button" class="danger" data-cancel={j.id} onClick={() => void run("cancel")}>Cancel</button></>}
      {msg && <span id="job-msg" role="status"> {msg}</span>}
      {j.why && <p id="job-why">{j.why}</p>}
      {j.error && <p class="error">{j.error}</p>}
      <h3>Payload</h3>
      <Json v={j.payload} />
      <h3>Result</h3>
      <Json v={j.result ?? null} />
      <h3>History</h3>
      {j.history && j.history.length > 0 ? <Json v={j.history} /> : <p class="muted">No failed or stalled attempts.</p>}
    </div>
  );
}

/** "Retry all matching…": a dry run shows the count, a second click confirms. */
function Bulk({ verb, queue, state, allowed, done }: { verb: "retry" | "cancel"; queue: string; state: string; allowed: string[]; done: () => void }) {
  const [count, setCount] = useState<number | null>(null);
  const [msg, setMsg] = useState("");
  if (state && !allowed.includes(state)) return null;
  const body = { queue: queue || undefined, state: state || undefined };
  const preview = async (): Promise<void> => {
    setMsg("");
    try {
      const out = await act(() => postJson<{ count: number }>(`/api/jobs/${verb}`, body));
      if (out) setCount(out.count);
    } catch (e) {
      setMsg((e as Error).message);
    }
  };
  const confirmIt = async (): Promise<void> => {
    try {
      const out = await act(() => postJson<{ count: number }>(`/api/jobs/${verb}`, { ...body, confirm: true }));
      if (out) setMsg(`${verb === "retry" ? "Retried" : "Cancelled"} ${out.count} job${out.count === 1 ? "" : "s"}.`);
    } catch (e) {
      setMsg((e as Error).message);
    }
    setCount(null);
    done();
  };
  const what = `${state || allowed.join("/")} jobs${queue ? ` on ${queue}` : ""}`;
  return (
    <span id={`bulk-${verb}`}>
      {count === null ? (
        <button type="button" id={`bulk-${verb}-preview`} class={verb === "cancel" ? "danger" : ""} onClick={() => void preview()}>
          {verb === "retry" ? "Retry" : "Cancel"} all matching…
        </button>
      ) : (
        <span class="panel confirm">
          <span id={`bulk-${verb}-count`}>{count}</span> {what} match. {count > 0 && <button type="button" id={`bulk-${verb}-confirm`} onClick={() => void confirmIt()}>{verb === "retry" ? "Retry" : "Cancel"} {count}</button>}{" "}
          <button type="button" onClick={() => setCount(null)}>Never mind</button>
        </span>
      )}
      {msg && <span id={`bulk-${verb}-msg`} role="status"> {msg}</span>}
    </span>
  );
}
