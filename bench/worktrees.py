"""What worktrees add to the supervision tick's `--json member list`: wall time and bytes.

Run: `python bench/worktrees.py [--runs N] [--members N]`. Two fleets in a temp DB, each
with N members registered without panes (so no tmux call is timed): one plain, one whose
members each have a real git worktree (one of them dirty and one commit ahead). Prints the
median wall time (ms) of `cafleet --fleet-id F --json member list` for both, their ratio, and
the output size in bytes (a proxy for the tokens a Director reads every tick).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import cafleet_argv, compile_package, median, table, time_interleaved  # noqa: E402

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "commit.gpgsign=false"]


def _git(cwd, *args) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def measure(runs: int, members: int = 4) -> list[dict]:
    from cafleet import worktrees
    from cafleet.broker import Broker

    compile_package()
    tmp = tempfile.mkdtemp(prefix="cafleet-bench-wt-")
    db = os.path.join(tmp, "cafleet.db")
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["CAFLEET_DB"] = db
    # the real interpreter (_common.python_bin) may sit outside a venv: let it find this checkout
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                      env.get("PYTHONPATH")]))
    repo = os.path.join(tmp, "repo")
    os.mkdir(repo)
    _git(repo, "init", "-q", "-b", "main")
    with open(os.path.join(repo, "app.py"), "w") as fh:
        fh.write("print('v1')\n")
    _git(repo, "add", "app.py")
    _git(repo, "commit", "-q", "-m", "v1")
    fleets = {}
    with Broker.open(db) as b:
        for kind in ("plain", "worktrees"):
            f = b.create_fleet(kind)
            fleets[kind] = f["fleet_id"]
            for i in range(members):
                m = b.register_agent(f["fleet_id"], f"{kind}-{i}", "bench member", role="member",
                                     parent_agent_id=f["director_agent_id"], coding_agent="claude")
                if kind == "worktrees":
                    p = worktrees.plan(m["name"], repo=repo)
                    worktrees.create(p)
                    b.add_worktree(f["fleet_id"], m["agent_id"], repo=p.repo, path=p.path, branch=p.branch,
                                   base=p.base, base_commit=p.base_commit)
                    if i == 0:
                        with open(os.path.join(p.path, "app.py"), "a") as fh:
                            fh.write("print('more')\n")
                        _git(p.path, "commit", "-q", "-am", "ahead")
                        with open(os.path.join(p.path, "scratch.txt"), "w") as fh:
                            fh.write("dirty\n")
    try:
        return _time(fleets, env, runs, members)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _time(fleets: dict, env: dict, runs: int, members: int) -> list[dict]:
    cf = cafleet_argv()
    cases = [(f"--json member list, {members} {kind} members",
              (lambda fid: lambda i: cf + ["--fleet-id", fid, "--json", "member", "list"])(fid))
             for kind, fid in fleets.items()]
    times = time_interleaved(cases, runs, env)
    results = []
    for (name, argv), (_, t) in zip(cases, times.items()):
        out = subprocess.run(argv(0), env=env, capture_output=True, text=True, check=True).stdout
        json.loads(out)
        results.append({"command": name, "times": t, "median_ms": round(median(t), 1), "bytes": len(out.encode())})
    base = results[0]["median_ms"]
    for r in results:
        r["ratio"] = round(r["median_ms"] / base, 2)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--members", type=int, default=4)
    args = ap.parse_args()
    results = measure(args.runs, args.members)
    print(f"member list with and without worktrees, {args.runs} runs each (medians, ms; ratio to plain)")
    print(table([[r["command"], f"{r['median_ms']:.1f}", f"{r['ratio']:.2f}x", r["bytes"]] for r in results],
                ["command", "median ms", "ratio", "output bytes"]))


if __name__ == "__main__":
    main()
