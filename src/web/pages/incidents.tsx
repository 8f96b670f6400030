// Incidents: a timeline, newest first, detected → recovered, with the cause and any stack.
import { fmtDuration, Json, Rel, State } from "../format.js";
import { href, useJson, useLive, type Incident } from "../lib.js";
import { Stack } from "./services.js";

export function Incidents({ params }: { params: URLSearchParams }) {
  useLive(); // re-render with the stream, so "ago" stays fresh
  const service = params.get("service") ?? "";
  const since = params.get("since") ?? "7d";
  const openOnly = params.get("open") === "1";
  const sel = Number(params.get("id") ?? 0);
  const q = new URLSearchParams({ since, limit: "200" });
  if (service) q.set("service", service);
  const { data, error } = useJson<Incident[]>(`/api/incidents?${q}`);
  const rows = (data ?? []).filter((i) => !openOnly || i.recoveredAt === null);
  const link = (p: Record<string, string | number | null>) => href("incidents", { service, since, open: openOnly ? 1 : null, ...p });
  return (
    <>
      <h2>Incidents</h2>
      <div class="filters">
        <span>Window:</span>
        {["1h", "24h", "7d", "30d"].map((s) => (
          <a key={s} href={link({ since: s })} class={s === since ? "on" : ""}>{s}</a>
        ))}
        <a href={link({ open: openOnly ? null : 1 })}>{openOnly ? "show all" : "open only"}</a>
        {service && <a href={link({ service: null })}>all services</a>}
      </div>
      {error && <p class="error">{error}</p>}
      {data && rows.length === 0 && <p class="muted">No incidents in this window.</p>}
      <ol class="timeline" id="incidents">
        {rows.map((i) => (
          <li key={i.id} data-incident={i.id} class={i.recoveredAt ? "dot-ok" : "dot-bad"}>
            <a href={link({ id: i.id === sel ? null : i.id })}>
              <b>{i.cause}</b> of {i.service}
            </a>{" "}
            <span class="muted">on {i.host}</span> · detected <Rel at={i.detectedAt} /> →{" "}
            {i.recoveredAt ? (
              <>recovered after {fmtDuration(i.recoveredAt - i.detectedAt)}</>
            ) : (
              <State s="open" />
            )}
            {typeof i.detail["message"] === "string" && <div class="muted">{i.detail["message"] as string}</div>}
            {i.id === sel && (
              <div class="panel">
                <a href={href("incidents", { service: i.service, since })}>this service's incidents</a>
                <Stack detail={i.detail} />
                <Json v={{ ...i.detail, stack: undefined }} />
              </div>
            )}
          </li>
        ))}
      </ol>
    </>
  );
}
