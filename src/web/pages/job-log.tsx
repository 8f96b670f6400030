// A job's own log lines (what its handler wrote with ctx.log, a command's stderr), read from
// the worker logs when the reader opens them: GET /api/jobs/:id/log.
import { useState } from "preact/hooks";
import { Rel } from "../format.js";
import type { JobLog as LogAnswer } from "../../core/job-log.js";
import { useJson } from "../lib.js";

export function JobLog({ id }: { id: number }) {
  const [open, setOpen] = useState(false);
  return (
    <details data-log={id} onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary class="muted">log</summary>
      {open && <Lines id={id} />}
    </details>
  );
}

function Lines({ id }: { id: number }) {
  const { data, error } = useJson<LogAnswer>(`/api/jobs/${id}/log`);
  if (error) return <p class="error">{error}</p>;
  if (!data) return <p class="muted">Reading the logs…</p>;
  if (!data.available) return <p class="muted">This server does not read the workers' logs.</p>;
  if (data.lines.length === 0) return <p class="muted">No lines for job {id} in the recent worker logs ({data.files} files).</p>;
  return (
    <table class="log" id={`log-${id}`}>
      <tbody>
        {data.truncated && <tr><td colSpan={4} class="muted">… earlier lines left out</td></tr>}
        {data.lines.map((l, i) => {
          const { stderr, ...rest } = l.fields;
          const more = Object.keys(rest).length ? JSON.stringify(rest) : "";
          return (
            <tr key={i} class={`level-${l.level}`}>
              <td><Rel at={l.at} /></td>
              <td title={l.worker ?? undefined}>{l.attempt !== null ? `#${l.attempt}` : ""}</td>
              <td>{l.level}</td>
              <td class="wrap">
                {l.msg} {more && <code>{more}</code>}
                {typeof stderr === "string" && <pre class="stderr">{stderr}</pre>}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
