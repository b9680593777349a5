"""Peak memory (max RSS) of cafleet's commands and hook handler against the Python floor.

Run: `python bench/memory.py [--runs N]`. Each case runs as a child process started by a
small launcher (GNU `time -f %M`, else a forking `python -I -S` launcher; see
`peak_rss_kib`), which reports the child's `ru_maxrss` from `wait4` (KiB on Linux; it is the
larger of the child's own peak and that of its largest reaped child, e.g. the short-lived
`tmux` client of `member list`). Median over N runs per case, in MiB, and the difference to
the matching floor (`python -c pass`, or `python -I -S -c pass` for the hook, which runs
that way).

`member list` and `member capture` run against a member with a live pane on a private tmux
server, so libtmux is imported and tmux is called; the hook runs as `hooks/hooks.json` runs
it, for a non-fleet session and for a fleet Director's pane.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import cafleet_argv, compile_package, python_bin, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOK = os.path.join(ROOT, "hooks", "cafleet-hook")


GNU_TIME = "/usr/bin/time"

LAUNCHER = r"""
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("\ncafleet-maxrss %d\n" % usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _gnu_time() -> bool:
    try:
        return subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, text=True,
                              timeout=10).stderr.strip().isdigit()
    except (OSError, subprocess.SubprocessError):
        return False


HAVE_GNU_TIME = _gnu_time()


def peak_rss_kib(argv: list[str], env: dict, stdin: bytes = b"") -> int:
    """Peak RSS (KiB) of one run of `argv`; raises SystemExit if it fails.

    A child's `ru_maxrss` also counts the memory image it was forked from (the kernel keeps
    the pre-exec high-water mark), so the child must be started by a small process, not by
    this one: GNU `time -f %M` (fork + exec from a ~2 MiB process) when installed, else a
    `python -I -S` launcher that forks, execs and reports `wait4`'s rusage.
    """
    argv = [argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0]) or argv[0], *argv[1:]]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        if HAVE_GNU_TIME:
            cmd = [GNU_TIME, "-o", out.name, "-f", "%M", *argv]
        else:
            cmd = [python_bin(), "-I", "-S", "-c", LAUNCHER, *argv]
        p = subprocess.run(cmd, env=env, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=120)
        err = p.stderr.decode(errors="replace")
        if p.returncode != 0:
            raise SystemExit(f"{argv} exited {p.returncode}: {err[-400:]}")
        if HAVE_GNU_TIME:
            return int(out.read().strip().splitlines()[-1])
        return int(err.rsplit("cafleet-maxrss ", 1)[1].split()[0])


class Setup:
    """A temp DB with a fleet whose member has a live pane on a private tmux server."""

    def __init__(self):
        from cafleet.broker import Broker

        self.tmp = tempfile.mkdtemp(prefix="cafleet-mem-", dir="/tmp")
        self.db = os.path.join(self.tmp, "cafleet.db")
        self.socket = os.path.join(self.tmp, "tmux")
        self.env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE") and
                    not k.startswith("CAFLEET_")}
        self.env["CAFLEET_DB"] = self.db
        self.tmux_ok = shutil.which("tmux") is not None
        panes = ["%1", "%2"]
        if self.tmux_ok:
            out = subprocess.run(["tmux", "-S", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "mem",
                                  "-P", "-F", "#{pane_id} #{window_id}", "--", "sleep", "600"],
                                 capture_output=True, text=True, check=True).stdout.split()
            member = subprocess.run(["tmux", "-S", self.socket, "split-window", "-d", "-t", out[0], "-P", "-F",
                                     "#{pane_id}", "--", "sleep", "600"],
                                    capture_output=True, text=True, check=True).stdout.strip()
            panes, window = [out[0], member], out[1]
        else:
            window = "@1"
        with Broker.open(self.db) as b:
            pl = {"tmux_socket": self.socket, "session_name": "mem", "window_id": window}
            f = b.create_fleet("mem", placement={**pl, "pane_id": panes[0]})
            self.fid, self.director = f["fleet_id"], f["director"]["agent_id"]
            self.member = b.register_agent(self.fid, "M", "m", role="member", parent_agent_id=self.director,
                                           coding_agent="claude", placement={**pl, "pane_id": panes[1]})["agent_id"]
            self.plain = b.register_agent(self.fid, "P", "an agent without a pane")["agent_id"]
            for i in range(5):
                b.send(self.fid, self.member, self.director, f"waiting {i}")
        self.director_env = {**self.env, "TMUX": f"{self.socket},1,0", "TMUX_PANE": panes[0]}

    def close(self):
        if self.tmux_ok:
            subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _bash(command: str) -> bytes:
    return json.dumps({"session_id": "bench", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                       "tool_input": {"command": command}, "cwd": "/tmp"}).encode()


def measure(runs: int = 5) -> list[dict]:
    compile_package()
    s = Setup()
    try:
        py, cf = python_bin(), cafleet_argv()
        F = ["--fleet-id", s.fid]
        clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": s.tmp, "CAFLEET_DB": s.db}
        hook_fleet = {**clean, "TMUX": s.director_env["TMUX"], "TMUX_PANE": s.director_env["TMUX_PANE"]}
        poll = f"cafleet --fleet-id {s.fid} message poll --agent-id {s.director}"
        cases = [
            ("python -c pass (floor)", [py, "-c", "pass"], s.env, b"", "floor"),
            ('python -c "import sqlite3"', [py, "-c", "import sqlite3"], s.env, b"", "floor"),
            ("cafleet message poll (5 waiting)", cf + F + ["message", "poll", "--agent-id", s.director],
             s.env, b"", "floor"),
            ("cafleet message send (recipient without a pane)", cf + F + ["message", "send", "--agent-id", s.member,
                                                                          "--to", s.plain, "--text", "hi"],
             s.env, b"", "floor"),
            ("cafleet message send (push into a pane)", cf + F + ["message", "send", "--agent-id", s.plain, "--to",
                                                                  s.member, "--text", "hi"], s.env, b"", "floor"),
            ("cafleet fleet list", cf + ["fleet", "list"], s.env, b"", "floor"),
            ("cafleet member list (libtmux + tmux)", cf + F + ["member", "list"], s.director_env, b"", "floor"),
            ("cafleet member capture (libtmux + tmux)", cf + F + ["member", "capture", "--member-id", s.member],
             s.director_env, b"", "floor"),
            ("python -I -S -c pass (hook floor)", [py, "-I", "-S", "-c", "pass"], clean, b"", "hook floor"),
            ("hook PreToolUse, non-fleet session", [py, "-I", "-S", HOOK, "PreToolUse"], clean, _bash("ls -la"),
             "hook floor"),
            ("hook PreToolUse, fleet Director (DB read)", [py, "-I", "-S", HOOK, "PreToolUse"], hook_fleet,
             _bash(poll), "hook floor"),
            ("hook SessionStart, fleet Director", [py, "-I", "-S", HOOK, "SessionStart"], hook_fleet,
             json.dumps({"session_id": "bench", "source": "startup"}).encode(), "hook floor"),
        ]
        if not s.tmux_ok:
            cases = [c for c in cases if "tmux" not in c[0]]
        results = []
        for name, argv, env, stdin, floor in cases:
            peak_rss_kib(argv, env, stdin)  # warm-up
            kib = [peak_rss_kib(argv, env, stdin) for _ in range(runs)]
            results.append({"case": name, "floor": floor, "median_mib": statistics.median(kib) / 1024,
                            "max_mib": max(kib) / 1024})
    finally:
        s.close()
    floors = {"floor": results[0]["median_mib"],
              "hook floor": next(r for r in results if r["case"].startswith("python -I -S"))["median_mib"]}
    for r in results:
        r["delta_mib"] = r["median_mib"] - floors[r["floor"]]
        r["ratio"] = r["median_mib"] / floors[r["floor"]]
    return results


def rows(results: list[dict]) -> list[list[str]]:
    return [[r["case"], f"{r['median_mib']:.1f}", f"{r['max_mib']:.1f}", f"{r['delta_mib']:+.1f}",
             f"{r['ratio']:.2f}x"] for r in results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    results = measure(args.runs)
    print(f"cafleet peak RSS (ru_maxrss of the child), median of {args.runs} runs, MiB; "
          "delta and ratio vs the matching python floor")
    print(table(rows(results), ["case", "median MiB", "max MiB", "vs floor", "ratio"]))


if __name__ == "__main__":
    main()
