"""`member exec` waits for the command to finish, in the real Claude Code 2.1.332 and codex
0.171.0 (issue 12: the `member ping` that follows an exec used to land in the middle of the
command's output).

The test is the Director: a pane running ``cat``, every ``cafleet`` call made "from" it. Each
member is spawned by ``member create`` and is then sent ``member exec "sleep 3; echo …"``:
the exec must return only after the output is on the member's screen and the member is idle
again, so the ``member ping`` right after it is typed into an idle agent, below the output.

- claude: ``! cmd`` runs the command, then starts a model turn whose user text is
  ``<bash-input>…`` plus the output; exec returns after that turn ended (the fake API's
  reply is drawn), and the ping then arrives as a turn of its own.
- codex, offline: a model provider that points at a closed port (``~/.codex/config.toml``),
  so its first turn (the spawn prompt) hangs in "Reconnecting… waiting for network"; the test
  interrupts it with Escape, as a user would. ``! cmd`` needs no model: codex shows
  ``• Running cmd`` / ``Working (… esc to interrupt)``, then ``• You ran cmd``, the output
  and ``Worked for Ns``, and starts no turn.
"""

from __future__ import annotations

import time

import pytest

from claude_env import find_tool, wait_until
from fakeapi import Reply
from scenario_helpers import MEMBER_RE, cafleet, cafleet_json, diagnostics, first_user_text, turn_text

pytestmark = pytest.mark.e2e

CMD = "sleep 3; echo EXEC-DONE-$((40+2))"


def _director(e2e_tmux, e2e_env, project_dir):
    sock = e2e_tmux.socket_path
    pane = e2e_tmux.new_window(["cat"], cwd=project_dir)
    director = (sock, pane)
    F, D = cafleet(e2e_env, "fleet", "create", pane=director, cwd=project_dir).stdout.splitlines()[:2]
    return director, F, D


def _create(e2e_env, director, F, project_dir, backend):
    out = cafleet_json(e2e_env, "member", "create", "--name", f"{backend}-m", "--description", "exec probe",
                       "--coding-agent", backend, "--", "Wait for tasks.", fleet_id=F, pane=director,
                       cwd=project_dir)
    return out["agent_id"], out["placement"]["pane_id"]


def _exec_then_ping(e2e_env, e2e_tmux, director, F, M, pane):
    t0 = time.monotonic()
    out = cafleet(e2e_env, "--fleet-id", F, "member", "exec", "--member-id", M, CMD, pane=director,
                  timeout=120).stdout
    took = time.monotonic() - t0
    screen = e2e_tmux.capture(pane, history=0)
    assert "finished after" in out and took >= 3, (out, took)
    assert "EXEC-DONE-42" in screen and "esc to interrupt" not in screen, screen
    cafleet(e2e_env, "--fleet-id", F, "member", "ping", "--member-id", M, pane=director)
    poll = f"message poll --agent-id {M}"
    joined = wait_until(lambda: (lambda c: c if poll in c.split("EXEC-DONE-42")[-1] else None)(
        e2e_tmux.capture(pane)), timeout=20, what="the ping below the exec output",
        on_fail=lambda: diagnostics(e2e_tmux))
    return out, took, joined


def test_exec_waits_for_the_command_in_real_claude(claude_bin, e2e_tmux, fake_api, e2e_env, project_dir):
    turns = []

    def script(req):
        if not MEMBER_RE.search(first_user_text(req)):
            return "ok"
        text = turn_text(req)
        turns.append(text)
        if "bash-input" in text:
            time.sleep(1.5)  # the model turn after the command takes a while
            return Reply.say("SAW-THE-OUTPUT")
        return Reply.say("Waiting.")

    fake_api.script = script
    director, F, D = _director(e2e_tmux, e2e_env, project_dir)
    M, pane = _create(e2e_env, director, F, project_dir, "claude")
    wait_until(lambda: turns, timeout=30, what="the member's first turn", on_fail=lambda: diagnostics(e2e_tmux))
    wait_until(lambda: (lambda s: "? for shortcuts" in s)(e2e_tmux.capture(pane, history=0)), timeout=20,
               what="the member to be idle", on_fail=lambda: diagnostics(e2e_tmux))
    out, took, _ = _exec_then_ping(e2e_env, e2e_tmux, director, F, M, pane)
    # the command's model turn was over when exec returned: its reply is on screen
    assert "SAW-THE-OUTPUT" in e2e_tmux.capture(pane), diagnostics(e2e_tmux)
    after = lambda: turns[next(i for i, t in enumerate(turns) if "bash-input" in t) + 1:]  # noqa: E731
    wait_until(lambda: any(f"message poll --agent-id {M}" in t for t in after()), timeout=20,
               what="the ping's turn", on_fail=lambda: diagnostics(e2e_tmux, fake_api))
    [ping_turn] = after()
    assert "EXEC-DONE" not in ping_turn and "bash-input" not in ping_turn, ping_turn
    print(f"\nclaude: exec took {took:.1f} s: {out.strip()}")


def test_exec_waits_for_the_command_in_real_codex(claude_bin, e2e_tmux, fake_api, e2e_env, project_dir,
                                                  claude_home):
    if find_tool("codex") is None:
        pytest.skip("codex is not installed (tests/e2e/install-tools.sh)")
    codex_home = claude_home.path / ".codex"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model_provider = "offline"\n'
        "[model_providers.offline]\n"
        'name = "offline"\nbase_url = "http://127.0.0.1:9/v1"\nenv_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\nrequest_max_retries = 0\nstream_max_retries = 0\n'
        f'[projects."{project_dir.resolve()}"]\ntrust_level = "trusted"\n')
    e2e_tmux.tmux("set-environment", "-g", "OPENAI_API_KEY", "sk-offline-dummy")
    director, F, D = _director(e2e_tmux, e2e_env, project_dir)
    M, pane = _create(e2e_env, director, F, project_dir, "codex")
    wait_until(lambda: "esc to interrupt" in e2e_tmux.capture(pane, history=0), timeout=40,
               what="codex's first turn to hang on the network", on_fail=lambda: diagnostics(e2e_tmux))
    e2e_tmux.send_keys(pane, "Escape")
    wait_until(lambda: "esc to interrupt" not in e2e_tmux.capture(pane, history=0), timeout=20,
               what="codex to be idle", on_fail=lambda: diagnostics(e2e_tmux))
    out, took, joined = _exec_then_ping(e2e_env, e2e_tmux, director, F, M, pane)
    assert "You ran sleep 3" in joined, joined
    print(f"\ncodex: exec took {took:.1f} s: {out.strip()}")
