"""Latency of the inline-preview push and of `member create`, on a private tmux server.

Run: `python bench/push_latency.py [--runs N]`. Starts a private tmux server (its own socket
under /tmp, removed at the end) with a stand-in Director pane, creates a fleet in it through
the installed `cafleet` CLI, and measures, over N runs each (interleaved with nothing else):

(a) push: from the start of `cafleet message send` to the preview's line 1 being visible in
    the recipient's pane (`capture-pane` polled every ~5 ms), for two recipients:
    - an echoing pane (a member whose `claude` is `cat`: the tty echoes keys as they arrive,
      as a real TUI draws its input box) -- this is the push latency proper;
    - a stand-in member (cafleet.standin: cbreak mode; it echoes what is typed into its
      input line, as Claude Code does).
    Also the wall time of the `message send` command itself.
(b) create: from the start of `cafleet member create` to the new pane being alive with the
    stand-in's banner visible; also the command's own wall time.

Prints medians and p90 in ms. Target (issue): push to an echoing pane <= 250 ms median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cafleet_argv, compile_package, median, p90, python_bin, table  # noqa: E402

POLL = 0.005
TIMEOUT = 15.0
PUSH_TARGET_MS = 250.0


class Bench:
    def __init__(self):
        from cafleet.demo import install_standin

        self.tmp = tempfile.mkdtemp(prefix="cfb-", dir="/tmp")
        self.socket = os.path.join(self.tmp, "tmux")
        standin_bin = install_standin(os.path.join(self.tmp, "bin"))
        self.echo_bin = os.path.join(self.tmp, "echo-bin")
        os.makedirs(self.echo_bin)
        with open(os.path.join(self.echo_bin, "claude"), "w") as fh:
            fh.write("#!/bin/sh\nexec cat\n")
        os.chmod(os.path.join(self.echo_bin, "claude"), 0o755)
        env = {k: v for k, v in os.environ.items()
               if k not in ("TMUX", "TMUX_PANE") and not k.startswith("CAFLEET_")}
        env["CAFLEET_DB"] = os.path.join(self.tmp, "cafleet.db")
        env["PATH"] = standin_bin + os.pathsep + env.get("PATH", os.defpath)
        self.base_env = env
        self.cf = cafleet_argv()

    # -- plumbing ------------------------------------------------------------------

    def tmux(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, env=self.base_env)
        if r.returncode != 0:
            raise SystemExit(f"tmux {args} failed: {r.stderr.strip()}")
        return r.stdout.rstrip("\n")

    def capture(self, pane: str) -> str:
        r = subprocess.run(["tmux", "-S", self.socket, "capture-pane", "-p", "-t", pane, "-S", "-3000"],
                           capture_output=True, text=True)
        return r.stdout

    def cli(self, *args: str, env=None) -> str:
        r = subprocess.run(self.cf + list(args), capture_output=True, text=True, env=env or self.env)
        if r.returncode != 0:
            raise SystemExit(f"cafleet {args} exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def wait(self, what: str, predicate, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(POLL)
        raise SystemExit(f"timed out waiting for {what}")

    # -- setup ---------------------------------------------------------------------

    def start(self) -> None:
        out = subprocess.run(
            ["tmux", "-S", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", "220",
             "-y", "60", "-P", "-F", "#{pane_id}\t#{window_id}", python_bin(), "-m", "cafleet.standin",
             "--director"], capture_output=True, text=True, env=self.base_env, cwd=self.tmp, check=True).stdout
        self.director_pane, self.window = out.strip().split("\t")
        self.env = {**self.base_env, "TMUX": f"{self.socket},0,0", "TMUX_PANE": self.director_pane}
        self.wait("the Director's banner", lambda: "stand-in agent (Director)" in self.capture(self.director_pane))
        created = json.loads(self.cli("--json", "fleet", "create", "--name", "bench"))
        self.fleet, self.director = created["fleet_id"], created["director"]["agent_id"]
        self.f = ["--fleet-id", self.fleet]

    def member(self, name: str, env=None) -> tuple[str, str]:
        data = json.loads(self.cli(*self.f, "--json", "member", "create", "--name", name, "--description", "bench",
                                   "--", "Wait for tasks.", env=env))
        return data["agent_id"], data["placement"]["pane_id"]

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)  # the socket file lives in here too

    # -- measurements --------------------------------------------------------------

    def push_once(self, to: str, pane: str, body: str) -> tuple[float, float]:
        """(ms to line 1 visible in `pane`, ms of the send command)."""
        before = self.capture(pane).count("[cafleet] task ")
        t0 = time.perf_counter()
        proc = subprocess.Popen(self.cf + [*self.f, "message", "send", "--agent-id", self.director, "--to", to,
                                           "--text", body], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        seen = None
        deadline = time.monotonic() + TIMEOUT
        while seen is None and time.monotonic() < deadline:
            if self.capture(pane).count("[cafleet] task ") > before:
                seen = time.perf_counter()
                break
            time.sleep(POLL)
        out, err = proc.communicate(timeout=TIMEOUT)
        done = time.perf_counter()
        if proc.returncode != 0 or seen is None or "notified pane" not in out:
            raise SystemExit(f"push run failed: rc={proc.returncode} seen={seen} out={out!r} err={err!r}")
        return (seen - t0) * 1000, (done - t0) * 1000

    def create_once(self, i: int) -> tuple[float, float]:
        """(ms to the new pane alive with the stand-in's banner, ms of the create command)."""
        before = set(self.tmux("list-panes", "-t", self.window, "-F", "#{pane_id}").split())
        t0 = time.perf_counter()
        proc = subprocess.Popen(self.cf + [*self.f, "member", "create", "--name", f"m{i}", "--description", "bench",
                                           "--", "Wait for tasks."], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

        def banner():
            panes = set(self.tmux("list-panes", "-t", self.window, "-F", "#{pane_id}").split()) - before
            for p in panes:
                if "stand-in agent (member" in self.capture(p):
                    return p
            return None

        pane = self.wait("the new member's banner", banner)
        seen = time.perf_counter()
        out, err = proc.communicate(timeout=TIMEOUT)
        done = time.perf_counter()
        if proc.returncode != 0:
            raise SystemExit(f"member create failed: {err}")
        member = out.splitlines()[0]
        # let its `ready` (and the push into the Director's pane) finish, then remove it
        self.wait("the member's ready", lambda: "sent to Director: 'ready'" in self.capture(pane))
        self.cli(*self.f, "member", "delete", "--member-id", member, "--force")
        return (seen - t0) * 1000, (done - t0) * 1000


def measure(runs: int) -> dict[str, list[float]]:
    compile_package()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed")
    b = Bench()
    times: dict[str, list[float]] = {k: [] for k in (
        "push: line 1 visible, echoing pane", "push: `message send` wall, echoing pane",
        "push: line 1 visible, stand-in pane", "push: `message send` wall, stand-in pane",
        "create: pane alive + banner visible", "create: `member create` wall")}
    try:
        b.start()
        echo_env = {**b.env, "PATH": b.echo_bin + os.pathsep + b.env["PATH"]}
        echo, echo_pane = b.member("echo", env=echo_env)
        standin, standin_pane = b.member("standin")
        b.wait("the stand-in member's ready", lambda: "sent to Director: 'ready'" in b.capture(standin_pane))
        for i in range(runs):
            seen, wall = b.push_once(echo, echo_pane, f"echo run {i}")
            times["push: line 1 visible, echoing pane"].append(seen)
            times["push: `message send` wall, echoing pane"].append(wall)
            seen, wall = b.push_once(standin, standin_pane, f"stand-in run {i}")
            times["push: line 1 visible, stand-in pane"].append(seen)
            times["push: `message send` wall, stand-in pane"].append(wall)
            # the stand-in polls, acks and replies (a push into the Director): let it finish
            b.wait("the stand-in's reply", lambda i=i: f"sent to Director: 'done: stand-in run {i}'"
                   in b.capture(standin_pane))
        b.cli(*b.f, "member", "delete", "--member-id", echo, "--force")
        b.cli(*b.f, "member", "delete", "--member-id", standin, "--force")
        for i in range(runs):
            seen, wall = b.create_once(i)
            times["create: pane alive + banner visible"].append(seen)
            times["create: `member create` wall"].append(wall)
    finally:
        b.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    times = measure(args.runs)
    print(f"cafleet push / member-create latency, {args.runs} runs each, ms "
          f"(gate.ENTER_DELAY = {__import__('cafleet.gate').gate.ENTER_DELAY:g} s)")
    print(table([[name, f"{median(t):.0f}", f"{p90(t):.0f}", f"{min(t):.0f}"] for name, t in times.items()],
                ["measure", "median", "p90", "min"]))
    m = median(times["push: line 1 visible, echoing pane"])
    print(f"target: push line 1 visible <= {PUSH_TARGET_MS:.0f} ms median: "
          f"{'met' if m <= PUSH_TARGET_MS else 'NOT met'} ({m:.0f} ms)")


if __name__ == "__main__":
    main()
