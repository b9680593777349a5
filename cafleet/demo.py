"""`cafleet demo`: a whole fleet lifecycle on a private tmux server, no LLM, no network.

A temp directory holds the demo's DB; a private tmux server (`tmux -L cafleet-demo-<hex>`)
holds a Director pane and, once spawned, two stand-in members (`cafleet.standin`, started
through the real `claude` backend path: an executable named `claude` that starts the
stand-in is put first on PATH).
Every step runs the real `cafleet` CLI as the Director would (a subprocess with the
Director pane's `TMUX`/`TMUX_PANE`), is printed with its wall time, and is checked; at the
end the server and the temp directory are removed (unless `keep`).

With `attach`, the steps run in the background, slowed down, while this terminal shows the
demo's tmux server read-only; the step log is printed when the demo ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from cafleet.errors import CafleetError

STEP_PAUSE_ATTACHED = 1.5
"""Seconds between steps when a person is watching (`--attach`)."""


class DemoFailed(CafleetError):
    """A demo step did not do what it should."""


class Demo:
    def __init__(self, report, pause: float = 0.0):
        self.report = report
        self.pause = pause
        self.tmp = tempfile.mkdtemp(prefix="cafleet-demo-")
        self.server = f"cafleet-demo-{os.urandom(4).hex()}"
        self.env = dict(os.environ)
        self.env.pop("TMUX", None)
        self.env.pop("TMUX_PANE", None)
        self.env["CAFLEET_DB"] = os.path.join(self.tmp, "cafleet.db")
        self.env["PATH"] = self._standin_bin() + os.pathsep + self.env.get("PATH", "")
        self.env["CAFLEET_STANDIN_LOG"] = os.path.join(self.tmp, "standin.log")
        self.director_env: dict[str, str] = {}
        self.socket_path: str | None = None
        self.started = time.monotonic()

    # -- plumbing --------------------------------------------------------------

    def _standin_bin(self) -> str:
        return install_standin(os.path.join(self.tmp, "bin"))

    def tmux(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, env=self.env)
        if r.returncode != 0:
            raise DemoFailed(f"tmux {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout.strip()

    def cafleet(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**self.env, **self.director_env}
        return self._timed(args, lambda: subprocess.run([sys.executable, "-m", "cafleet", *args], env=env,
                                                        capture_output=True, text=True), check)

    def _timed(self, args, fn, check):
        t0 = time.monotonic()
        r = fn()
        ms = (time.monotonic() - t0) * 1000
        shown = " ".join(_short(a) for a in args)
        self.report(f"  $ cafleet {shown}   [{ms:.0f} ms, exit {r.returncode}]")
        for line in (r.stdout.strip().splitlines() + r.stderr.strip().splitlines())[:12]:
            self.report(f"    {line}")
        if check and r.returncode != 0:
            raise DemoFailed(f"`cafleet {shown}` exited {r.returncode}: {r.stderr.strip()}")
        return r

    def step(self, title: str) -> None:
        if self.pause:
            time.sleep(self.pause)
        self.report(f"[{time.monotonic() - self.started:6.2f} s] {title}")

    def wait_for(self, what: str, predicate, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise DemoFailed(f"timed out after {timeout:g} s waiting for {what}")

    def poll(self, director: str, fleet: str) -> list[dict]:
        env = {**self.env, **self.director_env}
        r = subprocess.run([sys.executable, "-m", "cafleet", "--fleet-id", fleet, "--json", "message", "poll",
                            "--agent-id", director, "--limit", "1000"], env=env, capture_output=True, text=True)
        return json.loads(r.stdout)["tasks"] if r.returncode == 0 else []

    def pane_text(self, pane: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", pane, "-S", "-200")

    # -- the story -------------------------------------------------------------

    def run(self) -> None:
        self.step("Start a private tmux server with a Director pane")
        self.tmux("new-session", "-d", "-s", "demo", "-x", "200", "-y", "50", "-e",
                  f"CAFLEET_DB={self.env['CAFLEET_DB']}", sys.executable, "-m", "cafleet.standin", "--director")
        pane = self.tmux("display-message", "-p", "-t", "demo", "#{pane_id}")
        socket = self.socket_path = self.tmux("display-message", "-p", "-t", "demo", "#{socket_path}")
        self.director_env = {"TMUX": f"{socket},0,0", "TMUX_PANE": pane}
        self.report(f"  tmux -L {self.server}: Director pane {pane}")

        self.step("Check the environment")
        self.cafleet("doctor", check=False)

        self.step("Create the fleet (the Director is placed in its pane)")
        out = self.cafleet("fleet", "create", "--name", "demo").stdout.splitlines()
        fleet, director = out[0], out[1]
        f = ["--fleet-id", fleet]

        self.step("Spawn two members (stand-in agents through the claude backend)")
        alice = self.cafleet(*f, "member", "create", "--name", "Alice", "--description", "picks colours",
                             "--", "Wait for tasks.").stdout.splitlines()[0]
        bob = self.cafleet(*f, "member", "create", "--name", "Bob", "--description", "runs commands",
                           "--", "Wait for tasks.").stdout.splitlines()[0]

        self.step("Wait for both members to say ready, then ack")
        ready = self.wait_for("two `ready` messages", lambda: (lambda t: t if len(t) >= 2 else None)(
            [t for t in self.poll(director, fleet) if t["body"] == "ready"]))
        self.cafleet(*f, "message", "ack", "--agent-id", director, *sum((["--task-id", t["task_id"]] for t in ready), []))
        self.cafleet(*f, "member", "list")

        self.step("Dispatch work to Bob; he polls, acks and replies")
        self.cafleet(*f, "message", "send", "--agent-id", director, "--to", bob, "--text", "Summarise the README")
        reply = self.wait_for("Bob's reply", lambda: [t for t in self.poll(director, fleet) if t["body"].startswith("done:")])
        self.cafleet(*f, "message", "ack", "--agent-id", director, "--task-id", reply[0]["task_id"])

        self.step("Alice hits a 4-option choice frame; the Director answers it")
        self.cafleet(*f, "message", "send", "--agent-id", director, "--to", alice, "--text", "Choose a colour")
        alice_pane = self._pane_of(fleet, alice)
        self.wait_for("Alice's choice frame", lambda: "4. Type something." in self.pane_text(alice_pane))
        self.cafleet(*f, "member", "capture", "--member-id", alice, "--lines", "8")
        self.cafleet(*f, "member", "send-input", "--member-id", alice, "--choice", "2")
        chose = self.wait_for("Alice's answer", lambda: [t for t in self.poll(director, fleet) if t["body"].startswith("chose:")])
        if chose[0]["body"] != "chose: Green":
            raise DemoFailed(f"Alice answered {chose[0]['body']!r}, expected 'chose: Green'")
        self.cafleet(*f, "message", "ack", "--agent-id", director, "--task-id", chose[0]["task_id"])

        self.step("Run a shell command in Bob's pane, then ping him")
        bob_pane = self._pane_of(fleet, bob)
        self.cafleet(*f, "member", "exec", "--member-id", bob, "echo exec-ran-in-$((6*7))")
        self.wait_for("the command's output in Bob's pane", lambda: "exec-ran-in-42" in self.pane_text(bob_pane))
        self.cafleet(*f, "member", "ping", "--member-id", bob)
        self.wait_for("Bob to poll after the ping", lambda: "polled 0 task(s)" in self.pane_text(bob_pane))
        self.cafleet(*f, "member", "capture", "--member-id", bob, "--lines", "4")

        self.step("Tear down in order: members, roster check, fleet")
        self.cafleet(*f, "member", "delete", "--member-id", alice)
        self.cafleet(*f, "member", "delete", "--member-id", bob)
        roster = self.cafleet(*f, "member", "list").stdout.strip()
        if roster != "No members.":
            raise DemoFailed(f"members left after delete: {roster}")
        self.cafleet("fleet", "delete", fleet)
        self.cafleet("fleet", "list")

    def _pane_of(self, fleet: str, member: str) -> str:
        env = {**self.env, **self.director_env}
        r = subprocess.run([sys.executable, "-m", "cafleet", "--fleet-id", fleet, "--json", "member", "list"],
                           env=env, capture_output=True, text=True, check=True)
        return next(m["pane_id"] for m in json.loads(r.stdout) if m["agent_id"] == member)

    def cleanup(self, keep: bool) -> None:
        if keep:
            self.report(f"kept: tmux -L {self.server} attach   (DB {self.env['CAFLEET_DB']})")
            return
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True)
        if self.socket_path:  # tmux 3.3a leaves the socket file behind on kill-server
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def install_standin(bin_dir: str, names=("claude",)) -> str:
    """Write executables `names` in `bin_dir` that start the stand-in agent with this Python
    (they accept and ignore a real backend's argv). Returns `bin_dir`."""
    os.makedirs(bin_dir, exist_ok=True)
    for name in names:
        path = os.path.join(bin_dir, name)
        with open(path, "w") as fh:
            fh.write(f"#!/bin/sh\nexec {shlex_quote(sys.executable)} -m cafleet.standin \"$@\"\n")
        os.chmod(path, 0o755)
    return bin_dir


def shlex_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def _short(arg: str) -> str:
    if len(arg) == 36 and arg.count("-") == 4:
        return arg[:8] + "…"
    return shlex_quote(arg) if (" " in arg or not arg) else arg


def run(attach: bool = False, keep: bool = False, report=print) -> None:
    """Run the demo, reporting each step and command with its wall time.

    Raises `CafleetError` if tmux is missing, `DemoFailed` if a step misbehaves (the
    server and temp dir are still removed unless `keep`).
    """
    if shutil.which("tmux") is None:
        raise CafleetError("the demo needs tmux on PATH (e.g. `apt-get install tmux`)")
    if not attach:
        demo = Demo(report)
        try:
            demo.run()
            report(f"demo finished in {time.monotonic() - demo.started:.1f} s")
        finally:
            demo.cleanup(keep)
        return

    lines: list[str] = []
    demo = Demo(lines.append, pause=STEP_PAUSE_ATTACHED)
    failure: list[BaseException] = []

    def story():
        try:
            demo.run()
            lines.append(f"demo finished in {time.monotonic() - demo.started:.1f} s")
            time.sleep(STEP_PAUSE_ATTACHED * 2)
        except BaseException as e:  # reported after the viewer closes
            failure.append(e)
        finally:
            demo.cleanup(keep)

    worker = threading.Thread(target=story, daemon=True)
    worker.start()
    demo.wait_for("the demo's tmux server", lambda: subprocess.run(
        ["tmux", "-L", demo.server, "has-session", "-t", "demo"], capture_output=True).returncode == 0, 10)
    subprocess.run(["tmux", "-L", demo.server, "attach", "-r", "-t", "demo"])
    worker.join()
    for line in lines:
        report(line)
    if failure:
        raise failure[0]
