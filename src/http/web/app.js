// Vigil dashboard: plain JS, no build step. Reads the JSON API every 2 s; retry, cancel
// and restart send the token (asked once, kept in sessionStorage for this tab only).
"use strict";

const REFRESH_MS = 2000; // the supervisor rewrites its status every 2 s: faster shows nothing new
const TOKEN_KEY = "vigil-token";
const $ = (id) => document.getElementById(id);
let pending = null; // an action waiting for the token
let timer = null;

function fmtDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)}s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)}m ${Math.floor((ms % 60000) / 1000)}s`;
  if (ms < 86400000) return `${Math.floor(ms / 3600000)}h ${Math.floor((ms % 3600000) / 60000)}m`;
  return `${Math.floor(ms / 86400000)}d ${Math.floor((ms % 86400000) / 3600000)}h`;
}
const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "-");

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  return td;
}

function button(label, onClick, attrs) {
  const b = document.createElement("button");
  b.textContent = label;
  for (const [k, v] of Object.entries(attrs || {})) b.setAttribute(k, v);
  b.addEventListener("click", onClick);
  return b;
}

function fill(tableId, rows, render, empty) {
  const body = $(tableId).tBodies[0];
  const out = rows.map((r) => {
    const tr = document.createElement("tr");
    for (const td of render(r)) tr.appendChild(td);
    return tr;
  });
  if (out.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(empty, "muted");
    td.colSpan = $(tableId).tHead.rows[0].cells.length;
    tr.appendChild(td);
    out.push(tr);
  }
  body.replaceChildren(...out);
}

function showError(msg) {
  $("error").textContent = msg || "";
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function showTokenForm(show) {
  $("token-form").hidden = !show;
  $("token-forget").hidden = show || !token();
  if (show) $("token-input").focus();
}

async function act(path, what) {
  if (!token()) {
    pending = { path, what };
    showTokenForm(true);
    showError(`Enter the token to ${what}.`);
    return;
  }
  const res = await fetch(path, { method: "POST", headers: { authorization: `Bearer ${token()}` } });
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    pending = { path, what };
    showTokenForm(true);
    showError("The token was refused; enter the one in .vigil/token.");
    return;
  }
  const body = await res.json().catch(() => ({}));
  showError(res.ok ? "" : `Could not ${what}: ${body.error || res.status}`);
  refresh();
}

function renderStatus(s) {
  $("source").textContent = s.source === "supervisor" ? "live" : `from ${s.source}`;
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  fill("services", s.services, (p) => [
    cell(p.name),
    cell(p.state, `state-${p.state}`),
    cell(p.pid),
    cell(p.restarts),
    cell(fmtDuration(p.heartbeatAgeMs)),
    cell(p.activeJobs),
    (() => {
      const td = document.createElement("td");
      td.appendChild(button("Restart", () => act(`/api/services/${encodeURIComponent(p.name)}/restart`, `restart ${p.name}`), { "data-service": p.name }));
      return td;
    })(),
  ], "No services.");
  const queues = Object.entries(s.queues).sort(([a], [b]) => a.localeCompare(b));
  fill("queues", queues, ([name, c]) => [
    cell(name), cell(c.scheduled), cell(c.waiting), cell(c.active), cell(c.completed), cell(c.failed),
    cell(c.dead, c.dead > 0 ? "state-dead" : ""), cell(c.cancelled),
  ], "No queues yet.");
  for (const td of $("queues").tBodies[0].rows) td.dataset.queue = td.cells[0].textContent;
  const select = $("filter-queue");
  const known = new Set([...select.options].map((o) => o.value));
  for (const [name] of queues) {
    if (!known.has(name)) select.appendChild(new Option(name, name));
  }
  fill("triggers", s.triggers, (t) => [
    cell(t.name), cell(t.kind), cell(t.queue), cell(fmtTime(t.lastPollAt)), cell(fmtDuration(t.lag)),
    cell(t.seen), cell(t.rejected, t.rejected > 0 ? "state-failed" : ""),
    cell(fmtTime(t.lastTickAt)), cell(fmtTime(t.nextTickAt)), cell(t.error, t.error ? "error wrap" : "wrap"),
  ], "No triggers.");
  fill("incidents", s.incidents.slice(0, 20), (i) => {
    const d = i.detail || {};
    const why = d.blockedIn ? `blocked in ${d.blockedIn}` : d.reason || (d.code !== undefined ? `exit ${d.code ?? d.signal}` : "");
    return [
      cell(fmtTime(i.detectedAt)), cell(i.service), cell(i.cause),
      cell(i.recoveredAt ? fmtDuration(i.recoveredAt - i.detectedAt) : "open", i.recoveredAt ? "" : "state-stalled"),
      cell(why, "wrap"),
    ];
  }, "No incidents.");
}

function renderJobs(jobs) {
  fill("jobs", jobs, (j) => {
    const actions = document.createElement("td");
    if (["dead", "failed", "cancelled"].includes(j.state)) {
      actions.appendChild(button("Retry", () => act(`/api/jobs/${j.id}/retry`, `retry job ${j.id}`), { "data-retry": String(j.id) }));
    }
    if (["scheduled", "waiting", "active", "failed"].includes(j.state)) {
      actions.appendChild(button("Cancel", () => act(`/api/jobs/${j.id}/cancel`, `cancel job ${j.id}`), { "data-cancel": String(j.id) }));
    }
    const row = [
      cell(j.id), cell(j.queue), cell(j.state, `state-${j.state}`), cell(`${j.attempt}/${j.maxAttempts ?? "-"}`),
      cell(j.key), cell(fmtTime(j.createdAt)), cell(j.error, "wrap"), actions,
    ];
    return row;
  }, "No jobs match.");
  for (const tr of $("jobs").tBodies[0].rows) tr.dataset.job = tr.cells[0].textContent;
}

async function getJson(path) {
  const res = await fetch(path, { headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

async function refresh() {
  clearTimeout(timer);
  try {
    const q = new URLSearchParams({ limit: "50" });
    if ($("filter-queue").value) q.set("queue", $("filter-queue").value);
    if ($("filter-state").value) q.set("state", $("filter-state").value);
    const [status, jobs] = await Promise.all([getJson("/api/status"), getJson(`/api/jobs?${q}`)]);
    renderStatus(status);
    renderJobs(jobs);
    if ($("error").dataset.offline) {
      showError("");
      delete $("error").dataset.offline;
    }
  } catch (err) {
    showError(`Cannot reach Vigil: ${err.message}`);
    $("error").dataset.offline = "1";
  } finally {
    timer = setTimeout(refresh, REFRESH_MS);
  }
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token-input").value = "";
  showTokenForm(false);
  showError("");
  const next = pending;
  pending = null;
  if (next) act(next.path, next.what);
});
$("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showTokenForm(false);
});
$("filter-queue").addEventListener("change", refresh);
$("filter-state").addEventListener("change", refresh);
showTokenForm(false);
refresh();
