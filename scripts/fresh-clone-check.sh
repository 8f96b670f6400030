#!/usr/bin/env bash
# Runs the README's two commands on a fresh clone, as a new user would:
#   npm install && npm start
# and checks that `npm start` reports every seed idea done within the time limit.
#
#   scripts/fresh-clone-check.sh [REPO] [SECONDS]
#     REPO     what to clone (default: this checkout; only committed files are cloned)
#     SECONDS  how long `npm start` may take to say the ideas are done (default 90)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
repo="${1:-$here}"
limit="${2:-90}"
work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-fresh-clone.XXXXXX")"
log="$work/npm-start.log"
start_pid=""

cleanup() {
  if [[ -n "$start_pid" ]] && kill -0 "$start_pid" 2>/dev/null; then
    # npm start runs in its own process group (set -m below): stop all of it.
    kill -TERM -- "-$start_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$start_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$start_pid" 2>/dev/null || true
  fi
  if [[ "${KEEP:-0}" != "1" ]]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

echo "== git clone $repo"
git clone --quiet "$repo" "$work/vigil"
cd "$work/vigil"
echo "   at $(git log --oneline -1)"

echo "== npm install"
t0=$(date +%s)
npm install --no-audit --no-fund --loglevel=error
echo "   took $(( $(date +%s) - t0 )) s"

echo "== npm start (up to ${limit} s for the seed ideas)"
t0=$(date +%s)
set -m
npm start >"$log" 2>&1 &
start_pid=$!
set +m
ok=0
for _ in $(seq 1 "$limit"); do
  if grep -q "ideas are done" "$log"; then ok=1; break; fi
  kill -0 "$start_pid" 2>/dev/null || break
  sleep 1
done
took=$(( $(date +%s) - t0 ))

echo "---- npm start output ----"
grep -v '^{"level"' "$log" | head -60 || true
echo "--------------------------"

echo "== Ctrl-C"
kill -INT -- "-$start_pid" 2>/dev/null || true
stopped=0
for _ in $(seq 1 30); do
  if ! kill -0 "$start_pid" 2>/dev/null; then stopped=1; break; fi
  sleep 1
done
left="$(pgrep -f "$work/vigil" || true)"
echo "---- after Ctrl-C ----"
grep -v '^{"level"' "$log" | tail -n 4 || true
echo "----------------------"

if [[ "$ok" == 1 ]]; then echo "PASS: npm start reported every seed idea done after ${took} s"; else echo "FAIL: no 'ideas are done' line within ${limit} s"; fi
if [[ "$stopped" == 1 ]]; then echo "PASS: Ctrl-C stopped it"; else echo "FAIL: still running 30 s after Ctrl-C"; fi
if [[ -z "$left" ]]; then echo "PASS: no process left behind"; else echo "FAIL: left behind: $left"; fi
[[ "$ok" == 1 && "$stopped" == 1 && -z "$left" ]]
