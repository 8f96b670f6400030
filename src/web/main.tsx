// The Vigil dashboard: header, navigation and the page the URL hash names.
import "./locale.js";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { href, startLive, useLive, useRoute } from "./lib.js";
import { askLogin, LoginForm, logout, refreshSession, useSession } from "./session.js";
import { Overview } from "./pages/overview.js";
import { Jobs } from "./pages/jobs.js";
import { Services } from "./pages/services.js";
import { Incidents } from "./pages/incidents.js";
import { Triggers } from "./pages/triggers.js";
import { Runs } from "./pages/runs.js";

const PAGES: [string, string][] = [
  ["overview", "Overview"],
  ["jobs", "Jobs"],
  ["services", "Services"],
  ["incidents", "Incidents"],
  ["triggers", "Triggers"],
  ["runs", "Runs"],
];
const THEME_KEY = "vigil-theme";

function applyTheme(t: string | null): void {
  if (t === "dark" || t === "light") document.documentElement.dataset["theme"] = t;
  else delete document.documentElement.dataset["theme"];
}

function ThemeToggle() {
  const [theme, setTheme] = useState(() => localStorage.getItem(THEME_KEY));
  const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  const flip = (): void => {
    const next = dark ? "light" : "dark";
    localStorage.setItem(THEME_KEY, next);
    applyTheme(next);
    setTheme(next);
  };
  return (
    <button id="theme" type="button" onClick={flip} title="Switch light / dark">
      {dark ? "Light" : "Dark"}
    </button>
  );
}

function App() {
  const route = useRoute();
  const session = useSession();
  const { ev, connected } = useLive();
  useEffect(() => void refreshSession().catch(() => {}), []);
  const Page = { overview: Overview, jobs: Jobs, services: Services, incidents: Incidents, triggers: Triggers, runs: Runs }[route.page] ?? Overview;
  return (
    <>
      <header>
        <h1>Vigil</h1>
        <nav>
          {PAGES.map(([id, label]) => (
            <a key={id} href={href(id)} class={route.page === id ? "on" : ""} id={`nav-${id}`}>
              {label}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        <span id="live" class={connected ? "ok" : "muted"} title={ev ? new Date(ev.at).toISOString() : ""}>
          {connected ? `live · ${ev?.snapshot.source ?? ""}` : "connecting…"}
        </span>
        {session.readOnly ? (
          <span id="readonly" class="muted">read-only</span>
        ) : session.authenticated ? (
          <button type="button" id="logout" onClick={() => void logout()}>
            Log out
          </button>
        ) : (
          <button type="button" id="login" onClick={() => askLogin(true)}>
            Log in
          </button>
        )}
        <ThemeToggle />
      </header>
      {session.loginWanted && !session.authenticated && (
        <div class="panel">
          <LoginForm />
        </div>
      )}
      <main>
        <Page params={route.params} />
      </main>
    </>
  );
}

applyTheme(localStorage.getItem(THEME_KEY));
startLive();
render(<App />, document.getElementById("app")!);
