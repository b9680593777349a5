"""Scenario: a codex Director supervising with `cafleet mcp` (`wait_for_news`), real turns.

The user's way: `~/.codex/config.toml` holds their model provider (here the suite's scripted
server) and the block `cafleet mcp config` prints; they start codex in a tmux pane with the
options that block names (DB directory writable, Unix sockets (tmux) reachable from its
sandbox; `--sandbox=workspace-write --ask-for-approval=on-request`), and give it the job.
The codex Director (scripted model, tests/e2e/openai_brains.py) then runs literal `cafleet`
commands through its shell tool: `fleet create --coding-agent codex`, `member create` of a
claude member; it calls `wait_for_news` and is woken by the member's `ready`, acks it, sends
the task, calls `wait_for_news` again, is woken by the report and acks it. The wake-up
latency (the report's `created_at` → the tool result reaching the model, codex's own
round trip included) is printed.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest

import claude_env as ce
from claude_env import find_tool, wait_until
from openai_brains import ChainBrain, Router, ShellMember
from openai_clients import CLIENT_ENV, write_codex_config, write_login_profile
from scenario_helpers import UUID_RE, broker, cafleet, diagnostics

pytestmark = pytest.mark.e2e

JOB = "Run a cafleet team: one claude member writes the summary."
TASK_RE = re.compile(r"^- task (" + UUID_RE + r") from (\S+) \((" + UUID_RE + r")\): (.*)$", re.M)


@pytest.fixture
def codex_bin():
    found = find_tool("codex")
    if found is None:
        pytest.skip("codex not installed (tests/e2e/install-tools.sh)")
    return found


@pytest.fixture
def e2e_env(tmp_path, claude_home, fake_api, e2e_path_prepend, codex_bin):
    env = ce.claude_env(claude_home, fake_api.url, path_prepend=e2e_path_prepend,
                        extra={"CAFLEET_DB": str(tmp_path / "data" / "cafleet.db"), **CLIENT_ENV})
    mcp_block = cafleet(env, "mcp", "config").stdout  # what the user adds to config.toml
    write_codex_config(claude_home.path, fake_api.url, extra=mcp_block)
    # a user's login PATH has cafleet and claude (codex runs commands in `bash -lc`)
    write_login_profile(claude_home.path, [str(ce.tools_dir()), *ce.python_bin_dirs()])
    return env


class CodexDirector(ChainBrain):
    """The Director's model: fleet create, member create, then wait → ack → dispatch loop."""

    def __init__(self):
        super().__init__("responses")
        self.fleet_id = self.director_id = self.member_id = None
        self.woken: list[tuple[float, str]] = []  # (wall time the digest reached the model, text)

    def on_turn(self, req):
        if JOB in req.latest_user_text():
            return self.run_team()
        return None

    def wait(self):
        out = yield self.tool("wait_for_news", fleet_id=self.fleet_id, director_id=self.director_id,
                              timeout_s=120)
        self.woken.append((time.time(), out))
        return out

    def run_team(self):
        out = yield self.sh("cafleet fleet create --coding-agent codex")
        self.fleet_id, self.director_id = out.strip().splitlines()[:2]
        self.note("fleet", out)
        f = f"cafleet --fleet-id {self.fleet_id}"
        out = yield self.sh(f'{f} member create --name writer --description "writes the summary" '
                            f'--coding-agent claude')
        self.member_id = out.strip().splitlines()[0]
        self.note("member", out)
        handled = 0
        while handled < 2:
            digest = yield from self.wait()
            tasks = TASK_RE.findall(digest)
            for task_id, _name, sender, body in tasks:
                assert f"{f} message ack --agent-id {self.director_id} --task-id {task_id}" in digest
                out = yield self.sh(f"{f} message ack --agent-id {self.director_id} --task-id {task_id}")
                self.note(f"acked:{body}", out)
                handled += 1
                if body == "ready":
                    out = yield self.sh(f'{f} message send --agent-id {self.director_id} --to '
                                        f'{self.member_id} --text "write the summary"')
                    self.note("dispatched", out)
        return "The team's work is in; all reports acked."


@pytest.fixture
def start_options(e2e_env) -> list[str]:
    """The codex options `cafleet mcp config` names for a Director (`--add-dir=<DB dir>`,
    `-c sandbox_workspace_write.network_access=true`)."""
    argv = json.loads(cafleet(e2e_env, "--json", "mcp", "config").stdout)["codex_argv"]
    assert argv[0] == "codex" and argv[1].startswith("--add-dir="), argv
    return argv[1:4]


def created_at(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_codex_director_wakes_on_reports_through_wait_for_news(fake_api, e2e_tmux, e2e_env,
                                                               codex_bin, claude_bin, project_dir,
                                                               tmp_path, start_options):
    director = CodexDirector()
    router = Router(make_member=ShellMember, director=director)
    fake_api.script = router
    (tmp_path / "data").mkdir(exist_ok=True)
    assert start_options[0] == f"--add-dir={tmp_path / 'data'}", start_options
    argv = [codex_bin, *start_options, "--no-daemon", "--no-alt-screen", "--sandbox=workspace-write",
            "--ask-for-approval=on-request", "--", JOB]
    dpane = e2e_tmux.new_window(argv, cwd=project_dir)
    diag = lambda: diagnostics(e2e_tmux, fake_api) + f"\nDirector calls: {director.calls[-8:]}"  # noqa: E731

    def note(key: str, timeout: float):
        """The Director brain's note `key`; on a timeout, the panes and the last requests too."""
        try:
            return director.wait_note(key, timeout=timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{diag()}") from None

    fleet_out = note("fleet", timeout=60)
    F, D = director.fleet_id, director.director_id
    assert re.fullmatch(UUID_RE, F) and re.fullmatch(UUID_RE, D), fleet_out
    br = broker(e2e_env)
    try:
        placement = br.get_agent(F, D)["placement"]
        assert placement and placement["pane_id"] == dpane, (placement, dpane)  # its own pane
        assert br.get_agent(F, D)["coding_agent"] == "codex"
    finally:
        br.close()
    member_out = note("member", timeout=60)
    M = director.member_id
    assert re.fullmatch(UUID_RE, M), member_out
    worker = router.member(M, timeout=60)
    assert worker.wire == "anthropic"
    note("acked:ready", timeout=90)
    note("dispatched", timeout=30)
    note("acked:done: write the summary", timeout=90)
    wait_until(lambda: "all reports acked" in e2e_tmux.capture(dpane), timeout=30,
               what="the Director's closing text", on_fail=diag)

    br = broker(e2e_env)
    try:
        assert br.inbox(F, D) == []  # both reports acked by the codex Director
    finally:
        br.close()
    # wake-up latency: report created -> digest delivered to the model (codex round trip included)
    lat = []
    for wall, text in director.woken:
        for task_id, *_ in TASK_RE.findall(text):
            b2 = broker(e2e_env)
            try:
                t = b2.show_task(F, D, task_id)
            finally:
                b2.close()
            lat.append(wall - created_at(t["created_at"]))
    assert len(lat) == 2, director.woken
    print(f"\nwake-up latency (member send -> wait_for_news result at the model): "
          f"{', '.join(f'{x:.2f}s' for x in lat)}")
    screen = e2e_tmux.capture(dpane, history=400)
    assert "wait_for_news" in screen, screen[-2000:]
    for mark in ("Would you like to run", "Allow the cafleet MCP server", "Approve"):
        assert mark not in screen, screen[-2000:]
    cafleet(e2e_env, "--fleet-id", F, "member", "delete", "--member-id", M, "--force",
            pane=(e2e_tmux.socket_path, dpane))
