"""A claude member's commands outside its own rules: refused, so it asks its Director.

skills/cafleet/reference/director.md ("Spawning", backend table): a claude member has "its own
cafleet commands pre-approved; everything else is refused, so shell needs route through you
(member exec)"; reference/member.md item 4 tells the member to send such a command to the
Director. Here the test plays the Director (a pane running ``cat``, ``cafleet`` run from it),
spawns a real claude member with ``member create``, and sends it a task whose command
(``touch FILE``) is not in its rules.
"""

from __future__ import annotations

import pytest

from claude_env import wait_until
from scenario_helpers import (
    DIALOG_MARK,
    Brain,
    FleetScript,
    MemberBrain,
    broker,
    cafleet,
    cafleet_json,
    diagnostics,
    install_plugin,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def plugin(claude_bin, e2e_env, project_dir, tmp_path):
    return install_plugin(claude_bin, e2e_env, project_dir, tmp_path)


def test_claude_member_refuses_and_routes_an_unapproved_command(plugin, claude_bin, fake_api,
                                                               e2e_tmux, e2e_env, project_dir,
                                                               tmp_path):
    script = FleetScript(Brain("Director"), MemberBrain)
    fake_api.script = script
    sock = e2e_tmux.socket_path
    dpane = e2e_tmux.new_window(["cat"], cwd=project_dir)  # the Director's pane; no model needed
    F, D = cafleet(e2e_env, "fleet", "create", pane=(sock, dpane), cwd=project_dir).stdout.splitlines()[:2]
    M = cafleet(e2e_env, "--fleet-id", F, "member", "create", "--name", "worker", "--description",
                "posture probe", "--coding-agent", "claude", pane=(sock, dpane),
                cwd=project_dir).stdout.splitlines()[0]
    mpane = cafleet_json(e2e_env, "member", "list", fleet_id=F)[0]["pane_id"]
    diag = lambda: diagnostics(e2e_tmux, fake_api, script.brains())  # noqa: E731
    worker = wait_until(lambda: script.members.get("worker"), timeout=40,
                        what="the member's first request", on_fail=diag)
    worker.wait_note("ready-sent", timeout=40, on_fail=diag)
    target = tmp_path / "touched-by-member"
    cafleet(e2e_env, "--fleet-id", F, "message", "send", "--agent-id", D, "--to", M, "--text",
            f"shell-probe: touch {target}", pane=(sock, dpane))

    outcome = wait_until(
        lambda: ("refused" if worker.last("shell-probe") is not None else None)
        or ("prompt" if DIALOG_MARK in e2e_tmux.capture(mpane, history=40) else None),
        timeout=40, what="the member to run the probe or stop at a prompt", on_fail=diag)
    problems = []
    if outcome == "prompt":
        problems.append("the member stopped at a permission prompt in its own pane:\n"
                        + e2e_tmux.capture(mpane, history=40)[-1200:])
    else:
        r = worker.last("shell-probe")
        if not r.is_error:
            problems.append(f"the member ran a command outside its rules: {r.text[:200]!r}")
        wait_until(lambda: any(b.startswith("please run: touch") for b in _inbox_bodies(e2e_env, F, D)),
                   timeout=30, what="the member's request to the Director", on_fail=diag)
    if target.exists():
        problems.append("the command ran")
    cafleet(e2e_env, "--fleet-id", F, "member", "delete", "--member-id", M, "--force")
    assert not problems, "\n".join(problems)


def _inbox_bodies(env, fleet_id, agent_id) -> list[str]:
    br = broker(env)
    try:
        return [t["body"] for t in br.poll(fleet_id, agent_id)]
    finally:
        br.close()
