// Overview: the health strip, each queue with its live sparklines (and Pause / Resume), and whatever is stuck.
import { useEffect, useState } from "preact/hooks";
import { fmtDuration, Rel, State } from "../format.js";
import { href, postJson, useJson, useLive } from "../lib.js";
import { act, useSession } from "../session.js";
import { Spark } from "../spark.js";

interface HealthCheck {
  name: string;
  status: string;
  message: string;
}
interface Report {
  services: { service: string; mtbfMs: number | null; mttrMs: number | null; open: number; uptimePct: number }[];
  queues: { queue: string; throughputPerHour: number; p95Ms: number | null }[];
}

const mean = (xs: (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => typeof x === "number");
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
};

const HEALTH_CLASS: Record<string, string> = { ok: "running", degraded: "stalled", unhealthy: "crash-looping" };

/** A queue whose oldest due job has waited longer than this reads as stuck. */
const STUCK_WAIT_MS = 60_000;

export function Overview(_: { params: URLSearchParams }) {
  const { ev, history } = useLive();
  const session = useSession();
  const [msg, setMsg] = useState("");
  const health = useJson<{ status: string; checks: HealthCheck[] }>("/api/health");
  const report = useJson<Report>("/api/report?since=24h");
  // Health and the report are read on their own, slower: every 30 s is plenty for a 24 h window.
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === "visible") {
        health.reload();
        report.reload();
      }
    }, 30_000);
    return () => clearInterval(t);
  }, []);
  if (!ev) return <p class="muted">Waiting for the live status…</p>;
  const snap = ev.snapshot;
  const paused = new Set(snap.paused ?? []);
  const canAct = !session.readOnly;
  const flip = async (q: string, verb: "pause" | "resume"): Promise<void> => {
    try {
      const out = await act(() => postJson(`/api/queues/${encodeURIComponent(q).replace(/%3A/gi, ":")}/${verb}`));
      if (out) setMsg(`Queue ${q} ${verb === "pause" ? "paused" : "resumed"}.`);
    } catch (e) {
      setMsg(`${verb === "pause" ? "Pausing" : "Resuming"} queue ${q} failed: ${(e as Error).message}`);
    }
  };
  const open = snap.incidents.filter((i) => i.recoveredAt === null);
  const r = report.data;
  const stuck: { what: string; verdict: string; link: string }[] = [];
  for (const s of snap.services) {
    if (s.state !== "running") stuck.push({ what: `service ${s.name}`, verdict: s.state, link: href("services", { name: s.name }) });
  }
  for (const [q, ms] of Object.entries(ev.oldestWaitingMs)) {
    // A paused queue's jobs wait on purpose: the queue table says paused, this list stays quiet.
    if (ms !== null && ms > STUCK_WAIT_MS && !paused.has(q)) {
      stuck.push({ what: `queue ${q}`, verdict: `oldest job waiting ${fmtDuration(ms)}`, link: href("jobs", { queue: q, state: "waiting" }) });
    }
  }
  for (const c of health.data?.checks ?? []) {
    if (c.status !== "ok") stuck.push({ what: `check ${c.name}`, verdict: `${c.status}: ${c.message}`, link: href("overview") });
  }
  return (
    <>
      <div class="strip" id="health-strip">
        <div class="card" id="card-health">
          <span>health</span>
          <b class={`state-${HEALTH_CLASS[health.data?.status ?? ""] ?? ""}`}>{health.data?.status ?? (health.error ? "n/a" : "…")}</b>
        </div>
        <div class="card" id="card-uptime">
          <span>supervisor up</span>
          <b>{snap.supervisor ? fmtDuration(ev.at - snap.supervisor.startedAt) : "not running"}</b>
        </div>
        <div class="card" id="card-mtbf">
          <span>MTBF (24 h)</span>
          <b>{r ? fmtDuration(mean(r.services.map((s) => s.mtbfMs))) : "…"}</b>
        </div>
        <div class="card" id="card-mttr">
          <span>MTTR (24 h)</span>
          <b>{r ? fmtDuration(mean(r.services.map((s) => s.mttrMs))) : "…"}</b>
        </div>
        <div class="card" id="card-open">
          <span>open incidents</span>
          <b class={open.length ? "state-open" : ""}>
            <a href={href("incidents", { open: 1 })}>{open.length}</a>
          </b>
        </div>
      </div>
      <h2>Queues</h2>
      {msg && <p id="queues-msg" role="status">{msg}</p>}
      <table id="queues">
        <thead>
          <tr>
            <th>Queue</th>
            <th>Scheduled</th>
            <th>Waiting</th>
            <th>Active</th>
            <th>Completed</th>
            <th>Failed</th>
            <th>Dead</th>
            <th>Cancelled</th>
            <th class="wrap">Depth</th>
            <th class="wrap">Done / min</th>
            <th class="wrap">Oldest waiting</th>
            {canAct && <th />}
          </tr>
        </thead>
        <tbody>
          {Object.entries(snap.queues).map(([q, c]) => {
            const h = history.get(q) ?? [];
            const link = (state: string, n: number) => <a href={href("jobs", { queue: q, state })}>{n}</a>;
            const count = (state: string, n: number) => <td class="num">{link(state, n)}</td>;
            return (
              <tr key={q} data-queue={q}>
                <td class="wrap">
                  <a href={href("jobs", { queue: q })}>{q}</a>
                  {paused.has(q) && <> <span class="badge" data-paused={q} title="Claims are held until it is resumed">paused</span></>}
                </td>
                {count("scheduled", c.scheduled)}
                {count("waiting", c.waiting)}
                {count("active", c.active)}
                {count("completed", c.completed)}
                {count("failed", c.failed)}
                {count("dead", c.dead)}
                {count("cancelled", c.cancelled)}
                <td><Spark data={h} field="depth" label="waiting + scheduled" /></td>
                <td><Spark data={h} field="throughput" label="completed per minute" /></td>
                <td>
                  <Spark data={h} field="oldestS" label="oldest waiting, seconds" /> {fmtDuration(ev.oldestWaitingMs[q] ?? null)}
                </td>
                {canAct && (
                  <td>
                    {paused.has(q) ? (
                      <button type="button" data-resume={q} onClick={() => void flip(q, "resume")}>Resume</button>
                    ) : (
                      <button type="button" data-pause={q} onClick={() => void flip(q, "pause")}>Pause</button>
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
      <h2>Stuck</h2>
      {stuck.length === 0 ? (
        <p class="muted" id="stuck-none">Nothing is stuck.</p>
      ) : (
        <table id="stuck">
          <tbody>
            {stuck.map((s) => (
              <tr key={s.what}>
                <td><a href={s.link}>{s.what}</a></td>
                <td class="wrap"><State s={s.verdict.split(":")[0]!} />{s.verdict.includes(":") ? s.verdict.slice(s.verdict.indexOf(":")) : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p class="muted">
        Status from the {snap.source}, <Rel at={snap.at} now={ev.at} />.
      </p>
    </>
  );
}
