"""Issue 11: install by plugin alone. The real Claude Code, a fresh HOME, no `cafleet` anywhere
on PATH; the plugin installed with `claude plugin marketplace add` + `install` from a clean
copy. Everything `cafleet` the Director and its members run is the plugin's `bin/cafleet`
(Claude Code 2.1.332 appends an installed plugin's bin/ to its Bash tool's PATH), whose
first slow-path call builds the private env offline from a local wheel directory
(tests/wheelhouse.py; pip's own PIP_NO_INDEX / PIP_FIND_LINKS reach it through the pane
environment).

The Director (manual permission mode, the test approves its prompts) runs `cafleet doctor`,
`fleet create`, writes its rules, starts its loop, creates a claude member and a codex member.
The claude member's own Bash call `which -a cafleet` must name the plugin's `bin/cafleet` first.
codex takes no model turn offline (signed in with a dummy API key it retries its first turn
and keeps its prompt usable), and the Director's `member exec` runs `! which -a cafleet` there: codex's own shell (0.171.0: a
login-shell PATH unless `shell_environment_policy.set.PATH` is given, which cafleet does) must
find the same file. A message round trip completes (ready -> dispatch -> result -> ack).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import claude_env as ce
import wheelhouse
from claude_env import wait_until
from scenario_helpers import (
    DIALOG_MARK,
    Approver,
    DirectorBrain,
    FleetScript,
    MemberBrain,
    Phases,
    bash,
    broker,
    diagnostics,
    environ_of,
    install_plugin,
    pane_pid,
)

pytestmark = pytest.mark.e2e


def path_without_cafleet(path: str, spare: Path) -> str:
    """`path` minus every directory that holds a `cafleet`; python3 stays reachable (a
    symlink in `spare` when its only directory had to go)."""
    dirs = [d for d in path.split(os.pathsep) if d and not os.path.exists(os.path.join(d, "cafleet"))]
    if shutil.which("python3", path=os.pathsep.join(dirs)) is None:
        spare.mkdir(parents=True, exist_ok=True)
        (spare / "python3").symlink_to(os.path.realpath(sys.executable))
        dirs.append(str(spare))
    return os.pathsep.join(dirs)


@pytest.fixture
def wheels(tmp_path) -> Path:
    return wheelhouse.build(tmp_path / "wheels")


@pytest.fixture
def e2e_env(tmp_path, claude_home, fake_api, wheels) -> dict[str, str]:
    """conftest's e2e_env, with no cafleet on PATH and pip pointed at the local wheels."""
    env = ce.claude_env(claude_home, fake_api.url,
                        extra={"CAFLEET_DB": str(tmp_path / "data" / "cafleet.db"), **wheelhouse.pip_env(wheels)})
    env["PATH"] = path_without_cafleet(env["PATH"], tmp_path / "py")
    assert shutil.which("cafleet", path=env["PATH"]) is None
    return env


@pytest.fixture
def codex_bin():
    path = ce.find_tool("codex")
    if path is None:
        pytest.skip(f"codex {ce.e2e_tools.SKIP_REASON}")
    return path


class Director(DirectorBrain):
    codex_id: str | None = None

    def step_codex(self, req, arg):
        r = yield bash(f'{self.base()} member create --name coder --description "Codex worker" '
                       f'--coding-agent codex -- "Wait for tasks from the Director."')
        self.note("codex-create", r)
        if not r.is_error:
            self.codex_id = r.text.strip().splitlines()[0].strip()
        return "CODEX-DONE"

    def step_codex_which(self, req, arg):
        # `--wait 0`: offline with a dummy key, codex keeps retrying its first model turn
        # ("Reconnecting... waiting for network", esc to interrupt), so waiting for the pane to
        # settle would take exec's whole default wait; this checks PATH, not the wait
        # (tests/e2e/test_exec_wait.py does).
        r = yield bash(f'{self.base()} member exec --member-id {self.codex_id} --wait 0 "which -a cafleet"')
        self.note("codex-exec", r)
        return "CODEX-WHICH-DONE"


class Member(MemberBrain):
    def start(self):
        r = yield bash("which -a cafleet")
        self.note("which", r)
        r = yield self.send("ready")
        self.note("ready-sent", r)
        return "Sent ready; waiting for tasks."


def idle(pane) -> bool:
    screen = pane.screen()
    return pane.input_box_drawn() and "esc to interrupt" not in screen and DIALOG_MARK not in screen


def test_plugin_alone_gives_director_and_members_one_cafleet(claude_bin, codex_bin, e2e_env, project_dir,
                                                             tmp_path, start_claude, fake_api, e2e_tmux):
    plugin = install_plugin(claude_bin, e2e_env, project_dir, tmp_path)
    # a codex signed in with a (dummy) API key starts at its prompt, not at the sign-in screen;
    # it never reaches a model here: `!` shell commands run locally
    login = subprocess.run([codex_bin, "login", "--with-api-key"], input="sk-dummy-e2e\n", env=e2e_env,
                           cwd=project_dir, capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    # its first prompt then fails at once (a closed port, no retries) and the `!` command runs
    (Path(e2e_env["HOME"]) / ".codex" / "config.toml").write_text(
        'model_provider = "fake"\nmodel = "fake-model"\n'
        '[model_providers.fake]\nname = "fake"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'wire_api = "responses"\nrequest_max_retries = 0\nstream_max_retries = 0\n')
    director = Director()
    script = FleetScript(director, Member)
    fake_api.script = script
    dpane = start_claude()
    approver = Approver(e2e_tmux, lambda: [dpane.pane],
                        lambda: [director.member_pane] if director.member_pane else [])
    approver.start()

    def diag() -> str:
        return diagnostics(e2e_tmux, fake_api, script.brains())

    def step(text: str) -> None:
        wait_until(lambda: idle(dpane), timeout=60, what="the Director to be idle", on_fail=diag)
        dpane.type(text)

    ph = Phases(diag)
    try:
        with ph("doctor (first use builds the env), fleet, rules, loop, claude member"):
            step("E2E-STEP:setup")
            wait_until(lambda: director.last("create") is not None, timeout=120,
                       what="the member create after the loop", on_fail=diag)
            doctor = director.last("doctor")
            first = re.search(r"cafleet:\s+(\S+)\s+(\S+)\s+\(plugin: (\S+) at (\S+)\)", doctor.text)
            assert first, doctor.text
            launcher, version, plugin_version, root = first.groups()
            # the Director's `cafleet` is an installed copy of the plugin's bin/cafleet
            assert launcher == os.path.join(root, "bin", "cafleet") and version == plugin_version, doctor.text
            assert Path(root, ".claude-plugin", "plugin.json").read_bytes() == \
                (plugin / ".claude-plugin" / "plugin.json").read_bytes()
            assert "setting up its Python environment" in doctor.text  # first use, in the Bash tool
            # Claude Code 2.1.332 gives CLAUDE_PLUGIN_DATA to hooks, not to the Bash tool: the env
            # goes to ${XDG_DATA_HOME:-~/.local/share}/cafleet/envs of the (temp) HOME
            env_line = re.search(r"cafleet env:\s+(\S+)", doctor.text).group(1)
            print(f"\nthe Director's private env: {env_line}")
            assert env_line.startswith(os.path.join(e2e_env["HOME"], ".local", "share", "cafleet", "envs") + "/")
            assert Path(env_line, "cafleet-env.json").is_file()
            assert "tmux pane" in doctor.text and "warning:" not in doctor.text, doctor.text
            assert not director.last("fleet")[0] is None
            loop_id, cron = director.last("loop")
            assert loop_id and not cron.is_error, cron.text
            created = director.last("create")
            assert not created.is_error, created.text
            F, D = director.last("fleet")
            M, mpane = director.last("member")

        with ph("the claude member's own `which -a cafleet`; ready -> dispatch -> result -> ack"):
            worker = wait_until(lambda: script.members.get("worker"), timeout=60,
                                what="the member's first request", on_fail=diag)
            which = worker.wait_note("which", timeout=60, on_fail=diag)
            assert not which.is_error, which.text
            found = [line.strip() for line in which.text.splitlines() if line.strip().endswith("/cafleet")]
            assert found and found[0] == launcher, which.text
            print(f"\nDirector's cafleet: {launcher}; the claude member's `which -a cafleet`: {found}")
            ready = worker.wait_note("ready-sent", timeout=60, on_fail=diag)
            assert not ready.is_error and "notified pane" in ready.text, ready.text
            director.wait_note("dispatched", timeout=90, on_fail=diag)
            assert director.wait_note("report", timeout=90, on_fail=diag) == "result: 42"
            wait_until(lambda: len(director.notes.get("acked", [])) >= 2, timeout=60,
                       what="the Director to ack ready and the result", on_fail=diag)
            br = broker(e2e_env)
            try:
                assert br.unread_count(D) == 0 and br.unread_count(M) == 0
            finally:
                br.close()

        with ph("codex member: its own `! which -a cafleet` finds the same cafleet"):
            step("E2E-STEP:codex")
            r = director.wait_note("codex-create", timeout=120, on_fail=diag)
            assert not r.is_error, r.text
            cpane = re.search(r"pane (%\d+)", r.text).group(1)
            env = environ_of(pane_pid(e2e_tmux, cpane))
            assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(launcher)
            wait_until(lambda: "Ask Codex to do anything" in e2e_tmux.capture(cpane), timeout=60,
                       what="codex's prompt", on_fail=diag)
            step("E2E-STEP:codex-which")
            ex = director.wait_note("codex-exec", timeout=60, on_fail=diag)
            assert not ex.is_error, ex.text
            ran = wait_until(lambda: (lambda c: c if "You ran which -a cafleet" in c else None)(
                e2e_tmux.capture(cpane)), timeout=90, what="codex to run the command", on_fail=diag)
            out = ran.split("You ran which -a cafleet", 1)[1].splitlines()[1].strip().lstrip("└").strip()
            print(f"the codex member's `! which -a cafleet`: {out}")
            assert out == launcher, ran[-1500:]
            # and the claude member's process got the same first PATH entry
            assert environ_of(pane_pid(e2e_tmux, mpane))["PATH"].split(os.pathsep)[0] == os.path.dirname(launcher)
            assert not approver.unexpected, [p.text for p in approver.unexpected]
    finally:
        approver.stop()
        print("\nscenario wall times:\n" + ph.report())
