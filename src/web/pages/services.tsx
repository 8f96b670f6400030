// Services: each supervised process, its last stall's captured stack, and a restart button.
import { useState } from "preact/hooks";
import { fmtBytes, fmtDuration, Rel, State } from "../format.js";
import { go, postJson, useJson, useLive, type Incident } from "../lib.js";
import { act, useSession } from "../session.js";

export function Services({ params }: { params: URLSearchParams }) {
  const { ev } = useLive();
  const session = useSession();
  const [msg, setMsg] = useState("");
  const sel = params.get("name");
  if (!ev) return <p class="muted">Waiting for the live status…</p>;
  const restart = async (name: string): Promise<void> => {
    if (!confirm(`Restart ${name}?`)) return;
    try {
      const out = await act(() => postJson(`/api/services/${encodeURIComponent(name).replace(/%3A/gi, ":")}/restart`));
      if (out) setMsg(`Restart of ${name} requested.`);
    } catch (e) {
      setMsg(`Restart of ${name} failed: ${(e as Error).message}`);
    }
  };
  const canAct = !session.readOnly && session.canRestart;
  return (
    <>
      <h2>Services</h2>
      {msg && <p id="services-msg" role="status">{msg}</p>}
      <table id="services">
        <thead>
          <tr>
            <th>Name</th><th>Kind</th><th>Host</th><th>State</th><th>PID</th><th>Up</th><th>Restarts</th><th>RSS</th><th>Heartbeat</th><th>Last exit</th>
            {canAct && <th />}
          </tr>
        </thead>
        <tbody>
          {ev.snapshot.services.map((s) => (
            <tr key={s.name} data-service={s.name} class={`click ${sel === s.name ? "sel" : ""}`} onClick={() => go("services", { name: s.name })}>
              <td>{s.name}</td>
              <td>{s.kind}</td>
              <td>{s.host}</td>
              <td><State s={s.state} /></td>
              <td>{s.pid ?? "-"}</td>
              <td>{s.startedAt ? fmtDuration(ev.at - s.startedAt) : "-"}</td>
              <td>{s.restarts}</td>
              <td>{fmtBytes(s.rssBytes)}</td>
              <td>{s.heartbeatAgeMs === null ? "-" : `${fmtDuration(s.heartbeatAgeMs)} ago`}</td>
              <td>{s.lastExit ? <>{s.lastExit.signal ?? `code ${s.lastExit.code}`} <Rel at={s.lastExit.at} /></> : "-"}</td>
              {canAct && (
                <td>
                  <button type="button" data-restart={s.name} onClick={(e) => (e.stopPropagation(), void restart(s.name))}>
                    Restart
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {ev.snapshot.services.length === 0 && <p class="muted">No services (is the supervisor running?).</p>}
      {sel && <LastStall service={ev.snapshot.services.find((s) => s.name === sel)?.service ?? sel} name={sel} />}
    </>
  );
}

function LastStall({ service, name }: { service: string; name: string }) {
  const { data } = useJson<Incident[]>(`/api/incidents?service=${encodeURIComponent(name)}&limit=50`, [name]);
  const stall = data?.find((i) => i.cause === "stall");
  return (
    <div class="panel" id="service-detail">
      <b>{name}</b> <span class="muted">({service})</span>
      {!data ? (
        <p class="muted">Loading…</p>
      ) : !stall ? (
        <p class="muted">No stall recorded.</p>
      ) : (
        <>
          <p>
            Last stall <Rel at={stall.detectedAt} />
            {stall.recoveredAt ? <>, recovered after {fmtDuration(stall.recoveredAt - stall.detectedAt)}</> : ", not recovered"}.
          </p>
          <Stack detail={stall.detail} />
        </>
      )}
    </div>
  );
}

/** The blocked stack a stall incident captured, if any. */
export function Stack({ detail }: { detail: Record<string, unknown> }) {
  const stack = detail["stack"];
  if (!Array.isArray(stack) || stack.length === 0) return <p class="muted">No stack was captured.</p>;
  return <pre class="stack">{stack.map(String).join("\n")}</pre>;
}
