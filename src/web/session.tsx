// Who may act: the session cookie (set by POST /login) and the server's read-only switch.
import { useEffect, useState } from "preact/hooks";
import { getJson, HttpProblem } from "./lib.js";

export interface Session {
  authenticated: boolean;
  readOnly: boolean;
  canRestart: boolean;
}

let session: Session = { authenticated: false, readOnly: true, canRestart: false };
let loginWanted = false;
const subs = new Set<() => void>();
const notify = (): void => subs.forEach((f) => f());

export async function refreshSession(): Promise<void> {
  session = await getJson<Session>("/api/session");
  notify();
}

export function useSession(): Session & { loginWanted: boolean } {
  const [, t] = useState(0);
  useEffect(() => {
    const f = (): void => t((x) => x + 1);
    subs.add(f);
    return () => void subs.delete(f);
  }, []);
  return { ...session, loginWanted };
}

export function askLogin(show: boolean): void {
  loginWanted = show;
  notify();
}

/** Runs an action; a 401 opens the login form instead of failing silently. */
export async function act<T>(fn: () => Promise<T>): Promise<T | null> {
  if (!session.authenticated) {
    askLogin(true);
    return null;
  }
  try {
    return await fn();
  } catch (e) {
    if (e instanceof HttpProblem && e.status === 401) {
      session = { ...session, authenticated: false };
      askLogin(true);
      return null;
    }
    throw e;
  }
}

export function LoginForm() {
  const [error, setError] = useState("");
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const input = (e.currentTarget as HTMLFormElement).elements.namedItem("token") as HTMLInputElement;
    const res = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: input.value }).toString(),
    });
    if (!res.ok) {
      setError("That token was refused; it is in .vigil/token (or http.token in the config).");
      return;
    }
    input.value = "";
    setError("");
    loginWanted = false;
    await refreshSession();
  };
  return (
    <form id="login-form" class="login" method="post" action="/login" onSubmit={submit}>
      <label>
        Token (<code>cat .vigil/token</code>):{" "}
        <input id="login-token" name="token" type="password" autocomplete="off" size={28} required />
      </label>
      <button id="login-submit" type="submit">
        Log in
      </button>
      <button type="button" onClick={() => askLogin(false)}>
        Close
      </button>
      {error && (
        <span id="login-error" class="error" role="alert">
          {error}
        </span>
      )}
    </form>
  );
}

export async function logout(): Promise<void> {
  await fetch("/logout", { method: "POST", credentials: "same-origin" });
  await refreshSession();
}
