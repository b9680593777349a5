"""What a supervision tick costs the Director: commands and output bytes, seed template vs skill.

Run: `python bench/tick_cost.py [--sizes 3,8] [--ticks 3]` (about 3 minutes for 3 and 8
members). Needs tmux and Claude Code in the e2e tools cache (tests/e2e_tools.py).

Every member is a real Claude Code pane (the version in the tools cache, 2.1.332 when this
was written), spawned by `cafleet member create` in one private tmux server (240x60, the
members split the Director's window as they do for a user), offline against the scripted
model server of the e2e tests (tests/e2e/fakeapi.py). The Director is the bench itself: a
`cat` pane whose `TMUX_PANE` every cafleet call carries, running the commands a Director
following each template would run, and counting what they print (stdout + stderr: all of it
lands in the Director's context).

Member states, made real:
- working: its model turn is held open by the model server (the spinner and `esc to
  interrupt` stay on screen);
- idle: it answered its first prompt and waits, with no open work;
- stalled: idle after it was sent a task (`message send`, the preview typed into its pane)
  that it answered with text only: open work, no report;
- dialog: its first turn asked to run `touch …`, which the permission prompt holds;
- exited: its claude was quit with `/exit` (the pane is kept until `member delete`; its exit
  notice reaches the Director before the ticks are measured).

Scenarios, for each fleet size N (a fresh fleet each): all working; working + idle; one
stalled; one dialog; one exited; one report per tick (a member sends its Director a
message before every tick, which that tick reads and acks). The rest of the fleet works.

The seed template's tick (the user's reference text): `--json member list`, `--json message
poll`, ack each task, and `member capture --lines 200` of every member that sent nothing
since the last tick. The skill's tick (skills/cafleet-agent-team-monitoring): `member list`,
`message poll`, ack each task, and `member capture --changed` of each member whose STATE (read
from that tick's member list text) calls for it: `dialog`, or `idle` while it holds work the
Director gave it (the stalled one: the Director knows what it sent). A real Director also
waits for QUIET to reach 2 minutes before capturing a stalled member, so the skill's bytes
here are an upper bound. A row notes any tick where the STATE column disagreed with the
scenario. Each kind runs `--ticks` ticks back to back (the
skill's first; the seed's plain captures do not touch the skill's last looks anyway);
bytes per hour = mean bytes per tick x 60 (one tick a minute).
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
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT / "tests" / "e2e", ROOT / "tests", ROOT):
    sys.path.insert(0, str(p))

import claude_env as ce  # noqa: E402
from fakeapi import FakeAPI, Reply  # noqa: E402
from scenario_helpers import MEMBER_RE, first_user_text, turn_text  # noqa: E402

from cafleet import tick  # noqa: E402

SCENARIOS = {
    "all working": lambda n: ["working"] * n,
    "working + idle": lambda n: ["working"] * (n - max(1, n // 3)) + ["idle"] * max(1, n // 3),
    "one stalled": lambda n: ["stalled"] + ["working"] * (n - 1),
    "one dialog": lambda n: ["dialog"] + ["working"] * (n - 1),
    "one exited": lambda n: ["exited"] + ["working"] * (n - 1),
    "one report per tick": lambda n: ["reporting"] + ["working"] * (n - 1),
}
CAPTURE_STATES = {"dialog", "stalled"}
"""States whose member the skill's tick looks at."""


class Models:
    """The scripted model for every member: its first turn by the state its name starts with."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.release = threading.Event()
        self.turns: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def __call__(self, req):
        m = MEMBER_RE.search(first_user_text(req))
        if m is None:
            return "ok"
        name = m.group(1)
        state = name.split("-")[0]
        with self.lock:
            self.turns.setdefault(name, []).append(turn_text(req))
            first = len(self.turns[name]) == 1
        if req.latest_tool_results():
            return Reply.say("Done.")
        if state == "working":
            self.release.wait(900)  # keeps the turn open: spinner + `esc to interrupt`
            return Reply.say("Still on it.")
        if state == "dialog" and first:
            return Reply.bash(f"touch {self.workdir}/never-approved", description="Create a marker file")
        if not first:
            return Reply.say("On it.")  # a task arrived: text only, no report (stalled)
        return Reply.say("Waiting for tasks.")


def run(env: dict, argv: list[str], pane: tuple[str, str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    e = {**env, "TMUX": f"{pane[0]},0,0", "TMUX_PANE": pane[1]}
    p = subprocess.run(["cafleet", *argv], env=e, cwd=str(cwd), capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise RuntimeError(f"cafleet {' '.join(argv)} exited {p.returncode}: {p.stderr}")
    return p


class Fleet:
    """One scenario: a Director pane (`cat`) and its real-claude members, named
    `<state>-<fleet serial>-<index>` (the model script keys its turns by name)."""

    serial = 0

    def __init__(self, tmux: ce.TmuxServer, env: dict, proj: Path, states: list[str]):
        Fleet.serial += 1
        self.serial = Fleet.serial
        self.tmux, self.env, self.proj, self.states = tmux, env, proj, states
        self.pane = (tmux.socket_path, tmux.new_window(["cat"], cwd=proj))
        out = self.cafleet("fleet", "create").stdout.splitlines()
        self.F, self.D = out[0], out[1]
        self.members: list[tuple[str, str, str]] = []  # (agent_id, pane_id, state)
        self.show = False
        self.mismatches = 0  # skill-tick captures of a member the scenario did not put in a capture state
        self.missed = 0      # members in a capture state whose STATE column did not call for a capture

    def cafleet(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.env, list(argv), self.pane, self.proj, check)

    def spawn(self) -> None:
        for i, state in enumerate(self.states):
            out = json.loads(self.cafleet("--fleet-id", self.F, "--json", "member", "create", "--name",
                                          self.name(i), "--description", f"bench member {i}",
                                          "--coding-agent", "claude").stdout)
            self.members.append((out["agent_id"], out["placement"]["pane_id"], state))

    def name(self, i: int) -> str:
        return f"{self.states[i]}-{self.serial}-{i}"

    def screen(self, pane_id: str) -> str:
        return self.tmux.capture(pane_id, history=0)

    def settle(self, models: Models) -> None:
        def ready(pane_id: str, state: str) -> bool:
            s = self.screen(pane_id)
            if state == "working":
                return "esc to interrupt" in s
            if state == "dialog":
                return "Do you want to proceed?" in s
            return "? for shortcuts" in s

        for agent_id, pane_id, state in self.members:
            ce.wait_until(lambda: ready(pane_id, state), timeout=90, what=f"{state} member {pane_id}",
                          on_fail=lambda: self.screen(pane_id))
        for agent_id, pane_id, state in self.members:
            if state == "stalled":
                name = self.name(self.states.index("stalled"))
                n = len(models.turns.get(name, []))
                self.cafleet("--fleet-id", self.F, "message", "send", "--agent-id", self.D, "--to", agent_id,
                             "--text", "Write the summary of README.md and report it to me.")
                ce.wait_until(lambda: len(models.turns.get(name, [])) > n,
                              timeout=60, what="the stalled member's turn on its task")
                ce.wait_until(lambda: "? for shortcuts" in self.screen(pane_id), timeout=60,
                              what="the stalled member to be idle")
            if state == "exited":
                self.tmux.send_literal(pane_id, "/exit")
                time.sleep(0.3)
                self.tmux.send_keys(pane_id, "Enter")
                ce.wait_until(lambda: not self.tmux.pane_exists(pane_id) or self.tmux.pane_dead(pane_id),
                              timeout=30, what="the exited member's pane to close")
                # its exit notice (tmux's pane-died hook -> a task to the Director) is read once,
                # before the ticks measured here, so neither kind of tick pays for it
                poll = ["--fleet-id", self.F, "--json", "message", "poll", "--agent-id", self.D]
                ce.wait_until(lambda: json.loads(self.cafleet(*poll).stdout), timeout=15,
                              what="the exit notice")
        # every preview and turn above is over: drain the Director's inbox
        self.ack_all()

    def ack_all(self) -> None:
        for t in json.loads(self.cafleet("--fleet-id", self.F, "--json", "message", "poll", "--agent-id",
                                         self.D).stdout):
            self.cafleet("--fleet-id", self.F, "message", "ack", "--agent-id", self.D, "--task-id", t["task_id"])

    def report(self) -> None:
        """A `reporting` member's message to the Director, sent before a tick."""
        for agent_id, _pane, state in self.members:
            if state == "reporting":
                self.cafleet("--fleet-id", self.F, "message", "send", "--agent-id", agent_id, "--to", self.D,
                             "--text", "Progress: parser done, 14 tests pass; starting on the CLI flags.")

    def tick(self, kind: str) -> tuple[int, int]:
        """One tick of `kind` (`seed` or `skill`): (commands, output bytes)."""
        f = ["--fleet-id", self.F]
        if kind == "seed":
            cmds = [[*f, "--json", "member", "list"], [*f, "--json", "message", "poll", "--agent-id", self.D]]
        else:
            cmds = [[*f, "member", "list"], [*f, "message", "poll", "--agent-id", self.D]]
        n = size = 0
        reported: set[str] = set()
        shown_state: dict[str, str] = {}
        for argv in cmds:
            p = self.cafleet(*argv)
            n, size = n + 1, size + len(p.stdout.encode()) + len(p.stderr.encode())
            self._show(argv, p)
            if argv[2:4] == ["member", "list"]:  # the text the Director reads: AGENT_ID NAME BACKEND STATE …
                for row in p.stdout.splitlines()[1:]:
                    cols = row.split()
                    if len(cols) >= 4:
                        shown_state[cols[0]] = cols[3]
        # ack what the poll returned (both templates ack every task once handled)
        polled = json.loads(self.cafleet(*f, "--json", "message", "poll", "--agent-id", self.D).stdout)
        for t in polled:
            reported.add(t["sender_agent_id"])
            p = self.cafleet(*f, "message", "ack", "--agent-id", self.D, "--task-id", t["task_id"])
            n, size = n + 1, size + len(p.stdout.encode()) + len(p.stderr.encode())
        for agent_id, _pane, state in self.members:
            if kind == "seed":
                if agent_id in reported:
                    continue
                argv = [*f, "member", "capture", "--member-id", agent_id, "--lines", "200"]
            elif shown_state.get(agent_id) == "dialog" or (shown_state.get(agent_id) == "idle" and state == "stalled"):
                # the skill: a dialog, or idle while it holds work you gave it (the Director
                # knows what it sent; a real one also waits for QUIET to reach 2m)
                argv = [*f, "member", "capture", "--member-id", agent_id, "--changed"]
            else:
                continue
            if kind == "skill" and state not in CAPTURE_STATES:
                self.mismatches += 1
            p = self.cafleet(*argv, check=False)
            n, size = n + 1, size + len(p.stdout.encode()) + len(p.stderr.encode())
            self._show(argv, p)
        if kind == "skill":
            for agent_id, _pane, state in self.members:
                if state in CAPTURE_STATES and shown_state.get(agent_id) not in ("dialog", "idle"):
                    self.missed += 1
        return n, size

    def _show(self, argv, p) -> None:
        if self.show:
            print(f"$ cafleet {' '.join(argv)}\n{p.stdout}{p.stderr}", file=sys.stderr)

    def close(self, models: Models) -> None:
        self.cafleet("fleet", "delete", self.F, "--force", check=False)
        self.tmux.tmux("kill-pane", "-t", self.pane[1], check=False)


def measure(sizes=(3, 8), ticks: int = 3, report=print, show: bool = False) -> list[dict]:
    if shutil.which("tmux") is None or ce.find_claude() is None:
        raise SystemExit("needs tmux and claude (tests/e2e/install-tools.sh)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="cafleet-tick-cost-") as tmp:
        tmp = Path(tmp)
        proj = tmp / "proj"
        proj.mkdir()
        home = ce.ClaudeHome(tmp / "home").create(trusted=[proj])
        models = Models(tmp)
        api = FakeAPI(models).start()
        # held turns whose claude was killed at a scenario's end answer into closed sockets
        api._httpd.handle_error = lambda *_a: None
        env = ce.claude_env(home, api.url, extra={"CAFLEET_DB": str(tmp / "data" / "cafleet.db")})
        tmux = ce.TmuxServer(tmp / "tmux", env, width=240, height=60).start(cwd=proj)
        try:
            for n in sizes:
                for name, states_of in SCENARIOS.items():
                    t0 = time.monotonic()
                    fleet = Fleet(tmux, env, proj, states_of(n))
                    got = {}
                    try:
                        fleet.spawn()
                        fleet.settle(models)
                        for kind in ("skill", "seed"):
                            per = []
                            for _ in range(ticks):
                                fleet.report()
                                fleet.show = show and kind == "skill"
                                per.append(fleet.tick(kind))
                            got[kind] = per
                    except Exception as e:  # noqa: BLE001 - report the row, go on with the next
                        report(f"{n:>2}  {name:<20} FAILED: {type(e).__name__}: {str(e)[:400]}")
                        continue
                    finally:
                        fleet.close(models)
                    row = {"members": n, "scenario": name}
                    for kind, per in got.items():
                        row[f"{kind}_commands"] = statistics.mean(c for c, _ in per)
                        row[f"{kind}_bytes"] = statistics.mean(b for _, b in per)
                        row[f"{kind}_bytes_per_hour"] = row[f"{kind}_bytes"] * 60
                    row["ratio"] = row["seed_bytes"] / row["skill_bytes"]
                    row["state_mismatches"] = fleet.mismatches + fleet.missed
                    row["seconds"] = round(time.monotonic() - t0, 1)
                    rows.append(row)
                    report(_line(row))
        finally:
            models.release.set()
            tmux.kill()
            api.stop()
    return rows


HEADER = (f"{'N':>2}  {'scenario':<20} {'seed cmds':>9} {'seed B/tick':>11} {'seed KB/h':>9}  "
          f"{'skill cmds':>10} {'skill B/tick':>12} {'skill KB/h':>10}  {'ratio':>6}")


def _line(r: dict) -> str:
    return (f"{r['members']:>2}  {r['scenario']:<20} {r['seed_commands']:>9.1f} {r['seed_bytes']:>11.0f} "
            f"{r['seed_bytes_per_hour'] / 1024:>9.0f}  {r['skill_commands']:>10.1f} {r['skill_bytes']:>12.0f} "
            f"{r['skill_bytes_per_hour'] / 1024:>10.1f}  {r['ratio']:>5.1f}x"
            + (f"  ({r['state_mismatches']} STATE mismatches)" if r.get("state_mismatches") else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="3,8", help="fleet sizes, comma-separated (default 3,8)")
    ap.add_argument("--ticks", type=int, default=3, help="ticks of each kind per scenario (default 3)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    ap.add_argument("--show", action="store_true", help="print every skill-tick command and its output (stderr)")
    a = ap.parse_args()
    version = subprocess.run([ce.find_claude(), "--version"], capture_output=True, text=True).stdout.strip()
    print(f"tick cost: real Claude Code panes ({version}), offline; "
          f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; nproc {os.cpu_count()}")
    print(HEADER)
    print("-" * len(HEADER))
    t0 = time.monotonic()
    rows = measure(tuple(int(x) for x in a.sizes.split(",")), a.ticks, show=a.show)
    print(f"total {time.monotonic() - t0:.0f} s; bytes = stdout + stderr of every command of a tick, "
          f"mean of {a.ticks} ticks; KB/h at one tick a minute; ratio = seed bytes / skill bytes")
    if a.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
