"""The inline-preview push of `message send` / `message broadcast`, into real panes.

A stand-in member (cafleet.standin, in cbreak mode like a real TUI; ISIG stays on, so a real
C-c byte would SIGINT it) logs every line it reads. The preview must arrive as exactly two
lines (one `send-keys -l` holding `line1 + LF + line2`, then Enter), carry no control or
bidi character whatever the body holds, and never be needed for delivery: the body
round-trips exactly through the broker. See tests/test_members.py for `Rig`.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_members import UUID_RE, fleet, one, rig, wait_for  # noqa: E402,F401  (fixtures)

from cafleet import keystrokes  # noqa: E402


def _send(fleet, to: str, body: str, env=None) -> tuple[str, str]:
    out = fleet.cli(*fleet.f, "message", "send", "--agent-id", fleet.director_id, "--to", to,
                    "--text", body, env=env).stdout.splitlines()
    assert len(out) == 2 and UUID_RE.match(out[0]), out
    return out[0], out[1]


def _no_unsafe(text: str) -> bool:
    return not any(keystrokes.is_unsafe_char(ch) for ch in text)


def test_send_pushes_a_two_line_preview(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    mark = fleet.mark()
    # a pane left in copy mode (the user scrolled back) would swallow keys: the push leaves it
    fleet.tmux("copy-mode", "-t", pane)
    assert fleet.tmux("display-message", "-p", "-t", pane, "#{pane_in_mode}") == "1"
    # from outside tmux: the placement names the server, so the push still lands
    outside = {k: v for k, v in fleet.env.items() if k not in ("TMUX", "TMUX_PANE")}
    task_id, pushed = _send(fleet, member_id, "Summarise the README\nthen report back", env=outside)
    assert pushed == f"notified pane {pane}"
    reply = wait_for(lambda: fleet.find_task(fleet.director_id, member_id,
                                             "done: Summarise the README\nthen report back"), "the member's reply")
    got = fleet.since(mark)
    assert [e["kind"] for e in got] == ["line", "line"], got
    line1, line2 = got[0]["value"], got[1]["value"]
    assert line1.startswith(f"[cafleet] task {task_id} from Director ({fleet.director_id})")
    assert line2 == "Summarise the README\u23cethen report back"
    assert "preview: [cafleet] task " + task_id in fleet.capture(pane)
    # the member polled and acked it; the Director got the reply (and its own push)
    with fleet.broker() as b:
        assert b.show_task(fleet.fleet_id, fleet.director_id, task_id)["state"] == "completed"
    wait_for(lambda: any(e["value"].startswith(f"[cafleet] task {reply['task_id']} from Alice ({member_id})")
                         for e in fleet.since(0, fleet.director_log)), "the reply's preview at the Director")
    # --json: the task plus the push outcome
    data = json.loads(fleet.cli(*fleet.f, "--json", "message", "send", "--agent-id", fleet.director_id,
                                "--to", member_id, "--text", "hello").stdout)
    assert data["push"] == {"notified": True, "pane_id": fleet.pane_of(member_id), "reason": None, "held": False}
    assert (data["body"], data["state"], data["recipient_agent_id"]) == ("hello", "input_required", member_id)
    wait_for(lambda: fleet.find_task(fleet.director_id, member_id, "done: hello"), "the member's reply")


HOSTILE = (
    "clear\x1b[2J title\x1b]0;pwned\x07 csi\x9b31m interrupt\x03 eof\x04 suspend\x1a "
    "cr\rafter-cr crlf\r\nlf\nbell\x07 bs\x08 del\x7f vt\x0b ff\x0c tab\there nel\x85 "
    "keys as words: C-c Enter Escape C-d; "
    "bidi \u202eevil\u202c iso \u2066x\u2069 marks\u200e\u200f ls\u2028ps\u2029 emoji \U0001f600 end;"
)


@pytest.mark.parametrize("body", [
    pytest.param(HOSTILE, id="controls-escapes-bidi"),
    pytest.param("L" * 10_000 + "\n" + "\x03" * 50 + "M" * 10_000, id="long-lines"),
    pytest.param("\x1b\x03\x07\x7f\u202e", id="nothing-printable"),
])
def test_hostile_bodies_arrive_inert_and_round_trip(one, body):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    pid = fleet.pane_pid(pane)
    mark = fleet.mark()
    task_id, pushed = _send(fleet, member_id, body)
    assert pushed == f"notified pane {pane}"
    # the stand-in survived (no C-c reached it), polled the exact body and echoed it back
    wait_for(lambda: fleet.find_task(fleet.director_id, member_id, "done: " + body), "the member's exact echo")
    assert fleet.pane_exists(pane) and fleet.pane_pid(pane) == pid
    got = fleet.since(mark)
    assert [e["kind"] for e in got] == ["line", "line"], got
    line1, line2 = got[0]["value"], got[1]["value"]
    assert line1.startswith(f"[cafleet] task {task_id} ")
    assert _no_unsafe(line1) and _no_unsafe(line2), (line1, line2)
    assert len(line2) <= keystrokes.PREVIEW_BODY_LIMIT
    # exactly what the keystroke protocol says, nothing lost or added by tmux on the way
    assert (line1, line2) == keystrokes.preview_lines(task_id, "Director", fleet.director_id, body)
    if body == HOSTILE:
        assert "C-c Enter Escape C-d;" in line2
        assert line2.startswith("clear[2J title]0;pwned csi31m interrupt eof suspend cr\u23ceafter-cr crlf\u23celf")
    elif body.startswith("L"):
        assert line2.startswith("L" * 100) and line2.endswith(" chars]")
    else:
        assert line2 == "(empty)"
    with fleet.broker() as b:
        assert b.show_task(fleet.fleet_id, fleet.director_id, task_id)["body"] == body
    shown = json.loads(fleet.cli(*fleet.f, "--json", "message", "show", "--agent-id", fleet.director_id,
                                 "--task-id", task_id).stdout)
    assert shown["body"] == body


def test_broadcast_pushes_into_every_member_pane(fleet):
    alice = fleet.create_member("Alice")
    bob = fleet.create_member("Bob")
    panes = {alice: fleet.pane_of(alice), bob: fleet.pane_of(bob)}
    mark, dmark = fleet.mark(), fleet.mark(fleet.director_log)
    out = json.loads(fleet.cli(*fleet.f, "--json", "message", "broadcast", "--agent-id", fleet.director_id,
                               "--text", "all hands").stdout)
    assert {t["recipient_agent_id"] for t in out} == {alice, bob}
    for t in out:
        assert t["push"] == {"notified": True, "pane_id": panes[t["recipient_agent_id"]], "reason": None, "held": False}
    for t in out:
        wait_for(lambda t=t: fleet.find_task(fleet.director_id, t["recipient_agent_id"], "done: all hands"),
                 "both replies")
        assert f"preview: [cafleet] task {t['task_id']} " in fleet.capture(panes[t["recipient_agent_id"]])
    lines = [e["value"] for e in fleet.since(mark)]
    assert sorted(v for v in lines if v.startswith("[cafleet]")) == sorted(
        keystrokes.preview_lines(t["task_id"], "Director", fleet.director_id, "all hands")[0] for t in out)
    assert lines.count("all hands") == 2
    # the sender's own pane got no preview of its broadcast
    assert not any("all hands" == e["value"] for e in fleet.since(dmark, fleet.director_log))
    # a dead pane is skipped, the task is stored anyway
    fleet.tmux("kill-pane", "-t", panes[bob])
    out = json.loads(fleet.cli(*fleet.f, "--json", "message", "broadcast", "--agent-id", fleet.director_id,
                               "--text", "second call").stdout)
    by = {t["recipient_agent_id"]: t for t in out}
    assert by[alice]["push"]["notified"] is True
    assert by[bob]["push"]["notified"] is False and by[bob]["push"]["pane_id"] == panes[bob]
    assert [t["body"] for t in fleet.inbox(bob)] == ["second call"]


def test_self_send_and_no_pane_recipient_skip_the_push(fleet):
    dmark = fleet.mark(fleet.director_log)
    task_id, pushed = _send(fleet, fleet.director_id, "note to self")
    assert pushed == "no pane notified (self-send)"
    assert [t["task_id"] for t in fleet.inbox(fleet.director_id)] == [task_id]
    # an agent registered outside tmux has no pane: stored, not pushed
    plain = fleet.cli(*fleet.f, "agent", "register", "--name", "Plain", "--description", "no pane").stdout.strip()
    task2, pushed2 = _send(fleet, plain, "for the record")
    assert pushed2 == "no pane notified (recipient has no pane)"
    polled = json.loads(fleet.cli(*fleet.f, "--json", "message", "poll", "--agent-id", plain).stdout)
    assert [(t["task_id"], t["body"]) for t in polled] == [(task2, "for the record")]
    # nothing reached the Director's pane from the self-send: the next thing it gets is this
    sentinel = json.loads(fleet.cli(*fleet.f, "--json", "message", "send", "--agent-id", plain, "--to",
                                    fleet.director_id, "--text", "sentinel").stdout)
    wait_for(lambda: len(fleet.since(dmark, fleet.director_log)) >= 2, "the sentinel preview")
    got = [e["value"] for e in fleet.since(dmark, fleet.director_log)]
    assert got == list(keystrokes.preview_lines(sentinel["task_id"], "Plain", plain, "sentinel"))


def test_a_body_quoting_a_dialog_phrase_does_not_silence_later_pushes(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    body = "Ask the user: Do you want to proceed? (Esc to cancel)"
    _, pushed = _send(fleet, member_id, body)
    assert pushed == f"notified pane {pane}"
    wait_for(lambda: fleet.find_task(fleet.director_id, member_id, "done: " + body), "the member's reply")
    _, pushed = _send(fleet, member_id, "next task")
    assert pushed == f"notified pane {pane}"
