"""codex's and opencode's real screens, seen by the keystroke gate and by `wait_for_news`.

A codex and an opencode member (spawned with ``member create``, cafleet's own posture) are
driven by the scripted model through: a turn that runs a slow command (the *working*
screen), the end of that turn (*idle*), and a command their posture does not pre-approve, so
the client asks (the *approval* / *permission* prompt: codex 0.171.0 with
``sandbox_permissions: "require_escalated"`` under ``--ask-for-approval=on-request``;
opencode 1.18.33 with another agent's ``cafleet`` command, which the ``cafleet`` agent maps to
"ask"). On each screen the gate must do the right thing: push a preview into a working or
idle TUI, refuse to type into the prompt (the task is stored, the screen stays), and the
wake-up watch reports the prompt. With ``CAFLEET_SAVE_SCREENS=1`` the captured screens are
written to tests/screens/<client>-<version>-<what>.txt (how the files there were made);
tests/test_screens_openai.py checks the detector on them without the clients.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from claude_env import wait_until
from openai_brains import ChainBrain, IDS_RE, Router
from openai_clients import clients, e2e_env  # noqa: F401 (fixtures)
from scenario_helpers import PREVIEW_RE, broker, cafleet, cafleet_json, diagnostics

pytestmark = pytest.mark.e2e

SCREENS = Path(__file__).resolve().parents[1] / "screens"
VERSIONS = {"codex": "0.171.0", "opencode": "1.18.33"}
SLOW = "sleep 6; echo slow-done"


class Prober(ChainBrain):
    """First turn: a slow command. A preview saying ``probe``: a command that needs approval."""

    def __init__(self, wire, first):
        super().__init__(wire)
        self.fleet_id, self.agent_id, self.director_id = IDS_RE.search(first.all_text()).groups()
        self.turns = 0

    def on_turn(self, req):
        self.turns += 1
        if self.turns == 1:
            return self.slow()
        if PREVIEW_RE.search(req.latest_turn_text()) and "probe" in req.latest_turn_text():
            return self.probe()
        return "Idle."

    def slow(self):
        self.note("slow-started")
        out = yield self.sh(SLOW)
        self.note("slow-done", out)
        return "Finished the slow step; idle now."

    def probe(self):
        if self.wire == "responses":
            out = yield self.sh("touch /etc/cafleet-approval-probe", sandbox_permissions="require_escalated",
                                justification="Probe: may I write under /etc?")
        else:  # another agent's inbox: outside the member's rules, so opencode asks
            out = yield self.sh(f"cafleet --fleet-id {self.fleet_id} message poll --agent-id "
                                f"{self.director_id}")
        self.note("probe-answered", out)
        return "Probe done."


def save(name: str, screen: str) -> None:
    if os.environ.get("CAFLEET_SAVE_SCREENS"):
        SCREENS.mkdir(exist_ok=True)
        (SCREENS / name).write_text("\n".join(l.rstrip() for l in screen.splitlines()).rstrip() + "\n")


def test_gate_and_wake_on_real_codex_and_opencode_screens(fake_api, e2e_tmux, e2e_env, project_dir):
    from cafleet import screens, wake

    router = Router(make_member=Prober)
    fake_api.script = router
    sock = e2e_tmux.socket_path
    director = (sock, e2e_tmux.new_window(["cat"], cwd=project_dir))
    diag = lambda: diagnostics(e2e_tmux, fake_api)  # noqa: E731
    F, D = cafleet(e2e_env, "fleet", "create", pane=director, cwd=project_dir).stdout.splitlines()[:2]
    members = {}
    for be in ("codex", "opencode"):
        out = cafleet_json(e2e_env, "member", "create", "--name", f"{be}-p", "--description", "probe",
                           "--coding-agent", be, fleet_id=F, pane=director, cwd=project_dir)
        members[be] = (out["agent_id"], out["placement"]["pane_id"])

    def screen(pane):  # the visible screen, what the gate looks at
        return e2e_tmux.tmux("capture-pane", "-p", "-t", pane)

    def send(M, text):
        return cafleet(e2e_env, "--fleet-id", F, "message", "send", "--agent-id", D, "--to", M,
                       "--text", text, pane=director).stdout.splitlines()

    for be, (M, pane) in members.items():
        brain = router.member(M, timeout=60)
        brain.wait_note("slow-started", timeout=60)
        time.sleep(2.5)  # mid-command: the working screen
        working = screen(pane)
        save(f"{be}-{VERSIONS[be]}-working.txt", working)
        assert screens.open_dialog(working) is None, (be, working)
        brain.wait_note("slow-done", timeout=30)
        wait_until(lambda: "idle now" in screen(pane), timeout=20, what=f"{be} idle", on_fail=diag)
        time.sleep(1.0)
        idle = screen(pane)
        save(f"{be}-{VERSIONS[be]}-idle-after-turn.txt", idle)
        assert screens.open_dialog(idle) is None, (be, idle)

    br = broker(e2e_env)
    watch = wake.Watch(br, F, D)
    watch.wait(0)  # take in what is there already
    try:
        for be, (M, pane) in members.items():
            out = send(M, "probe: please run the check")
            assert out[1].startswith("notified"), (be, out)  # typed into the idle TUI
        prompts = {}
        for be, (M, pane) in members.items():
            prompts[be] = wait_until(
                lambda: (lambda s: s if screens.open_dialog(s) else None)(screen(pane)),
                timeout=40, what=f"{be}'s approval prompt to be recognised", on_fail=diag)
            save(f"{be}-{VERSIONS[be]}-{'approval' if be == 'codex' else 'permission'}.txt", prompts[be])
        got = watch.wait(10)
        seen = {e.agent_id for e in got.events if e.kind == "dialog"}
        deadline = time.monotonic() + 10
        while seen != {M for M, _ in members.values()} and time.monotonic() < deadline:
            seen |= {e.agent_id for e in watch.wait(5).events if e.kind == "dialog"}
        assert seen == {M for M, _ in members.values()}, got.text()
        for be, (M, pane) in members.items():
            out = send(M, "second task while the prompt is open")
            assert out[1].startswith("no pane notified") and "dialog" in out[1], (be, out)
            time.sleep(1.0)
            assert screens.open_dialog(screen(pane)), (be, screen(pane))
            assert "probe-answered" not in router.member(M).notes, be  # nobody answered it
        assert not Path("/etc/cafleet-approval-probe").exists()
    finally:
        br.close()
        for be, (M, pane) in members.items():
            cafleet(e2e_env, "--fleet-id", F, "member", "delete", "--member-id", M, "--force",
                    pane=director, check=False)
