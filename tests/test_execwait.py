"""`member exec` waits for its command to finish: the rules over screens (`cafleet.execwait`,
with a scripted clock) and, in real tmux, a stand-in member running a slow command. The real
Claude Code and codex are in tests/e2e/test_exec_wait.py.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_members import fleet, lines_of, one, read_log, rig, wait_for  # noqa: E402,F401  (fixtures)

from cafleet import execwait, screens  # noqa: E402

IDLE = "❯ \n  ⏸ manual mode on · ? for shortcuts"
RUNNING = "! sleep 4\n  ⎿  Running… (2s)\n  ⏸ manual mode on · esc to interrupt"
TURN = "! sleep 4\n  ⎿  done\n✽ Zesting…\n  ⏸ manual mode on · esc to interrupt"
QUEUED = "• Queued follow-up inputs\n  ↳ ! sleep 4\n› Ask Codex to do anything"
DIALOG = "Bash command\n  touch x\nDo you want to proceed?\n❯ 1. Yes\n  2. No\nEsc to cancel"


class Script:
    """Screens over a fake clock: `steps` is [(seconds, screen)], each shown that long."""

    def __init__(self, steps):
        self.steps, self.t = steps, 0.0

    def clock(self):
        return self.t

    def sleep(self, s):
        self.t += s

    def read(self):
        left = self.t
        for seconds, screen in self.steps:
            if left < seconds:
                return screen
            left -= seconds
        return self.steps[-1][1]

    def run(self, timeout=30.0, **kw):
        return execwait.wait_finished(self.read, timeout, clock=self.clock, sleep=self.sleep,
                                      dialog=screens.open_dialog, **kw)


def test_claude_command_then_model_turn_is_one_wait():
    # the command runs 4 s, a 0.3 s idle gap, then the model turn 3 s: finished only after it
    r = Script([(0.2, IDLE), (4, RUNNING), (0.3, IDLE), (3, TURN), (99, IDLE)]).run()
    assert r["finished"] and r["saw_busy"] and 7.5 <= r["waited_s"] <= 7.5 + execwait.SETTLE + 0.2


def test_codex_queued_command_is_waited_for():
    r = Script([(4, QUEUED), (4, RUNNING), (99, IDLE)]).run()
    assert r["finished"] and 8 <= r["waited_s"] <= 8 + execwait.SETTLE + 0.2


def test_a_command_too_quick_to_see_finishes_after_the_grace():
    r = Script([(99, IDLE)]).run()
    assert r["finished"] and not r["saw_busy"]
    assert execwait.START_GRACE <= r["waited_s"] <= execwait.START_GRACE + 0.2


def test_timeout_dialog_and_gone_pane():
    r = Script([(99, RUNNING)]).run(timeout=5)
    assert not r["finished"] and r["saw_busy"] and 5 <= r["waited_s"] < 5.2
    r = Script([(1, RUNNING), (99, DIALOG)]).run()
    assert r["finished"] and r["dialog"] and r["waited_s"] < 1.2
    gone = execwait.wait_finished(lambda: None, 5)
    assert gone["finished"] and gone["pane_gone"]


# ------------------------------------------------------------------------ real tmux, stand-in


def test_exec_returns_after_the_command_and_the_ping_lands_after_its_output(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    t0 = time.monotonic()
    out = fleet.cli(*fleet.f, "member", "exec", "--member-id", member_id, "sleep 2; echo EXEC-FINISHED").stdout
    took = time.monotonic() - t0
    assert took >= 2 and "finished after" in out, (took, out)
    assert "EXEC-FINISHED" in fleet.capture(pane)                  # the output is there already
    mark = len(read_log(fleet.member_log))
    fleet.cli(*fleet.f, "member", "ping", "--member-id", member_id)
    wait_for(lambda: "polled" in fleet.capture(pane).split("EXEC-FINISHED")[-1], "the poll after the output")
    assert lines_of(read_log(fleet.member_log)[mark:]) == [
        f"cafleet --fleet-id {fleet.fleet_id} message poll --agent-id {member_id}"]


def test_exec_still_running_is_exit_2_and_says_not_to_ping(one):
    fleet, member_id = one
    p = fleet.cli(*fleet.f, "member", "exec", "--member-id", member_id, "--wait", "1", "sleep 3", code=2)
    assert "still running after 1 s" in p.stderr and "Do not ping yet" in p.stderr
    t0 = time.monotonic()
    out = fleet.cli(*fleet.f, "member", "exec", "--member-id", member_id, "--wait", "0", "echo x").stdout
    assert time.monotonic() - t0 < 1.5 and "finished" not in out
