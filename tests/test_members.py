"""Members through the installed `cafleet` CLI, against real tmux and stand-in agents.

Every test gets a private tmux server (`tmux_server`, killed by its socket at teardown), a
session whose first pane runs the stand-in Director (`python -m cafleet.standin --director`),
and an environment like a Director's own shell: `TMUX=<socket>,0,0`, `TMUX_PANE=<that pane>`,
`CAFLEET_DB`, and a stand-in named `claude` first on PATH (`cafleet.demo.install_standin`).
The tmux server is started with that environment, so member panes get it too.

What a pane's process really received is read from the stand-in's log
(`$CAFLEET_STANDIN_LOG`, one JSON object per line or key it read): members share
`members.jsonl`, the Director logs to `director.jsonl`. Broker state is read with the
`Broker` API (in-process) or `--json` output. "Nothing was typed" is checked by typing a
sentinel afterwards and asserting that the sentinel is the only thing the pane got.

`Rig` and the fixtures are imported by test_push.py and test_tick.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cafleet import members
from cafleet.broker import Broker
from cafleet.demo import install_standin

CAFLEET_SCRIPT = shutil.which("cafleet")
CAFLEET = [CAFLEET_SCRIPT] if CAFLEET_SCRIPT else [sys.executable, "-m", "cafleet"]
WAIT = 10.0
UUID_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
NOWHERE = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def wait_for(fn, what: str, timeout: float = WAIT, interval: float = 0.02):
    """Call `fn` until it returns something truthy (returned) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def read_log(path) -> list[dict]:
    """Complete entries of a stand-in log (a line still being written is left out)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def lines_of(entries: list[dict]) -> list[str]:
    return [e["value"] for e in entries if e["kind"] == "line"]


class Rig:
    """A private tmux server with a Director pane, driven through the real CLI."""

    def __init__(self, server, tmp: Path, db: Path):
        self.socket = server.socket_path
        self.tmp = tmp
        self.db = db
        self.bin = install_standin(str(tmp / "bin"))
        self.member_log = tmp / "members.jsonl"
        self.director_log = tmp / "director.jsonl"
        env = {k: v for k, v in os.environ.items()
               if k not in ("TMUX", "TMUX_PANE") and not k.startswith("CAFLEET_")}
        env["CAFLEET_DB"] = str(db)
        env["CAFLEET_STANDIN_LOG"] = str(self.member_log)
        env["PATH"] = self.bin + os.pathsep + env.get("PATH", os.defpath)
        self.base_env = env
        self.env = dict(env)
        self.director_pane: str | None = None
        self.window: str | None = None
        self.session = "fleet"
        self.fleet_id: str | None = None
        self.director_id: str | None = None

    # -- tmux ---------------------------------------------------------------

    def tmux(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True,
                           env=self.base_env, timeout=10)
        if check and r.returncode != 0:
            raise AssertionError(f"tmux {args} failed: {r.stderr}")
        return r.stdout.rstrip("\n")

    def start(self, command: list[str] | None = None, size: tuple[int, int] = (200, 50)) -> str:
        """Start the session; its first pane runs `command` (default: the stand-in Director,
        logging to `director_log`). Returns the pane id; sets `env` for the CLI."""
        cmd = command or ["env", f"CAFLEET_STANDIN_LOG={self.director_log}",
                          sys.executable, "-m", "cafleet.standin", "--director"]
        started = subprocess.run(
            ["tmux", "-S", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", self.session,
             "-x", str(size[0]), "-y", str(size[1]), "-P", "-F", "#{pane_id}\t#{window_id}", *cmd],
            capture_output=True, text=True, env=self.base_env, cwd=self.tmp, timeout=10,
        )
        assert started.returncode == 0, f"tmux new-session failed: {started.stderr}"
        out = started.stdout.strip()
        self.director_pane, self.window = out.split("\t")
        self.env = {**self.base_env, "TMUX": f"{self.socket},0,0", "TMUX_PANE": self.director_pane}
        if command is None:
            wait_for(lambda: "stand-in agent (Director)" in self.capture(self.director_pane),
                     "the stand-in Director's banner")
        return self.director_pane

    def capture(self, pane: str, lines: int = 200) -> str:
        return self.tmux("capture-pane", "-p", "-t", pane, "-S", f"-{lines}")

    def panes(self, window: str | None = None) -> list[str]:
        return [p for p in self.tmux("list-panes", "-t", window or self.window, "-F", "#{pane_id}",
                                     check=False).splitlines() if p]

    def active_pane(self) -> str:
        return self.tmux("display-message", "-p", "-t", self.window, "#{pane_id}")

    def pane_exists(self, pane: str) -> bool:
        out = self.tmux("list-panes", "-a", "-F", "#{pane_id} #{pane_dead}", check=False)
        return f"{pane} 0" in out.splitlines()

    def pane_pid(self, pane: str) -> int:
        return int(self.tmux("display-message", "-p", "-t", pane, "#{pane_pid}"))

    # -- cafleet ------------------------------------------------------------

    def cli(self, *args, code: int | None = 0, env: dict | None = None, timeout: float = 30):
        p = subprocess.run(CAFLEET + [str(a) for a in args], capture_output=True, text=True,
                           env=self.env if env is None else env, cwd=self.tmp, timeout=timeout)
        if code is not None:
            assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr, p.stderr
        return p

    @property
    def f(self) -> list[str]:
        return ["--fleet-id", self.fleet_id]

    def create_fleet(self) -> dict:
        data = json.loads(self.cli("--json", "fleet", "create", "--name", "t").stdout)
        self.fleet_id, self.director_id = data["fleet_id"], data["director"]["agent_id"]
        return data

    def create_member(self, name: str = "Alice", *extra: str, env: dict | None = None,
                      wait_ready: bool = True) -> str:
        args = [*self.f, "member", "create", "--name", name, "--description", f"{name} does things", *extra]
        if "--prompt-file" not in extra and "--" not in extra:
            args += ["--", "Wait for tasks."]
        out = self.cli(*args, env=env).stdout
        member_id = out.splitlines()[0]
        assert UUID_RE.match(member_id), out
        if wait_ready:
            self.wait_ready(member_id)
        return member_id

    def wait_ready(self, member_id: str) -> dict:
        """Wait for the member's `ready` task, and for its send (push included) to be over:
        the stand-in prints `sent to Director: 'ready'` once `message send` returned."""
        task = wait_for(lambda: self.find_task(self.director_id, member_id, "ready"),
                        f"`ready` from member {member_id}")
        pane = self.pane_of(member_id)
        wait_for(lambda: "sent to Director: 'ready'" in self.capture(pane), f"member {member_id}'s send to end")
        return task

    # -- broker (in-process reads) -------------------------------------------

    def broker(self) -> Broker:
        return Broker.open(str(self.db))

    def inbox(self, agent_id: str) -> list[dict]:
        with self.broker() as b:
            return b.poll(self.fleet_id, agent_id)

    def find_task(self, recipient: str, sender: str, body: str) -> dict | None:
        return next((t for t in self.inbox(recipient)
                     if t["sender_agent_id"] == sender and t["body"] == body), None)

    def agent(self, agent_id: str, active: bool = True) -> dict:
        with self.broker() as b:
            return b.get_agent(self.fleet_id, agent_id, active=active)

    def active_ids(self) -> set[str]:
        with self.broker() as b:
            return {a["agent_id"] for a in b.list_agents(self.fleet_id)}

    def all_rows(self, table: str) -> list[dict]:
        """Every row of a broker table (deregistered and rolled-back state included)."""
        with self.broker() as b:
            cur = b.conn.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def pane_of(self, member_id: str) -> str:
        return self.agent(member_id)["placement"]["pane_id"]

    # -- stand-in logs --------------------------------------------------------

    def mark(self, log: Path | None = None) -> int:
        return len(read_log(log or self.member_log))

    def since(self, mark: int, log: Path | None = None) -> list[dict]:
        return read_log(log or self.member_log)[mark:]

    def sentinel(self, member_id: str, mark: int, word: str = "sentinel") -> None:
        """Type `! echo <word>` via `member exec`; assert it is all the member got since `mark`."""
        self.cli(*self.f, "member", "exec", "--member-id", member_id, f"echo {word}")
        pane = self.pane_of(member_id)
        wait_for(lambda: f"\n{word}" in self.capture(pane), f"the {word} output")
        assert self.since(mark) == [{"kind": "line", "value": f"! echo {word}"}]


@pytest.fixture
def rig(tmux_server, tmp_path, db_path):
    """A Rig whose tmux server is not started yet."""
    return Rig(tmux_server, tmp_path, db_path)


@pytest.fixture
def fleet(rig):
    """A Rig with the stand-in Director running and a fleet created in its pane."""
    rig.start()
    rig.create_fleet()
    return rig


@pytest.fixture
def one(fleet):
    """`fleet` plus one ready member; returns (rig, member_id)."""
    return fleet, fleet.create_member("Alice")


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _environ(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(i.split("=", 1) for i in items if "=" in i)


# ------------------------------------------------------------------------ fleet create


def test_fleet_create_records_the_directors_pane(rig):
    pane = rig.start()
    data = rig.create_fleet()
    placement = data["director"]["placement"]
    assert placement["tmux_socket"] == rig.socket
    assert placement["session_name"] == "fleet"
    assert placement["window_id"] == rig.window
    assert placement["pane_id"] == pane
    assert rig.agent(rig.director_id)["placement"]["pane_id"] == pane
    rig.cli("fleet", "delete", data["fleet_id"])  # one fleet per pane (issue 10)
    text = rig.cli("fleet", "create").stdout.splitlines()
    assert UUID_RE.match(text[0]) and UUID_RE.match(text[1])
    assert f"pane {pane} (session fleet, window {rig.window})" in "\n".join(text[2:])


def test_fleet_create_outside_tmux_has_no_placement(rig):
    p = rig.cli("--json", "fleet", "create", env=rig.base_env)
    assert json.loads(p.stdout)["director"]["placement"] is None
    assert "not inside tmux" in p.stderr


# ------------------------------------------------------------------------ member create


def test_member_create_with_a_prompt_after_dashes(fleet):
    before = fleet.panes()
    out = fleet.cli(*fleet.f, "member", "create", "--name", "Alice", "--description", "picks colours",
                    "--", "Paint", "it", "blue.").stdout.splitlines()
    member_id = out[0]
    assert UUID_RE.match(member_id) and "member Alice (claude) in pane %" in out[1]
    # a new pane in the Director's window; the Director's pane is still the active one
    placement = fleet.agent(member_id)["placement"]
    new = [p for p in fleet.panes() if p not in before]
    assert new == [placement["pane_id"]]
    assert placement["window_id"] == fleet.window and placement["session_name"] == "fleet"
    assert placement["tmux_socket"] == fleet.socket and placement["coding_agent"] == "claude"
    assert fleet.active_pane() == fleet.director_pane
    assert _window_option(fleet, "remain-on-exit") == ""
    # the stand-in learnt its identity from the environment: `ready` from the member
    ready = fleet.wait_ready(member_id)
    assert ready["sender_name"] == "Alice"
    # the prompt (identity + task) and the identity env reached the real process
    pid = fleet.pane_pid(placement["pane_id"])
    argv = _cmdline(pid)
    assert argv[argv.index("-m") + 1] == "cafleet.standin"
    assert "--name=Alice" in argv and any(a.startswith("--settings=") for a in argv)
    prompt = argv[argv.index("--") + 1]
    assert prompt == members.identity_prompt(fleet.fleet_id, member_id, fleet.director_id, "Alice",
                                             "picks colours") + members.PROMPT_HEADING + "Paint it blue."
    env = _environ(pid)
    assert env["CAFLEET_FLEET_ID"] == fleet.fleet_id
    assert env["CAFLEET_AGENT_ID"] == member_id
    assert env["CAFLEET_DIRECTOR_ID"] == fleet.director_id
    assert env["CAFLEET_DB"] == str(fleet.db)
    assert env["TMUX_PANE"] == placement["pane_id"]
    # member list: alive, unread, last_seen
    with fleet.broker() as b:
        b.send(fleet.fleet_id, fleet.director_id, member_id, "unpushed")  # no push: stays unread
    rows = json.loads(fleet.cli(*fleet.f, "--json", "member", "list").stdout)
    assert [r["agent_id"] for r in rows] == [member_id]
    row = rows[0]
    assert set(row) == {"agent_id", "name", "coding_agent", "pane_id", "pane_status", "state", "quiet_s",
                        "unread", "held", "exit_status", "last_line", "last_seen", "last_report_at",
                        "unacked_reports", "created_at", "worktree"}
    assert row["worktree"] is None  # no --worktree (tests/test_worktrees.py)
    assert (row["name"], row["coding_agent"], row["pane_id"], row["pane_status"], row["unread"]) == (
        "Alice", "claude", placement["pane_id"], "alive", 1)
    assert (row["state"], row["held"], row["exit_status"]) == ("idle", 0, None)
    assert row["last_seen"] and row["last_seen"] >= row["created_at"]
    text = fleet.cli(*fleet.f, "member", "list").stdout.splitlines()
    assert text[0].split() == ["AGENT_ID", "NAME", "BACKEND", "STATE", "QUIET", "SEEN", "REPORTED", "TO_YOU",
                               "UNREAD", "HELD"]
    cols = text[1].split()
    assert cols[:4] == [member_id, "Alice", "claude", "idle"] and cols[-2:] == ["1", "0"]


def test_member_create_with_an_absolute_prompt_file_and_json(fleet, tmp_path):
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("Line one.\nLine two: ünïcødé ✓\n", encoding="utf-8")
    data = json.loads(fleet.cli(*fleet.f, "--json", "member", "create", "--name", "Bob", "--description",
                                "reads files", "--prompt-file", str(prompt_file)).stdout)
    assert set(data) == {"agent_id", "name", "coding_agent", "placement"}
    assert data["name"] == "Bob" and data["coding_agent"] == "claude"
    p = data["placement"]
    assert set(p) >= {"tmux_socket", "session_name", "window_id", "pane_id"}
    assert (p["tmux_socket"], p["session_name"], p["window_id"]) == (fleet.socket, "fleet", fleet.window)
    assert p["pane_id"] in fleet.panes()
    fleet.wait_ready(data["agent_id"])
    argv = _cmdline(fleet.pane_pid(p["pane_id"]))
    assert argv[argv.index("--") + 1].endswith(members.PROMPT_HEADING + "Line one.\nLine two: ünïcødé ✓\n")


@pytest.mark.parametrize("how", ["relative", "both", "missing"])
def test_member_create_prompt_usage_errors(fleet, tmp_path, how):
    (tmp_path / "p.txt").write_text("x")
    args = {"relative": ["--prompt-file", "p.txt"],
            "both": ["--prompt-file", str(tmp_path / "p.txt"), "--", "also this"],
            "missing": ["--prompt-file", str(tmp_path / "nope.txt")]}[how]
    before = fleet.panes()
    p = fleet.cli(*fleet.f, "member", "create", "--name", "X", "--description", "d", *args, code=2)
    assert p.stderr.startswith("Error: ")
    assert fleet.active_ids() == {fleet.director_id}
    assert fleet.panes() == before


# ------------------------------------------------------------------------ missing backend


@pytest.mark.parametrize("case", ["claude-not-on-path", "codex-not-on-path"])
def test_missing_backend_binary_registers_nothing(fleet, case):
    env = dict(fleet.env)
    args = []
    if case == "claude-not-on-path":
        env["PATH"] = "/usr/bin:/bin"
        assert shutil.which("claude", path=env["PATH"]) is None
    else:
        assert shutil.which("codex", path=env["PATH"]) is None
        args = ["--coding-agent", "codex"]
    before = fleet.panes()
    p = fleet.cli(*fleet.f, "member", "create", "--name", "X", "--description", "d", *args, "--", "hi",
                  env=env, code=1)
    binary = "claude" if case == "claude-not-on-path" else "codex"
    assert f"`{binary}`" in p.stderr and "not on PATH" in p.stderr
    assert fleet.active_ids() == {fleet.director_id}
    assert len(fleet.all_rows("agents")) == 1
    assert fleet.panes() == before


def test_a_dead_director_pane_spawns_nothing(rig):
    rig.start()
    rig.create_fleet()
    # a second pane keeps the window alive while the Director's pane goes away (the split
    # would fail; cafleet checks the pane first, so nothing is even registered)
    keeper = rig.tmux("split-window", "-d", "-P", "-F", "#{pane_id}", "-t", rig.director_pane, "sleep", "600")
    rig.tmux("kill-pane", "-t", rig.director_pane)
    assert rig.panes() == [keeper]
    p = rig.cli(*rig.f, "member", "create", "--name", "Ghost", "--description", "d", "--", "hi", code=1)
    assert p.stderr.startswith("Error: ") and rig.director_pane in p.stderr
    assert rig.active_ids() == {rig.director_id}
    with rig.broker() as b:
        assert [a["agent_id"] for a in b.list_agents(rig.fleet_id, include_deregistered=True)] == [rig.director_id]
    assert len(rig.all_rows("agents")) == 1 and len(rig.all_rows("placements")) == 1
    assert rig.all_rows("tasks") == []
    assert rig.panes() == [keeper]
    assert rig.tmux("list-panes", "-a", "-F", "#{pane_id}").split() == [keeper]


def test_member_create_spawned_by_another_agent_with_a_pane(one):
    fleet, alice = one
    sub = fleet.create_member("Sub", "--agent-id", alice, "--", "Help Alice.", wait_ready=False)
    row = fleet.agent(sub)
    assert row["parent_agent_id"] == alice and row["placement"]["window_id"] == fleet.window
    assert fleet.active_pane() == fleet.director_pane
    env = _environ(wait_for(lambda: (lambda pid: pid if "cafleet.standin" in _cmdline(pid) else None)(
        fleet.pane_pid(row["placement"]["pane_id"])), "the sub-member's stand-in"))
    assert env["CAFLEET_DIRECTOR_ID"] == alice
    # its `ready` goes to Alice, not to the root Director
    wait_for(lambda: [t for t in fleet.all_rows("tasks") if t["sender_agent_id"] == sub
                      and t["recipient_agent_id"] == alice and t["body"] == "ready"], "`ready` to Alice")
    listed = json.loads(fleet.cli(*fleet.f, "--json", "member", "list", "--agent-id", alice).stdout)
    assert [r["agent_id"] for r in listed] == [sub]
    # an agent without a pane cannot spawn members
    plain = fleet.cli(*fleet.f, "agent", "register", "--name", "Plain", "--description", "d").stdout.strip()
    p = fleet.cli(*fleet.f, "member", "create", "--name", "X", "--description", "d", "--agent-id", plain,
                  "--", "hi", code=1)
    assert "has no tmux pane" in p.stderr
    assert fleet.active_ids() == {fleet.director_id, alice, sub, plain}


# ------------------------------------------------------------------------ dead / pending panes


def test_dead_pane_is_listed_dead_and_messages_still_arrive(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    fleet.tmux("kill-pane", "-t", pane)
    rows = json.loads(fleet.cli(*fleet.f, "--json", "member", "list").stdout)
    assert [(r["agent_id"], r["pane_status"]) for r in rows] == [(member_id, "dead")]
    out = fleet.cli(*fleet.f, "message", "send", "--agent-id", fleet.director_id, "--to", member_id,
                    "--text", "are you there?").stdout.splitlines()
    assert UUID_RE.match(out[0])
    assert out[1].startswith("no pane notified")
    polled = json.loads(fleet.cli(*fleet.f, "--json", "message", "poll", "--agent-id", member_id).stdout)["tasks"]
    assert [(t["task_id"], t["body"]) for t in polled] == [(out[0], "are you there?")]
    # pane commands refuse a dead pane (exit 1), without a traceback
    fleet.cli(*fleet.f, "member", "capture", "--member-id", member_id, code=1)
    fleet.cli(*fleet.f, "member", "ping", "--member-id", member_id, code=1)
    # a fleet whose members' panes are all dead is deleted without --force
    assert "2 agent(s) deregistered" in fleet.cli("fleet", "delete", fleet.fleet_id).stdout


def test_pending_member_is_listed_pending(fleet):
    with fleet.broker() as b:
        m = b.register_agent(fleet.fleet_id, "Pending", "d", role="member", parent_agent_id=fleet.director_id,
                             coding_agent="claude",
                             placement={"tmux_socket": fleet.socket, "session_name": "fleet",
                                        "window_id": fleet.window, "pane_id": None})
    rows = json.loads(fleet.cli(*fleet.f, "--json", "member", "list").stdout)
    assert [(r["agent_id"], r["pane_status"], r["pane_id"]) for r in rows] == [(m["agent_id"], "pending", None)]
    assert "pending" in fleet.cli(*fleet.f, "member", "list").stdout
    out = fleet.cli(*fleet.f, "message", "send", "--agent-id", fleet.director_id, "--to", m["agent_id"],
                    "--text", "later").stdout.splitlines()
    assert out[1] == "no pane notified (recipient has no pane)"
    fleet.cli(*fleet.f, "member", "capture", "--member-id", m["agent_id"], code=1)
    # a graceful delete of a member that never got a pane just deregisters it
    fleet.cli(*fleet.f, "member", "delete", "--member-id", m["agent_id"])
    assert fleet.active_ids() == {fleet.director_id}


# ------------------------------------------------------------------------ capture


def test_member_capture(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    fleet.cli(*fleet.f, "member", "exec", "--member-id", member_id, "seq 1 80")
    wait_for(lambda: fleet.capture(pane).rstrip().endswith("\n80"), "seq output")
    five = fleet.cli(*fleet.f, "member", "capture", "--member-id", member_id, "--lines", "5").stdout
    assert five == "76\n77\n78\n79\n80\n"
    default = fleet.cli(*fleet.f, "member", "capture", "--member-id", member_id).stdout
    assert default.splitlines() == [str(i) for i in range(51, 81)]
    data = json.loads(fleet.cli(*fleet.f, "--json", "member", "capture", "--member-id", member_id,
                                "--lines", "3").stdout)
    assert data == {"member_agent_id": member_id, "pane_id": pane, "lines": 3, "content": "78\n79\n80"}
    fleet.cli(*fleet.f, "member", "capture", "--member-id", member_id, "--lines", "0", code=2)


# ------------------------------------------------------------------------ send-input


def _open_choice_frame(fleet: Rig, member_id: str) -> int:
    fleet.cli(*fleet.f, "message", "send", "--agent-id", fleet.director_id, "--to", member_id,
              "--text", "Please choose a colour")
    pane = fleet.pane_of(member_id)
    wait_for(lambda: "4. Type something." in fleet.capture(pane), "the choice frame")
    return fleet.mark()


def test_send_input_choice_after_refusals(one):
    fleet, member_id = one
    mark = _open_choice_frame(fleet, member_id)
    si = [*fleet.f, "member", "send-input", "--member-id", member_id]
    for bad in ([], ["--choice", "1", "--freetext", "x"], ["--choice", "4"], ["--choice", "0"],
                ["--freetext", "two\nlines"], ["--freetext", "esc\x1b[2J"], ["--freetext", "tab\there"],
                ["--freetext", "bell\x07"], ["--freetext", "!rm -rf /"], ["--freetext", "  !ls"],
                ["--freetext", ""], ["--freetext", "bidi \u202e"]):
        p = fleet.cli(*si, *bad, code=2)
        assert p.stderr.startswith("Error: "), (bad, p.stderr)
    assert fleet.since(mark) == []
    out = fleet.cli(*si, "--choice", "2").stdout
    assert out.strip() == f"sent '2' to pane {fleet.pane_of(member_id)}"
    wait_for(lambda: fleet.find_task(fleet.director_id, member_id, "chose: Green"), "`chose: Green` at the Director")
    # the refusals typed nothing: the frame's only key was the `2`
    assert fleet.since(mark) == [{"kind": "key", "value": "2"}]


def test_send_input_freetext(one):
    fleet, member_id = one
    mark = _open_choice_frame(fleet, member_id)
    data = json.loads(fleet.cli(*fleet.f, "--json", "member", "send-input", "--member-id", member_id,
                                "--freetext", "blue please").stdout)
    assert data == {"member_agent_id": member_id, "pane_id": fleet.pane_of(member_id), "sent": "4blue please"}
    wait_for(lambda: fleet.find_task(fleet.director_id, member_id, "chose: blue please"),
             "`chose: blue please` at the Director")
    assert fleet.since(mark) == [{"kind": "key", "value": "4"}, {"kind": "line", "value": "blue please"}]


# ------------------------------------------------------------------------ exec, ping


def test_member_exec_runs_in_the_pane_and_refuses_unsafe_commands(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    mark = fleet.mark()
    ex = [*fleet.f, "member", "exec", "--member-id", member_id]
    for bad in ["", "   ", "echo a\necho b", "echo a\rb", "echo \x03", "echo \x1b[2J", "echo \u202e"]:
        p = fleet.cli(*ex, bad, code=2)
        assert p.stderr.startswith("Error: "), (bad, p.stderr)
    out = fleet.cli(*ex, "echo exec-ran-$((6*7)) 'it''s';").stdout
    assert out.strip().startswith(f"""typed "! echo exec-ran-$((6*7)) 'it''s';" into pane {pane}; finished after """)
    wait_for(lambda: "\nexec-ran-42 its\n" in fleet.capture(pane) + "\n", "the command's output")
    member_capture = fleet.cli(*fleet.f, "member", "capture", "--member-id", member_id, "--lines", "5").stdout
    assert "exec-ran-42 its" in member_capture
    assert fleet.since(mark) == [{"kind": "line", "value": "! echo exec-ran-$((6*7)) 'it''s';"}]


def test_member_ping_types_the_poll_command(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    mark = fleet.mark()
    data = json.loads(fleet.cli(*fleet.f, "--json", "member", "ping", "--member-id", member_id).stdout)
    expected = f"cafleet --fleet-id {fleet.fleet_id} message poll --agent-id {member_id}"
    assert data == {"member_agent_id": member_id, "pane_id": pane, "sent": expected}
    assert expected == members.poll_command(fleet.fleet_id, member_id)
    wait_for(lambda: "polled 0 task(s)" in fleet.capture(pane), "the member's poll")
    assert fleet.since(mark) == [{"kind": "line", "value": expected}]


# ------------------------------------------------------------------------ delete


def _layout(rig: Rig) -> str:
    return rig.tmux("display-message", "-p", "-t", rig.window, "#{window_layout}")


def test_member_delete_graceful(fleet):
    alice = fleet.create_member("Alice")
    bob = fleet.create_member("Bob")
    a_pane, b_pane = fleet.pane_of(alice), fleet.pane_of(bob)
    assert len(fleet.panes()) == 3
    mark = fleet.mark()
    out = fleet.cli(*fleet.f, "member", "delete", "--member-id", alice).stdout
    assert out.strip() == f"member {alice} deleted (exited)"
    assert {"kind": "line", "value": "/exit"} in fleet.since(mark)
    assert "bye" not in fleet.capture(b_pane)
    assert not fleet.pane_exists(a_pane)
    assert fleet.panes() == [fleet.director_pane, b_pane]
    assert fleet.active_ids() == {fleet.director_id, bob}
    assert fleet.agent(alice, active=False)["status"] == "deregistered"
    # rebalanced: applying the layout again changes nothing
    layout = _layout(fleet)
    fleet.tmux("select-layout", "-t", fleet.window, "tiled")
    assert _layout(fleet) == layout
    assert fleet.active_pane() == fleet.director_pane
    rows = json.loads(fleet.cli(*fleet.f, "--json", "member", "list").stdout)
    assert [r["agent_id"] for r in rows] == [bob]


def test_member_delete_timeout_then_force(fleet, tmp_path):
    deaf = tmp_path / "deaf-bin"
    deaf.mkdir()
    (deaf / "claude").write_text("#!/bin/sh\necho 'deaf stand-in: ignoring input'\nexec sleep 600\n")
    (deaf / "claude").chmod(0o755)
    env = {**fleet.env, "PATH": f"{deaf}{os.pathsep}{fleet.env['PATH']}"}
    member_id = fleet.create_member("Deaf", env=env, wait_ready=False)
    pane = fleet.pane_of(member_id)
    wait_for(lambda: "ignoring input" in fleet.capture(pane), "the deaf member's banner")
    t0 = time.monotonic()
    p = fleet.cli(*fleet.f, "member", "delete", "--member-id", member_id, "--timeout", "1", code=2)
    assert time.monotonic() - t0 < 6
    assert p.stderr.startswith("Error: ")
    assert "did not close within 1 s" in p.stderr
    assert "deaf stand-in: ignoring input" in p.stderr  # the pane's tail
    assert "/exit" in p.stderr  # what was typed, echoed by the tty
    assert member_id in fleet.active_ids()
    assert fleet.pane_exists(pane)
    out = fleet.cli(*fleet.f, "member", "delete", "--member-id", member_id, "--force").stdout
    assert out.strip() == f"member {member_id} deleted (killed)"
    assert not fleet.pane_exists(pane)
    assert fleet.active_ids() == {fleet.director_id}
    assert fleet.panes() == [fleet.director_pane]


def test_member_delete_force_when_the_pane_is_gone(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    fleet.tmux("kill-pane", "-t", pane)
    data = json.loads(fleet.cli(*fleet.f, "--json", "member", "delete", "--member-id", member_id, "--force").stdout)
    assert data == {"agent_id": member_id, "pane_id": pane, "how": "already gone", "worktree": None}
    assert fleet.active_ids() == {fleet.director_id}
    fleet.cli(*fleet.f, "member", "delete", "--member-id", member_id, "--force", code=1)


# ------------------------------------------------------------------------ fleet delete


def test_fleet_delete_refuses_live_members_then_force(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    p = fleet.cli("fleet", "delete", fleet.fleet_id, code=1)
    assert member_id in p.stderr and pane in p.stderr and "--force" in p.stderr
    assert fleet.pane_exists(pane) and member_id in fleet.active_ids()
    data = json.loads(fleet.cli("--json", "fleet", "delete", fleet.fleet_id, "--force").stdout)
    assert data["killed_panes"] == [pane] and not data["already_deleted"]
    assert set(data["deregistered"]) == {fleet.director_id, member_id}
    assert not fleet.pane_exists(pane)
    assert fleet.pane_exists(fleet.director_pane)  # the Director's own pane is left alone
    again = fleet.cli("fleet", "delete", fleet.fleet_id).stdout
    assert "already deleted" in again
    assert fleet.cli("--json", "fleet", "list").stdout.strip() == "[]"
    fleet.cli(*fleet.f, "member", "list", code=1)


# ------------------------------------------------------------------------ fleet isolation


def test_member_commands_with_another_fleets_member_are_not_found(one):
    fleet, member_id = one
    mine = fleet.fleet_id
    other = json.loads(fleet.cli("--json", "fleet", "create", "--name", "other",
                                 env=fleet.base_env).stdout)["fleet_id"]  # outside tmux: one fleet per pane
    mark, dmark = fleet.mark(), fleet.mark(fleet.director_log)
    o = ["--fleet-id", other]
    for args in (["capture", "--member-id", member_id],
                 ["send-input", "--member-id", member_id, "--choice", "1"],
                 ["send-input", "--member-id", member_id, "--freetext", "hi"],
                 ["exec", "--member-id", member_id, "echo pwned"],
                 ["ping", "--member-id", member_id],
                 ["delete", "--member-id", member_id],
                 ["delete", "--member-id", member_id, "--force"],
                 ["create", "--name", "X", "--description", "d", "--agent-id", member_id, "--", "hi"]):
        p = fleet.cli(*o, "member", *args, code=1)
        assert "not found" in p.stderr, (args, p.stderr)
    p = fleet.cli(*o, "message", "send", "--agent-id", json.loads(
        fleet.cli(*o, "--json", "agent", "list").stdout)[0]["agent_id"], "--to", member_id, "--text", "x", code=1)
    assert "not found" in p.stderr
    assert json.loads(fleet.cli(*o, "--json", "member", "list").stdout) == []
    assert fleet.active_ids() == {fleet.director_id, member_id}
    assert fleet.pane_exists(fleet.pane_of(member_id))
    fleet.fleet_id = mine
    fleet.sentinel(member_id, mark)
    assert fleet.since(dmark, fleet.director_log) == []


def test_a_split_that_fails_after_registration_rolls_back(rig):
    """The member is registered (pane pending) before the split; a window with no room for
    another pane makes the split fail, and the row goes again."""
    rig.start(["sleep", "600"], size=(2, 1))
    rig.create_fleet()
    p = rig.cli(*rig.f, "member", "create", "--name", "Cramped", "--description", "d", "--", "hi", code=1)
    assert "no space" in p.stderr
    assert rig.active_ids() == {rig.director_id}
    assert len(rig.all_rows("agents")) == 1 and len(rig.all_rows("placements")) == 1
    assert rig.panes() == [rig.director_pane]
    assert _window_option(rig, "remain-on-exit") == ""  # restored after the spawn


def _window_option(rig: Rig, name: str) -> str:
    return rig.tmux("show-options", "-w", "-q", "-v", "-t", rig.window, name)


def _bad_backend(fleet: Rig, tmp_path: Path, script: str) -> dict:
    bad = tmp_path / "bad-bin"
    bad.mkdir()
    (bad / "claude").write_text(f"#!/bin/sh\n{script}\n")
    (bad / "claude").chmod(0o755)
    return {**fleet.env, "PATH": f"{bad}{os.pathsep}{fleet.env['PATH']}"}


BAD_BACKENDS = [
    pytest.param("echo 'error: unknown option --settings'; exit 1", id="exits-at-once"),
    pytest.param("echo 'error: unknown option --settings'; sleep 0.2; exit 1", id="exits-after-200ms"),
]


@pytest.mark.parametrize("script", BAD_BACKENDS)
def test_a_backend_that_exits_right_after_start_is_rolled_back(fleet, tmp_path, script):
    env = _bad_backend(fleet, tmp_path, script)
    p = fleet.cli(*fleet.f, "member", "create", "--name", "Bad", "--description", "d", "--", "hi", env=env, code=1)
    assert p.stderr.startswith("Error: ")
    assert fleet.panes() == [fleet.director_pane]
    assert fleet.active_ids() == {fleet.director_id}
    assert len(fleet.all_rows("agents")) == 1 and len(fleet.all_rows("placements")) == 1


def exited_with(status: int) -> re.Pattern:
    """The start check's error; the status is best effort (tmux 3.3a sometimes never records
    `#{pane_dead_status}`)."""
    return re.compile(rf"`claude` exited( with status {status})? right after it started, so the member was not created")


def test_a_backend_that_exits_soon_after_start_shows_its_error(fleet, tmp_path):
    """The pane is born remain-on-exit, so a backend that exits within the start check leaves
    its error and exit status to be shown (not a tmux error about a pane that is gone)."""
    env = _bad_backend(fleet, tmp_path, "echo 'error: unknown option --settings'; sleep 0.2; exit 3")
    p = fleet.cli(*fleet.f, "member", "create", "--name", "Bad", "--description", "d", "--", "hi", env=env, code=1)
    assert exited_with(3).search(p.stderr), p.stderr
    assert "Its last output:\nerror: unknown option --settings" in p.stderr, p.stderr


def test_a_backend_that_exits_at_once_shows_its_status_and_says_if_output_was_lost(fleet, tmp_path):
    """tmux may discard the unread output of a process that exits within milliseconds
    (tmux#506; rare here: once in about 40 runs of a test, 0 in 400 plain tmux tries): the error
    then still gives the exit status and says the output is lost, never an empty "last
    output"."""
    env = _bad_backend(fleet, tmp_path, "echo 'error: unknown option --settings'; exit 3")
    p = fleet.cli(*fleet.f, "member", "create", "--name", "Bad", "--description", "d", "--", "hi", env=env, code=1)
    assert exited_with(3).search(p.stderr), p.stderr
    if "unknown option --settings" in p.stderr:
        assert "Its last output:\nerror: unknown option --settings" in p.stderr, p.stderr
    else:
        assert "tmux kept none of its output" in p.stderr and "run `claude` in a shell" in p.stderr, p.stderr


def test_a_backend_that_prints_nothing_is_reported_as_such(fleet, tmp_path):
    env = _bad_backend(fleet, tmp_path, "sleep 0.1; exit 7")
    p = fleet.cli(*fleet.f, "member", "create", "--name", "Bad", "--description", "d", "--", "hi", env=env, code=1)
    assert exited_with(7).search(p.stderr), p.stderr
    assert "tmux kept none of its output" in p.stderr, p.stderr


def test_tail_of_a_dead_pane_shows_the_processes_output(rig):
    """A pane kept by remain-on-exit pads its screen with blank rows and tmux's `Pane is dead`
    notice: the tail shown to the user (member create / delete errors) must skip them."""
    rig.start(["sleep", "600"])
    rig.tmux("set-option", "-w", "-t", rig.window, "remain-on-exit", "on")
    # the pause before exit: tmux drops output it has not yet read when the process exits (tmux#506)
    pane = rig.tmux("split-window", "-d", "-P", "-F", "#{pane_id}", "-t", rig.director_pane,
                    "sh", "-c", "echo 'error: unknown option --settings'; sleep 0.2; exit 1")
    # tmux 3.3a does not always draw its `Pane is dead` notice: wait for the pane_dead flag
    wait_for(lambda: rig.tmux("display-message", "-p", "-t", pane, "#{pane_dead}") == "1", "the pane to die")
    assert "unknown option --settings" in rig.capture(pane)
    tail = members._tail(rig.socket, pane)
    assert "unknown option --settings" in tail and "Pane is dead" not in tail


def _process_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (the tmux server is a daemon whose reaper may
    be slow; /proc/<pid>/stat field 3 is the state, see proc(5))."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _restart_server_with_a_stranger_on(rig: Rig, pane_id: str, log: Path) -> str:
    """Kill the tmux server and start a fresh one on the same socket (as after a reboot or
    `tmux kill-server`), whose second pane gets `pane_id` again. Returns that pane."""
    server_pid = int(rig.tmux("display-message", "-p", "#{pid}"))
    rig.tmux("kill-server")
    # `list-sessions` failing is not enough: a server that has dropped its sessions but not yet
    # exited answers "no sessions", and a `new-session` sent to it then fails (seen in CI).
    wait_for(lambda: not _process_running(server_pid), "the old tmux server process to exit")
    rig.start(["sleep", "600"])
    stranger = rig.tmux("split-window", "-d", "-P", "-F", "#{pane_id}", "-t", rig.director_pane,
                        "env", f"CAFLEET_STANDIN_LOG={log}", sys.executable, "-m", "cafleet.standin", "--director")
    assert stranger == pane_id
    wait_for(lambda: "stand-in agent" in rig.capture(stranger), "the stranger's banner")
    return stranger


def test_a_pane_id_reused_by_a_new_tmux_server_is_not_the_members(one, tmp_path):
    """A placement records the pane's process id: after a tmux server restart `%N` on the same
    socket is a stranger's pane, which must never be typed into or killed (a shell there would
    run line 2 of a preview, i.e. the message body)."""
    fleet, member_id = one
    stranger_log = tmp_path / "stranger.jsonl"
    stranger = _restart_server_with_a_stranger_on(fleet, fleet.pane_of(member_id), stranger_log)
    rows = json.loads(fleet.cli(*fleet.f, "--json", "member", "list").stdout)
    assert [(r["agent_id"], r["pane_status"]) for r in rows] == [(member_id, "dead")]
    out = fleet.cli(*fleet.f, "message", "send", "--agent-id", fleet.director_id, "--to", member_id,
                    "--text", "rm -rf ~/important").stdout.splitlines()
    assert out[1].startswith("no pane notified")
    for args in (["exec", "--member-id", member_id, "echo pwned"], ["ping", "--member-id", member_id],
                 ["send-input", "--member-id", member_id, "--choice", "1"],
                 ["capture", "--member-id", member_id]):
        fleet.cli(*fleet.f, "member", *args, code=1)
    fleet.cli(*fleet.f, "member", "delete", "--member-id", member_id, "--force")
    assert fleet.pane_exists(stranger)
    assert fleet.active_ids() == {fleet.director_id}
    # the old Director's pane id is a stranger's too: no member can be split from it
    fleet.cli(*fleet.f, "member", "create", "--name", "X", "--description", "d", "--", "hi", code=1)
    assert fleet.panes() == [fleet.director_pane, stranger]
    fleet.cli(*fleet.f, "fleet", "tick", code=1)
    assert read_log(stranger_log) == []


@pytest.mark.parametrize("whose", ["other-fleet", "nobody"])
def test_member_list_with_another_fleets_director_is_not_found(rig, whose):
    mine = json.loads(rig.cli("--json", "fleet", "create", env=rig.base_env).stdout)
    other = json.loads(rig.cli("--json", "fleet", "create", env=rig.base_env).stdout)["fleet_id"]
    agent = mine["director"]["agent_id"] if whose == "other-fleet" else NOWHERE
    p = rig.cli("--fleet-id", other, "member", "list", "--agent-id", agent, env=rig.base_env, code=None)
    assert p.returncode == 1, p.stdout
    assert "not found" in p.stderr


TRICKY_PROMPTS = [
    pytest.param("Finish with a semicolon;", id="final-semicolon"),
    pytest.param("ends in backslash-semicolon \\;", id="final-backslash-semicolon"),
    pytest.param("-dash --flag; #{pane_id} $HOME `id` $(id) ~ * 'q' \"dq\"\nline 2\n\n\tx ;;",
                 id="formats-shell-multiline"),
]


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_the_prompt_reaches_the_backend_verbatim(fleet, prompt):
    member_id = fleet.create_member("Alice", "--", prompt, wait_ready=False)
    pane = fleet.pane_of(member_id)
    # the stand-in is `exec`ed by the `claude` script: wait until the pane's pid is python
    wait_for(lambda: "cafleet.standin" in _cmdline(fleet.pane_pid(pane)), "the stand-in to start")
    argv = _cmdline(fleet.pane_pid(pane))
    assert argv[argv.index("--") + 1].endswith(members.PROMPT_HEADING + prompt)
    assert argv[-1].endswith(prompt)


HOOK = Path(__file__).resolve().parents[1] / "hooks" / "cafleet-hook"


def test_a_session_start_hook_at_once_knows_the_new_member(fleet, tmp_path):
    """A backend whose SessionStart hook fires as soon as it starts (a fast Claude Code start)."""
    out = tmp_path / "hook.out"
    hook_input = json.dumps({"session_id": "s1", "hook_event_name": "SessionStart", "source": "startup",
                             "cwd": str(tmp_path)})
    quick = tmp_path / "quick-bin"
    quick.mkdir()
    (quick / "claude").write_text(
        f"#!/bin/sh\nprintf '%s' {shlex.quote(hook_input)} | {shlex.quote(sys.executable)} -I -S "
        f"{shlex.quote(str(HOOK))} SessionStart > {shlex.quote(str(out))}\necho '' >> {shlex.quote(str(out))}\n"
        f"exec {shlex.quote(sys.executable)} -m cafleet.standin \"$@\"\n")
    (quick / "claude").chmod(0o755)
    env = {**fleet.env, "PATH": f"{quick}{os.pathsep}{fleet.env['PATH']}"}
    member_id = fleet.create_member("Alice", env=env, wait_ready=False)
    text = wait_for(lambda: out.exists() and out.read_text().endswith("\n") and out.read_text(), "the hook's output")
    assert text.strip(), "the SessionStart hook was silent: the member's pane was not yet its placement"
    context = json.loads(text)["hookSpecificOutput"]["additionalContext"]
    assert member_id in context and fleet.fleet_id in context
