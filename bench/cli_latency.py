"""Median wall time of the cafleet CLI's hot commands against the Python floor.

Run: `python bench/cli_latency.py [--runs N]`. Uses a temp DB; prints a table of medians
(ms) and each command's ratio to `python -c "import sqlite3"` measured in the same run.
Target (issue 2): `message poll` on an empty inbox <= 70 ms median on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cafleet_argv, compile_package, median, python_bin, table, time_interleaved  # noqa: E402


def measure(runs: int) -> list[dict]:
    compile_package()
    tmp = tempfile.mkdtemp(prefix="cafleet-bench-")
    env = {**os.environ, "CAFLEET_DB": os.path.join(tmp, "cafleet.db")}
    env.pop("TMUX", None)
    env.pop("TMUX_PANE", None)
    cf = cafleet_argv()
    created = json.loads(subprocess.run(cf + ["--json", "fleet", "create"], env=env, capture_output=True,
                                        text=True, check=True).stdout)
    fleet, director = created["fleet_id"], created["director"]["agent_id"]
    member = subprocess.run(cf + ["--fleet-id", fleet, "agent", "register", "--name", "m", "--description", "d"],
                            env=env, capture_output=True, text=True, check=True).stdout.strip()
    base = cf + ["--fleet-id", fleet]
    # tasks to ack: send `runs` messages first, acking one per run
    task_ids = [subprocess.run(base + ["message", "send", "--agent-id", director, "--to", member, "--text", "x"],
                               env=env, capture_output=True, text=True, check=True).stdout.split()[0]
                for _ in range(runs)]
    cases = [
        ('python -c "import sqlite3" (floor)', lambda i: [python_bin(), "-c", "import sqlite3"]),
        ("message poll (empty inbox)", lambda i: base + ["message", "poll", "--agent-id", director]),
        ("message send", lambda i: base + ["message", "send", "--agent-id", member, "--to", director, "--text", "hi"]),
        ("message ack", lambda i: base + ["message", "ack", "--agent-id", member, "--task-id", task_ids[i]]),
        ("message poll (10 waiting)", lambda i: base + ["message", "poll", "--agent-id", director, "--limit", "10"]),
    ]
    times = time_interleaved(cases, runs, env)
    results = [{"command": name, "times": t} for name, t in times.items()]
    floor = results[0]["times"]
    fm = median(floor)
    for r in results:
        r["median_ms"] = round(median(r["times"]), 1)
        r["ratio"] = round(r["median_ms"] / fm, 2)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=25)
    args = ap.parse_args()
    results = measure(args.runs)
    print(f"cafleet CLI latency, {args.runs} runs each, medians in ms (ratio to the python floor)")
    print(table([[r["command"], f"{r['median_ms']:.1f}", f"{r['ratio']:.2f}x"] for r in results],
                ["command", "median ms", "vs floor"]))


if __name__ == "__main__":
    main()
