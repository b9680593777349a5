"""Median wall time of the cafleet hook handler against the Python floor.

Run: `python bench/hook_latency.py [--runs N]`. Runs `hooks/cafleet-hook` exactly as
`hooks/hooks.json` does (`python3 -I -S <plugin>/hooks/cafleet-hook <Event>`, JSON on stdin,
the real interpreter rather than a pyenv shim), in a clean environment, against a temp DB
with a fleet whose Director sits in a fake pane (the hook only reads rows; no tmux needed).
Prints medians (ms) and each case's ratio to `python3 -I -S -c pass` measured in the same
run; the same cases without `-I -S` show what `site` (every .pth in site-packages) costs.
Target: the non-fleet PreToolUse case <= 35 ms median.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import median, python_bin, table, time_runs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOK = os.path.join(ROOT, "hooks", "cafleet-hook")
FLAGS = ["-I", "-S"]
SOCKET = "/tmp/cafleet-bench-fake.sock"


def _bash(command: str) -> bytes:
    return json.dumps({"session_id": "bench", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                       "tool_input": {"command": command}, "cwd": "/tmp"}).encode()


def measure(runs: int) -> list[dict]:
    sys.path.insert(0, ROOT)
    from cafleet.broker import Broker

    tmp = tempfile.mkdtemp(prefix="cafleet-hookbench-")
    db = os.path.join(tmp, "cafleet.db")
    with Broker.open(db) as b:
        fleet = b.create_fleet("bench", placement={"tmux_socket": SOCKET, "session_name": "s",
                                                   "window_id": "@1", "pane_id": "%1"})
    fleet_id, director = fleet["fleet_id"], fleet["director"]["agent_id"]
    with Broker.open(db) as b:
        member = b.register_agent(fleet_id, "m", "d", role="member", parent_agent_id=director, coding_agent="claude",
                                  placement={"tmux_socket": SOCKET, "session_name": "s", "window_id": "@1",
                                             "pane_id": "%2"})["agent_id"]
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "CAFLEET_DB": db}
    in_fleet = {**clean, "TMUX": f"{SOCKET},1,0", "TMUX_PANE": "%1"}
    other_pane = {**in_fleet, "TMUX_PANE": "%99"}
    as_member = {**in_fleet, "TMUX_PANE": "%2", "CAFLEET_AGENT_ID": member}
    py = python_bin()
    poll = f"cafleet --fleet-id {fleet_id} message poll --agent-id {director}"
    cases = [
        ("python3 -I -S -c pass (floor)", [py, *FLAGS, "-c", "pass"], clean, b""),
        ("non-fleet (no TMUX): Bash `ls -la`", [py, *FLAGS, HOOK, "PreToolUse"], clean, _bash("ls -la")),
        ("non-fleet (no TMUX): Bash `tmux send-keys`", [py, *FLAGS, HOOK, "PreToolUse"], clean,
         _bash("tmux send-keys -t %2 hi")),
        ("tmux, unknown pane: Bash `git status`", [py, *FLAGS, HOOK, "PreToolUse"], other_pane, _bash("git status")),
        ("tmux, unknown pane: Bash `tmux send-keys` (DB read)", [py, *FLAGS, HOOK, "PreToolUse"], other_pane,
         _bash("tmux send-keys -t %2 hi")),
        ("fleet Director: Bash `ls *.py | grep -v x` (glob: lexed, no DB)", [py, *FLAGS, HOOK, "PreToolUse"],
         in_fleet, _bash("ls *.py | grep -v x")),
        ("fleet Director: literal cafleet poll (allowed)", [py, *FLAGS, HOOK, "PreToolUse"], in_fleet, _bash(poll)),
        ("fleet Director: `member create` (guard, DB read)", [py, *FLAGS, HOOK, "PreToolUse"], in_fleet,
         _bash(f"cafleet --fleet-id {fleet_id} member create --name a --description b -- hi")),
        ("fleet Director: `tmux send-keys` (deny)", [py, *FLAGS, HOOK, "PreToolUse"], in_fleet,
         _bash("tmux send-keys -t %2 hi")),
        ("claude member: Bash `ls -la` (read-only, DB read)", [py, *FLAGS, HOOK, "PreToolUse"], as_member,
         _bash("ls -la")),
        ("claude member: Bash `npm test` (routed to Director)", [py, *FLAGS, HOOK, "PreToolUse"], as_member,
         _bash("npm test")),
        ("fleet Director: SessionStart", [py, *FLAGS, HOOK, "SessionStart"], in_fleet,
         json.dumps({"session_id": "bench", "source": "compact"}).encode()),
        ("python3 -c pass (floor with site)", [py, "-c", "pass"], clean, b""),
        ("non-fleet (no TMUX), without -I -S", [py, HOOK, "PreToolUse"], clean, _bash("ls -la")),
        ("fleet Director: literal poll, without -I -S", [py, HOOK, "PreToolUse"], in_fleet, _bash(poll)),
    ]
    results = []
    for name, argv, env, stdin in cases:
        time_runs(lambda i: argv, 2, env, stdin)  # warm up (bytecode caches, page cache)
        results.append({"case": name, "times": time_runs(lambda i: argv, runs, env, stdin)})
    floor = median(results[0]["times"])
    site_floor = median(next(r for r in results if "floor with site" in r["case"])["times"])
    for r in results:
        m = median(r["times"])
        with_site = "without -I -S" in r["case"] or "with site" in r["case"]
        r["median_ms"] = round(m, 1)
        r["ratio"] = round(m / (site_floor if with_site else floor), 2)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = ap.parse_args()
    results = measure(args.runs)
    if args.json:
        print(json.dumps([{k: r[k] for k in ("case", "median_ms", "ratio")} for r in results], indent=2))
        return
    print(f"cafleet hook latency, {args.runs} runs each, medians in ms "
          "(ratio to the matching python floor: -I -S, or with site for the last rows)")
    print(table([[r["case"], r["median_ms"], r["ratio"]] for r in results], ["case", "median ms", "ratio"]))


if __name__ == "__main__":
    main()
