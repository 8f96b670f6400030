/**
 * The token that guards state-changing HTTP endpoints (retry, cancel, restart).
 *
 * It is `http.token` from the config when set; otherwise a random token generated on first
 * start into `.vigil/token` with mode 0600, so only the account that runs Vigil can read it
 * (`cat .vigil/token` is how a person finds it for the dashboard).
 */
import { randomBytes, createHash, timingSafeEqual } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** File name of the generated token inside the state folder (`.vigil/`). */
export const TOKEN_FILE = "token";

/**
 * Returns the configured token, or the one in `<stateDir>/token`, creating it (32 random
 * bytes, base64url) if absent. Two processes starting at once agree: the file is created
 * exclusively and the loser reads the winner's token.
 */
export function resolveToken(stateDir: string, configured?: string | null): string {
  if (configured) return configured;
  const path = join(stateDir, TOKEN_FILE);
  const existing = readToken(path);
  if (existing) return existing;
  mkdirSync(stateDir, { recursive: true });
  const token = randomBytes(32).toString("base64url");
  try {
    writeFileSync(path, token + "\n", { mode: 0o600, flag: "wx" });
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const raced = readToken(path);
    if (!raced) throw new Error(`${path} exists but is empty; delete it and start again`, { cause: err });
    return raced;
  }
}

function readToken(path: string): string | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  // A token file others can read is a token others can use: tighten it instead of trusting it.
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  return text || null;
}

/**
 * Whether an `Authorization` header carries `Bearer <token>`. Both sides are hashed first
 * so the comparison is constant-time whatever their lengths.
 */
export function checkBearer(header: string | undefined, token: string): boolean {
  if (!header || !token) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const a = createHash("sha256").update(m[1]!).digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b);
}
