#!/usr/bin/env python3
"""Stage 3, `qa`: a Vigil command handler in Python.

Vigil writes the job as JSON on stdin ({id, queue, payload, key, attempt}) and reads the
result as JSON from stdout; a non-zero exit fails the attempt (stderr's tail is the error).

It checks data/implementations/<id>.md against the outline and appends its findings to
data/qa-issues.jsonl. With findings, it routes the work back to `implement` with the
feedback ({"next": "implement", "payload": ...}); without, the idea is done. `maxRounds`
in vigil.yaml bounds the loop.
"""
import hashlib
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


def draw(*parts):
    """Same as stages/chaos.ts: a number in [0, 1) from a SHA-256 of the parts."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def maybe_chaos(idea_id, rnd, attempt):
    """VIGIL_CHAOS=1: attempt 1 may crash, hang or spin; Vigil's timeout kills the group."""
    if os.environ.get("VIGIL_CHAOS") != "1" or attempt != 1:
        return
    seed = os.environ.get("VIGIL_CHAOS_SEED", "3")
    try:
        rate = min(max(float(os.environ.get("VIGIL_CHAOS_RATE", "0.3")), 0.0), 0.5)
    except ValueError:
        rate = 0.0
    if draw(seed, "qa", idea_id, rnd, attempt) >= rate:
        return
    act = ["crash", "hang", "block"][int(draw(seed, "act", "qa", idea_id, rnd) * 3)]
    sys.stderr.write(f"chaos: qa {idea_id} round {rnd}: {act} (pid {os.getpid()})\n")
    sys.stderr.flush()
    if act == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    # Hang (sleep) or spin until Vigil's timeout kills this process group. If the worker
    # that ran this check is itself killed first (chaos in another stage), nothing would
    # ever reap this process: stop once the parent is gone rather than spin for ever.
    parent = os.getppid()
    while os.getppid() == parent:
        if act == "hang":
            time.sleep(0.5)
    sys.exit(3)


# ---------------------------------------------------------------------------------------
# CHECKER: the one function to replace with a real reviewer (a linter, a test run, a
# model call). It gets the implementation text and the outline; it returns findings,
# each a sentence the implement stage can act on. No findings means the work is done.
# ---------------------------------------------------------------------------------------
def review(text, outline):
    findings = []
    headings = [s["heading"] for s in outline]
    # The review history quotes earlier findings; it is a record, not part of the work.
    work = text.split("\n## Review history\n", 1)[0]
    missing = [h for h in headings if f"## {h}\n" not in work]
    if missing:
        findings.append("sections missing: " + ", ".join(missing))
    section = "the introduction"
    for line in work.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif "TODO" in line:
            findings.append(f"a TODO is left in section {section}")
    if "## Tests\n" not in work:
        findings.append("there is no `## Tests` section")
    else:
        tests = work.split("## Tests\n", 1)[1].split("\n## ", 1)[0]
        uncovered = [h for h in headings if f"- {h}:" not in tests]
        if uncovered:
            findings.append("tests do not cover: " + ", ".join(uncovered))
    return findings


def main():
    job = json.loads(sys.stdin.read())
    payload = job["payload"]
    idea = payload["idea"]
    rnd = int(payload.get("round", 1))
    maybe_chaos(idea["id"], rnd, int(job.get("attempt", 1)))

    path = os.path.join(HERE, payload["implementationPath"])
    with open(path, encoding="utf-8") as f:
        text = f.read()
    marker = f"<!-- vigil-example round: {rnd} -->"
    if not text.startswith(marker):
        # A later or earlier round's file: fail this attempt; Vigil retries it.
        sys.stderr.write(f"{payload['implementationPath']} is not round {rnd}; retrying later\n")
        sys.exit(2)

    findings = review(text, payload["outline"])
    if findings:
        record = {
            "idea": idea["id"],
            "round": rnd,
            "job": job["id"],
            "attempt": job.get("attempt", 1),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "findings": findings,
        }
        os.makedirs(DATA, exist_ok=True)
        # One write of one line in append mode: lines from concurrent checks never interleave.
        with open(os.path.join(DATA, "qa-issues.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        back = {k: v for k, v in payload.items() if k != "implementationPath"}
        back["round"] = rnd + 1
        back["feedback"] = list(payload.get("feedback", [])) + findings
        result = {"next": "implement", "payload": back}
    else:
        result = {"verdict": "pass", "idea": idea["id"], "rounds": rnd,
                  "implementationPath": payload["implementationPath"]}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
