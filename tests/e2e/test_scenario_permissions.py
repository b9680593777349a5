"""Scenario 2: the rules ``cafleet permissions --write`` generates, in the real client.

A Director pane gets a fleet (``fleet create`` from that pane), its rules are written into the
project's ``.claude/settings.local.json`` by ``cafleet --fleet-id F permissions --agent-id D
--write``, then the real claude starts there with ``--permission-mode dontAsk`` and the
plugin installed. The fake model runs one Bash command per case with the real ``cafleet``:
every generated ``allow`` rule's command runs without a prompt; another fleet's id, ``$VAR``
ids, ``&&`` chains, other flags, someone else's id, and every ``ask`` command are refused
(under dontAsk an ask is a denial; tests/e2e/test_scenario_team.py shows the prompts in
manual mode). Each refusal is checked by its effect in the broker or the panes too.

The member is a stand-in (a ``claude`` on PATH that runs ``cat``) so ``member capture`` and
``member ping`` have a live pane and the pane shows exactly what was typed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from scenario_helpers import (
    DIALOG_MARK,
    Brain,
    FleetScript,
    Phases,
    bash,
    broker,
    cafleet,
    cafleet_json,
    diagnostics,
    install_plugin,
    turn_text,
)

pytestmark = pytest.mark.e2e

DONTASK = "don't ask mode"
HOOK = "PreToolUse:Bash hook error"


@pytest.fixture
def plugin(claude_bin, e2e_env, project_dir, tmp_path):
    return install_plugin(claude_bin, e2e_env, project_dir, tmp_path)


@dataclass
class Case:
    command: str | Callable[[dict], str]
    allowed: bool
    expect: str | None = None  # text the output must contain (allowed) / the refusal (denied)
    cmd: str = ""
    is_error: bool = False
    text: str = ""

    @property
    def ran(self) -> bool:
        return not (DONTASK in self.text or self.text.startswith(HOOK))


class CaseRunner(Brain):
    """On ``RUN-CASES``: one Bash call per case, in order; ``ctx`` feeds later commands."""

    def __init__(self, cases: list[Case], ctx: dict):
        super().__init__("Director")
        self.cases, self.ctx = cases, ctx

    def on_turn(self, req):
        text = turn_text(req)
        if "RUN-CASES" in text:
            return self.run_all()
        if "PROBE " in text:
            return self.probe(text.split("PROBE ", 1)[1].strip())
        return None

    def probe(self, command):
        r = yield bash(command, description="probe")
        self.note("probe", r)
        return "PROBED"

    def run_all(self):
        for i, case in enumerate(self.cases):
            case.cmd = case.command(self.ctx) if callable(case.command) else case.command
            r = yield bash(case.cmd, description=f"case {i + 1}")
            case.is_error, case.text = r.is_error, r.text
            if case.cmd.startswith("cafleet --fleet-id") and "message send" in case.cmd and case.ran:
                self.ctx["sent_task"] = r.text.strip().splitlines()[0]
        self.note("done")
        return "ALL-CASES-DONE"


def test_generated_rules_in_dontask_mode(plugin, start_claude, fake_api, e2e_tmux, e2e_env,
                                         project_dir, tmp_path):
    phases = Phases(lambda: diagnostics(e2e_tmux, fake_api, []))
    sock = e2e_tmux.socket_path
    runner = CaseRunner([], {})
    fake_api.script = FleetScript(runner, lambda name, req: Brain(name))
    with phases("2 claude (dontAsk), fleet, rules, stand-in member"):
        claude = start_claude("--permission-mode", "dontAsk")
        dpane = claude.pane
        # fleet create "from" the claude pane, as the Director's own Bash call would
        out = cafleet(e2e_env, "fleet", "create", "--coding-agent", "claude", pane=(sock, dpane),
                      cwd=project_dir).stdout.splitlines()
        F, D = out[0], out[1]
        other = cafleet(e2e_env, "fleet", "create", "--name", "other").stdout.splitlines()
        F2, D2 = other[0], other[1]
        br = broker(e2e_env)
        try:
            d2_seen = br.get_agent(F2, D2)["last_seen"]
        finally:
            br.close()
        wrote = cafleet_json(e2e_env, "permissions", "--agent-id", D, "--write", fleet_id=F,
                             cwd=project_dir)
        settings = json.loads((project_dir / ".claude" / "settings.local.json").read_text())
        allow, ask = settings["permissions"]["allow"], settings["permissions"]["ask"]
        assert allow == wrote["permissions"]["allow"] and ask == wrote["permissions"]["ask"]
        stub = tmp_path / "stubbin"
        stub.mkdir()
        (stub / "claude").write_text("#!/bin/sh\nexec cat\n")
        (stub / "claude").chmod(0o755)
        M = cafleet(e2e_env, "--fleet-id", F, "member", "create", "--name", "standin", "--description", "stand-in",
                    "--coding-agent", "claude", pane=(sock, dpane), cwd=project_dir,
                    extra_env={"PATH": f"{stub}:{e2e_env['PATH']}"}).stdout.splitlines()[0]
        mpane = cafleet_json(e2e_env, "member", "list", fleet_id=F)[0]["pane_id"]
        br = broker(e2e_env)
        try:
            T1 = br.send(F, M, D, "hello director")["task_id"]  # no push: nothing typed yet
        finally:
            br.close()
        pwned = tmp_path / "pwned"
        base = f"cafleet --fleet-id {F}"
        cases = [
            # ---- every generated allow rule, in the skills' literal forms
            Case("cafleet doctor", True, f"tmux pane:    {dpane}"),
            Case("cafleet fleet list", True, F2),
            Case(f"{base} member list", True, M),
            Case(f"{base} --json member list", True, f'"agent_id": "{M}"'),
            Case(f"{base} message poll --agent-id {D}", True, "hello director"),
            Case(f"{base} --json message poll --agent-id {D}", True, f'"task_id": "{T1}"'),
            Case(f"{base} message show --agent-id {D} --task-id {T1}", True, "hello director"),
            Case(f"{base} message ack --agent-id {D} --task-id {T1}", True, f"acked {T1}"),
            Case(f'{base} message send --agent-id {D} --to {M} --text "hello member"', True,
                 f"notified pane {mpane}"),
            Case(lambda c: f"{base} message cancel --agent-id {D} --task-id {c['sent_task']}", True,
                 "canceled"),
            Case(f"{base} member capture --member-id {M}", True, "hello member"),
            Case(f"{base} member capture --member-id {M} --lines 5", True, None),
            Case(f"{base} member capture --member-id {M} --changed", True, None),
            Case(f"{base} member ping --member-id {M}", True, f"typed '{base} message poll"),
            # ---- refused: other fleet, variables, chains, other forms, other ids
            Case(f"cafleet --fleet-id {F2} message poll --agent-id {D2}", False, DONTASK),
            Case(f"cafleet --fleet-id {F2} member list", False, DONTASK),
            Case(f"{base} message poll --agent-id $CAFLEET_AGENT_ID", False, HOOK),
            Case(f"{base} message ack --agent-id {D} --task-id {T1} && touch {pwned}", False, DONTASK),
            Case(f"{base} message poll --agent-id {D} --limit 5", False, DONTASK),
            Case(f"CAFLEET_DB={tmp_path}/other.db {base} message poll --agent-id {D}", False, DONTASK),
            Case(f'{base} message send --agent-id {M} --to {D} --text "spoofed"', False, DONTASK),
            # ---- the ask rules: refused under dontAsk
            Case(f'{base} member exec --member-id {M} "echo EXEC-RAN"', False, DONTASK),
            Case(f"{base} member send-input --member-id {M} --choice 1", False, DONTASK),
            Case(f"{base} member delete --member-id {M}", False, DONTASK),
            Case(f"{base} member delete --member-id {M} --force", False, DONTASK),
            Case(f"cafleet fleet delete {F}", False, DONTASK),
            Case(f"cafleet fleet delete {F} --force", False, DONTASK),
            Case(f"{base} permissions --agent-id {D} --write", False, DONTASK),
            # the hook answers first: no loop recorded for this Director
            Case(f'{base} member create --name x --description "y" --coding-agent claude -- "z"',
                 False, HOOK),
        ]

    runner.cases = cases
    phases.diag = lambda: diagnostics(e2e_tmux, fake_api, [runner]) + "\n" + "\n".join(
        f"{'RAN ' if c.ran else 'DENY'} {c.cmd!r} -> {c.text[:100]!r}" for c in cases)

    with phases("2 the rules are live (settings.local.json is re-read)"):
        probe = f"{base} message poll --agent-id {D}"
        deadline = time.monotonic() + 20
        while True:
            n = len(runner.notes.get("probe", []))
            claude.type(f"PROBE {probe}")
            r = runner.wait_note("probe", count=n + 1, timeout=20, on_fail=phases.diag)
            if not r.is_error:
                break
            assert DONTASK in r.text and time.monotonic() < deadline, r.text
            time.sleep(1)

    with phases("2 claude --permission-mode dontAsk runs every case"):
        claude.type("RUN-CASES")
        runner.wait_note("done", timeout=120, on_fail=phases.diag)
        claude.wait_for("ALL-CASES-DONE", timeout=20)
        assert DIALOG_MARK not in claude.capture()

    with phases("2 outcomes and their effects"):
        problems = []
        for c in cases:
            if c.ran != c.allowed:
                problems.append(f"{'ran' if c.ran else 'refused'} (expected "
                                f"{'run' if c.allowed else 'refusal'}): {c.cmd!r} -> {c.text[:160]!r}")
            elif c.allowed and c.is_error:
                problems.append(f"allowed but failed: {c.cmd!r} -> {c.text[:200]!r}")
            elif c.expect and c.expect not in c.text:
                problems.append(f"{c.cmd!r}: {c.expect!r} not in {c.text[:200]!r}")
        assert not problems, "\n".join(problems)
        # every generated rule was exercised: allow rules by a command that ran, ask rules by
        # one that was refused
        from cafleet.permissions import matches

        for rule in allow:
            assert any(c.allowed and matches(rule, c.cmd) for c in cases), f"untested {rule}"
        for rule in ask:
            assert any(not c.allowed and matches(rule, c.cmd) for c in cases), f"untested {rule}"
        # refused commands left no trace
        assert not pwned.exists()
        br = broker(e2e_env)
        try:
            assert br.get_agent(F2, D2)["last_seen"] == d2_seen  # the other fleet was never polled
            assert br.get_agent(F, M)["status"] == "active"
            assert br.get_fleet(F)["deleted_at"] is None
            assert [a["name"] for a in br.list_agents(F)] == ["Director", "standin"]
        finally:
            br.close()
        member_screen = e2e_tmux.capture(mpane)
        assert "EXEC-RAN" not in member_screen and "spoofed" not in member_screen
        # the allowed ones did act: the preview and the ping reached the member's pane
        assert "[cafleet] task" in member_screen and "hello member" in member_screen
        assert f"{base} message poll --agent-id {M}" in member_screen
        print("\nscenario wall times:\n" + phases.report())
        print("\n".join(f"{'RAN ' if c.ran else 'DENY'} {c.cmd[:110]}" for c in cases))
    cafleet(e2e_env, "fleet", "delete", F, "--force")
