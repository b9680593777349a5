"""The keystroke gate against the real Claude Code 2.1.332 (issue 9).

1. A claude member sits on a real permission dialog (its first turn runs ``touch FILE``; no
   plugin hook is installed, so Claude Code asks). It gets a message, a ping, an exec, a tick
   (``fleet tick --agent-id`` aimed at its pane) and a graceful delete: every one is held or
   refused, the dialog stays open, and ``touch`` never runs. Once the test (as the user)
   declines, the held preview is delivered by the next ``member list``, exactly once.
2. A claude member killed mid-task (SIGKILL to its pane's process while its turn waits on the
   model): tmux's pane-died hook makes cafleet send the Director a task, and its preview
   reaches the Director's real claude as a user turn.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from claude_env import wait_until
from fakeapi import Reply
from scenario_helpers import DIALOG_MARK, broker, cafleet, cafleet_json, diagnostics, turn_text

pytestmark = pytest.mark.e2e

MEMBER_MARK = "a member of a cafleet team"


def _member_pane(env, fleet_id):
    return cafleet_json(env, "member", "list", fleet_id=fleet_id)[0]["pane_id"]


def test_a_member_on_a_real_permission_dialog_is_never_answered(start_claude, fake_api, e2e_tmux, e2e_env,
                                                                 project_dir, tmp_path):
    marker = tmp_path / "approved-by-nobody"
    seen = []

    def script(req):
        text = turn_text(req)
        seen.append(text)
        if MEMBER_MARK in req.all_text() and not req.latest_tool_results() and "[cafleet] task" not in text:
            return Reply.bash(f"touch {marker}")
        return Reply.say("NOTED")

    fake_api.script = script
    sock = e2e_tmux.socket_path
    dpane = e2e_tmux.new_window(["cat"], cwd=project_dir)  # the Director's pane (no model needed)
    F, D = cafleet(e2e_env, "fleet", "create", pane=(sock, dpane), cwd=project_dir).stdout.splitlines()[:2]
    M = cafleet(e2e_env, "--fleet-id", F, "member", "create", "--name", "waiter", "--description",
                "sits on a dialog", pane=(sock, dpane), cwd=project_dir).stdout.splitlines()[0]
    mpane = _member_pane(e2e_env, F)
    diag = lambda: diagnostics(e2e_tmux, fake_api)  # noqa: E731
    wait_until(lambda: DIALOG_MARK in e2e_tmux.capture(mpane, history=40), timeout=40,
               what="the member's permission dialog", on_fail=diag)
    time.sleep(1.5)  # past the moment a new dialog drops keys
    F_ = ["--fleet-id", F]
    sent = cafleet_json(e2e_env, "message", "send", "--agent-id", D, "--to", M, "--text", "status please",
                        fleet_id=F, pane=(sock, dpane))
    assert sent["push"]["held"] is True and "dialog" in sent["push"]["reason"], sent["push"]
    outcomes = {}
    for name, args in (("ping", ["member", "ping", "--member-id", M]),
                       ("exec", ["member", "exec", "--member-id", M, f"touch {marker}"]),
                       ("tick", ["fleet", "tick", "--agent-id", M]),
                       ("delete", ["member", "delete", "--member-id", M, "--timeout", "3"])):
        p = cafleet(e2e_env, *F_, *args, check=False, pane=(sock, dpane))
        outcomes[name] = (p.returncode, (p.stdout + p.stderr).strip()[:300])
    time.sleep(2)
    problems = []
    if marker.exists():
        problems.append("the dialog was approved: `touch` ran")
    if DIALOG_MARK not in e2e_tmux.capture(mpane, history=40):
        problems.append("the dialog closed")
    for name in ("ping", "exec", "delete"):
        if outcomes[name][0] != 1 or "dialog" not in outcomes[name][1]:
            problems.append(f"{name}: {outcomes[name]}")
    if outcomes["tick"][0] != 0 or "held" not in outcomes["tick"][1]:
        problems.append(f"tick: {outcomes['tick']}")
    row = cafleet_json(e2e_env, "member", "list", fleet_id=F, pane=(sock, dpane))[0]
    if (row["state"], row["held"]) != ("dialog", 1):
        problems.append(f"member list: {row}")
    assert not problems, "\n".join(problems) + "\n\n" + diag()

    # the user declines; the next `member list` delivers the held preview once
    e2e_tmux.send_keys(mpane, "Escape")
    wait_until(lambda: DIALOG_MARK not in e2e_tmux.capture(mpane, history=15), timeout=15,
               what="the dialog to close", on_fail=diag)
    time.sleep(1.0)
    needle = f"[cafleet] task {sent['task_id']}"
    wait_until(lambda: cafleet_json(e2e_env, "member", "list", fleet_id=F, pane=(sock, dpane))[0]["held"] == 0,
               timeout=20, what="the held preview to go in", on_fail=diag)
    wait_until(lambda: any(needle in t for t in seen), timeout=30, what="the preview as a member turn",
               on_fail=diag)
    cafleet(e2e_env, *F_, "member", "list", pane=(sock, dpane))
    time.sleep(2)
    assert sum(needle in t for t in seen) == 1, [t[:120] for t in seen if needle in t]
    assert not marker.exists()
    cafleet(e2e_env, *F_, "member", "delete", "--member-id", M, "--force", pane=(sock, dpane))


def test_a_killed_member_reaches_the_director_as_a_user_turn(start_claude, fake_api, e2e_tmux, e2e_env,
                                                             project_dir):
    director_turns = []

    def script(req):
        text = turn_text(req)
        if MEMBER_MARK in req.all_text():
            time.sleep(20)  # the member's turn waits on the model; it is killed meanwhile
            return Reply.say("too late")
        director_turns.append(text)
        return Reply.say("NOTED")

    fake_api.script = script
    sock = e2e_tmux.socket_path
    director = start_claude()
    F, D = cafleet(e2e_env, "fleet", "create", pane=(sock, director.pane), cwd=project_dir).stdout.splitlines()[:2]
    M = cafleet(e2e_env, "--fleet-id", F, "member", "create", "--name", "doomed", "--description",
                "gets killed", pane=(sock, director.pane), cwd=project_dir).stdout.splitlines()[0]
    mpane = _member_pane(e2e_env, F)

    def diag():
        with broker(e2e_env) as b:
            rows = b.conn.execute("SELECT body, held_reason FROM tasks WHERE sender_agent_id = ?", (M,)).fetchall()
            placement = b.conn.execute("SELECT exited_at, exit_status FROM placements WHERE agent_id = ?",
                                       (M,)).fetchall()
        dead = e2e_tmux.tmux("display-message", "-p", "-t", mpane, "#{pane_dead}:#{pane_dead_status}", check=False)
        return f"tasks from the member: {rows}\nplacement: {placement}\npane dead: {dead}\n" + diagnostics(
            e2e_tmux, fake_api)

    wait_until(lambda: "esc to interrupt" in e2e_tmux.capture(mpane, history=15), timeout=40,
               what="the member mid-turn", on_fail=diag)
    pid = int(e2e_tmux.tmux("display-message", "-p", "-t", mpane, "#{pane_pid}").strip())
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    try:
        wait_until(lambda: any("member doomed exited" in t for t in director_turns), timeout=20,
                   what="the exit notice as a Director turn", on_fail=diag)
        how = "pane-died hook"
    except AssertionError as e:
        # tmux 3.3a now and then never fires pane-died under load (docs/ARCHITECTURE.md);
        # the Director's next `member list` (every tick) reports the exit instead
        with broker(e2e_env) as b:
            assert b.conn.execute("SELECT exited_at FROM placements WHERE agent_id = ?", (M,)).fetchone() == (None,), e
        cafleet(e2e_env, "--fleet-id", F, "member", "list", pane=(sock, director.pane))
        wait_until(lambda: any("member doomed exited" in t for t in director_turns), timeout=20,
                   what="the exit notice as a Director turn after member list", on_fail=diag)
        how = "member list (the hook did not fire)"
    took = time.monotonic() - t0
    row = cafleet_json(e2e_env, "member", "list", fleet_id=F, pane=(sock, director.pane))[0]
    assert (row["state"], row["pane_status"]) == ("exited", "dead"), row
    print(f"member killed -> notice in the Director's model turn: {took:.2f} s via {how}")
    cafleet(e2e_env, "--fleet-id", F, "member", "delete", "--member-id", M, pane=(sock, director.pane))


def test_text_typed_before_a_real_dialog_opened_gets_no_enter_and_is_taken_back(start_claude, fake_api, e2e_tmux,
                                                                                e2e_env, project_dir, tmp_path):
    """The race of issue 9 item 3 on the real client: a line is typed while Claude Code
    2.1.332 works; its own tool call opens a permission dialog before the Enter. The gate's
    re-check sees the dialog, sends no Enter, and records the draft (Claude keeps it in the
    input box under the dialog). After the user declines, the next keystroke through the gate
    first takes the draft back (Backspaces), so the model gets the new line alone."""
    from cafleet import gate
    from cafleet.broker import Broker

    marker = tmp_path / "approved-by-nobody"
    turns = []

    def script(req):
        text = turn_text(req)
        turns.append(text)
        if "SLOW-TOUCH" in text and not req.latest_tool_results():
            time.sleep(2.5)
            return Reply.bash(f"touch {marker}")
        return Reply.say("NOTED")

    fake_api.script = script
    sock = e2e_tmux.socket_path
    claude = start_claude()
    F, D = cafleet(e2e_env, "fleet", "create", pane=(sock, claude.pane), cwd=project_dir).stdout.splitlines()[:2]
    diag = lambda: diagnostics(e2e_tmux, fake_api)  # noqa: E731
    claude.type("SLOW-TOUCH")
    claude.wait_for("esc to interrupt", timeout=20)
    with Broker.open(e2e_env["CAFLEET_DB"]) as b:
        target = gate.Target.of(b.get_agent(F, D))
        first = "[cafleet] task draft-probe from X (x) - poll to read it:\nDRAFT-BODY"
        d = gate.type_line(target, first, broker=b, enter_delay=4.0)  # the dialog opens meanwhile
        assert d.verdict == gate.HELD and d.draft == len(first) and "dialog" in d.reason, (d, diag())
        assert DIALOG_MARK in claude.screen()
        claude.keys("Escape")  # the user declines
        wait_until(lambda: DIALOG_MARK not in claude.screen() and "DRAFT-BODY" in claude.screen(), timeout=15,
                   what="the draft back in the input box", on_fail=diag)
        time.sleep(1.0)
        n = len(turns)
        d = gate.type_line(gate.Target.of(b.get_agent(F, D)), "SECOND-LINE", broker=b)
        assert d.allowed, (d, diag())
        wait_until(lambda: any("SECOND-LINE" in t for t in turns[n:]), timeout=20, what="the second line's turn",
                   on_fail=diag)
    got = [t for t in turns[n:] if "SECOND-LINE" in t]
    assert "DRAFT-BODY" not in got[0] and "draft-probe" not in got[0], got[0][:300]
    assert not any("DRAFT-BODY" in t for t in turns) and not marker.exists()
