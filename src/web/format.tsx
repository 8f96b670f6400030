// How times, durations and sizes read on the page.
export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  const a = Math.abs(ms);
  if (a < 1000) return `${Math.round(ms)}ms`;
  if (a < 60_000) return `${(ms / 1000).toFixed(a < 10_000 ? 1 : 0)}s`;
  if (a < 3_600_000) return `${Math.floor(a / 60_000)}m ${Math.floor((a % 60_000) / 1000)}s`;
  if (a < 86_400_000) return `${Math.floor(a / 3_600_000)}h ${Math.floor((a % 3_600_000) / 60_000)}m`;
  return `${Math.floor(a / 86_400_000)}d ${Math.floor((a % 86_400_000) / 3_600_000)}h`;
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "-";
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(0)} MiB`;
  return `${(n / (1 << 30)).toFixed(1)} GiB`;
}

function utc(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** A time as "12s ago" / "in 3m", with the UTC time on hover. */
export function Rel({ at, now }: { at: number | null | undefined; now?: number }) {
  if (!at) return <span class="muted">-</span>;
  const d = (now ?? Date.now()) - at;
  const text = d >= 0 ? `${fmtDuration(d)} ago` : `in ${fmtDuration(-d)}`;
  return (
    <time dateTime={new Date(at).toISOString()} title={utc(at)}>
      {text}
    </time>
  );
}

export function State({ s }: { s: string }) {
  return <span class={`state-${s}`}>{s}</span>;
}

/** JSON for reading, bounded so a huge payload cannot freeze the tab. */
export function Json({ v }: { v: unknown }) {
  let text = typeof v === "string" ? v : JSON.stringify(v, null, 2);
  if (text === undefined) text = "-";
  if (text.length > 20_000) text = text.slice(0, 20_000) + "\n… (cut)";
  return <pre>{text}</pre>;
}
