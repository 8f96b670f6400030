// Triggers: where each one is (cursor, lag, last/next tick) and the records they rejected.
import type { RejectedRecord } from "../../core/types.js";
import { fmtDuration, Rel } from "../format.js";
import { href, useJson, useLive } from "../lib.js";

export function Triggers({ params }: { params: URLSearchParams }) {
  const { ev } = useLive();
  const only = params.get("trigger") ?? "";
  const bucket = ev ? Math.floor(ev.at / 10_000) : 0; // re-read every ~10 s of the stream
  const rejected = useJson<{ rejected: RejectedRecord[] }>("/api/triggers", [bucket]);
  const cursors = useJson<Record<string, { cursor: unknown; version: number } | null>>("/api/triggers/cursors", [bucket]);
  if (!ev) return <p class="muted">Waiting for the live status…</p>;
  const rows = (rejected.data?.rejected ?? []).filter((r) => !only || r.trigger === only);
  return (
    <>
      <h2>Triggers</h2>
      <table id="triggers">
        <thead>
          <tr><th>Name</th><th>Kind</th><th>Queue</th><th>Leader</th><th>Last poll</th><th>Lag</th><th>Cursor</th><th>Last tick</th><th>Next tick</th><th>Seen</th><th>Rejected</th><th>Error</th></tr>
        </thead>
        <tbody>
          {ev.snapshot.triggers.map((t) => (
            <tr key={t.name} data-trigger={t.name}>
              <td>{t.name}</td>
              <td>{t.kind}</td>
              <td><a href={href("jobs", { queue: t.queue })}>{t.queue}</a></td>
              <td>{t.leader === undefined ? "-" : t.leader ? "yes" : "no"}</td>
              <td><Rel at={t.lastPollAt} now={ev.at} /></td>
              <td>{fmtDuration(t.lag)}</td>
              <td class="wrap"><Cursor v={cursors.data?.[t.name]?.cursor} /></td>
              <td>{t.kind === "schedule" ? <Rel at={t.lastTickAt} now={ev.at} /> : "-"}</td>
              <td>{t.kind === "schedule" ? <Rel at={t.nextTickAt} now={ev.at} /> : "-"}</td>
              <td>{t.seen}</td>
              <td>{t.rejected > 0 ? <a href={href("triggers", { trigger: t.name })}>{t.rejected}</a> : 0}</td>
              <td class="wrap error">{t.error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {ev.snapshot.triggers.length === 0 && <p class="muted">No triggers report (is the supervisor running?).</p>}
      <h2>Rejected records {only && <>of {only} · <a href={href("triggers")}>all</a></>}</h2>
      {rows.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <table id="rejected">
          <thead><tr><th>When</th><th>Trigger</th><th>Reason</th><th>Where</th><th>Sample</th></tr></thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i}>
                <td><Rel at={r.at} now={ev.at} /></td>
                <td>{r.trigger}</td>
                <td class="wrap">{r.reason}</td>
                <td>{r.path ? `${r.path}${r.offset !== undefined ? `@${r.offset}` : ""}` : "-"}</td>
                <td class="wrap"><code>{r.sample}</code></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/** A cursor in a line: a tail's file and offset, a watch's seen names count, or its JSON. */
function Cursor({ v }: { v: unknown }) {
  if (v === undefined || v === null) return <span class="muted">-</span>;
  const text = JSON.stringify(v);
  const o = v as { offset?: unknown; seen?: unknown };
  // A tail's cursor is mostly its byte offset; the whole cursor is on hover.
  if (typeof o === "object" && typeof o.offset === "number") return <span title={text.slice(0, 2000)}>offset {o.offset}</span>;
  return <code title={text.length > 120 ? text.slice(0, 2000) : undefined}>{text.length > 120 ? text.slice(0, 117) + "…" : text}</code>;
}
