"""A message preview must not answer a dialog that is open in the recipient's pane.

(Found by this test: the preview used to be typed blindly, and its Enter approved the
pending command. `cafleet.members.push_preview` now looks at the visible screen first.)

``message send`` pushes ``[cafleet] task … — poll to read it:`` + body and then presses
Enter (``cafleet.delivery.push_preview`` → ``gate.type_line``). In Claude Code 2.1.330 and 2.1.332 a
permission dialog ignores the typed characters but takes the Enter as "1. Yes" (the focused
option), and an AskUserQuestion frame takes it as option 1; the preview text itself is lost
(only the Stop hook's reminder later tells the agent to poll). So any member's message to its
Director approves whatever command the Director is waiting on the user for, and a Director's
message (a tick's "Report your progress now", or any dispatch) answers a member's open
question for the user. ``member ping`` and ``member exec`` type + Enter the same way.

Checked here with the real claude (plugin installed, manual mode) as the recipient: a
command waiting at its permission prompt (``touch FILE``, so running it leaves a trace) and
an open 3-option AskUserQuestion frame, each hit by one ``message send``: the send stores the
task and holds the preview back ("no pane notified (… dialog …)"), and the dialog stays open.
"""

from __future__ import annotations

import time

import pytest

from claude_env import wait_until
from fakeapi import Reply
from scenario_helpers import (
    DIALOG_MARK,
    cafleet,
    diagnostics,
    install_plugin,
    turn_text,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def plugin(claude_bin, e2e_env, project_dir, tmp_path):
    return install_plugin(claude_bin, e2e_env, project_dir, tmp_path)


def test_preview_does_not_answer_an_open_dialog(plugin, start_claude, fake_api, e2e_tmux, e2e_env,
                                                project_dir, tmp_path):
    marker = tmp_path / "ran-without-the-user"
    results = []

    def script(req):
        text = turn_text(req)  # typed prompts only, not tool results
        if "RUN-TOUCH" in text:
            return Reply.bash(f"touch {marker}")
        if "ASK-COLOUR" in text:
            return Reply.tool("AskUserQuestion", questions=[{
                "question": "Which colour should the report use?", "header": "Colour",
                "multiSelect": False, "options": [{"label": c, "description": c.lower()}
                                                  for c in ("Red", "Green", "Blue")]}])
        if req.latest_tool_results():
            results.append(req.latest_tool_results()[0])
            return Reply.say("CHAIN-DONE")
        return Reply.say("NOTED")

    fake_api.script = script
    sock = e2e_tmux.socket_path
    claude = start_claude()  # manual mode; fleet create "from" its pane records its process
    F, D = cafleet(e2e_env, "fleet", "create", pane=(sock, claude.pane),
                   cwd=project_dir).stdout.splitlines()[:2]
    S = cafleet(e2e_env, "--fleet-id", F, "agent", "register", "--name", "sender",
                "--description", "sends one message").stdout.strip()
    diag = lambda: diagnostics(e2e_tmux, fake_api)  # noqa: E731
    problems = []

    # 1. a command waiting at its permission prompt
    claude.type("RUN-TOUCH")
    claude.wait_for(DIALOG_MARK, timeout=20)
    time.sleep(1.5)  # the dialog has been open for a while: keys are no longer dropped
    sent = cafleet(e2e_env, "--fleet-id", F, "message", "send", "--agent-id", S, "--to", D,
                   "--text", "status update").stdout
    time.sleep(2.5)
    assert "no pane notified" in sent and "dialog" in sent, sent  # the push held back, task stored
    if marker.exists():
        problems.append(f"the preview approved the pending `touch` (send said: {sent.strip()!r})")
    if DIALOG_MARK not in claude.screen():
        problems.append("the permission dialog closed after the preview")
    if DIALOG_MARK in claude.screen():
        claude.keys("Escape")  # the user declines; back to the input box
    wait_until(lambda: DIALOG_MARK not in claude.screen() and claude.input_box_drawn()
               and "esc to interrupt" not in claude.screen(), timeout=20,
               what="the Director to be idle again", on_fail=diag)

    # 2. an open AskUserQuestion frame
    n = len(results)
    claude.type("ASK-COLOUR")
    claude.wait_for("4. Type something", timeout=20)
    time.sleep(1.5)
    sent = cafleet(e2e_env, "--fleet-id", F, "message", "send", "--agent-id", S, "--to", D,
                   "--text", "status update 2").stdout
    time.sleep(2.5)
    assert "no pane notified" in sent and "dialog" in sent, sent
    answered = [r.text for r in results[n:]]
    if answered:
        problems.append(f"the preview answered the question for the user: {answered[0][:160]!r}")
    if "4. Type something" not in claude.screen():
        problems.append("the choice frame closed after the preview")
    assert not problems, "\n".join(problems) + "\n\n" + diag()
