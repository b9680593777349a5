"""cafleet.wake: what wakes a Director, each thing once; on a real DB, and on real panes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from cafleet import wake
from cafleet.broker import Broker
from cafleet.errors import NotFound


@pytest.fixture
def fleet(db_path):
    b = Broker.open(str(db_path))
    f = b.create_fleet("w")
    fid, d = f["fleet_id"], f["director"]["agent_id"]
    m = b.register_agent(fid, "worker", "does work", role="member", parent_agent_id=d)
    yield b, fid, d, m["agent_id"]
    b.close()


class Panes:
    """A scripted `observe`: member agent id -> (state, marker, hash)."""

    def __init__(self):
        self.by_pane: dict = {}

    def __call__(self, placement):
        return self.by_pane.get((placement or {}).get("pane_id"), ("pending", None, ""))


def make_watch(b, fid, d, **kw):
    return wake.Watch(b, fid, d, **kw)


def test_a_new_task_is_reported_once(fleet):
    b, fid, d, m = fleet
    w = make_watch(b, fid, d, observe=Panes())
    t = b.send(fid, m, d, "report: parser done")
    got = w.wait(1.0)
    assert [(e.kind, e.task_id, e.agent_id, e.name, e.detail) for e in got.events] == [
        ("task", t["task_id"], m, "worker", "report: parser done")]
    again = w.wait(0.3)  # still un-acked, but already reported
    assert again.events == [] and again.waited_s >= 0.3
    assert "nothing new" in again.text()


def test_wait_wakes_when_a_task_arrives(fleet):
    b, fid, d, m = fleet
    w = make_watch(b, fid, d, observe=Panes())
    sent = {}

    def later():
        time.sleep(0.5)
        other = Broker.open(b.path)
        try:
            sent["t"] = time.monotonic()
            other.send(fid, m, d, "done")
        finally:
            other.close()

    th = threading.Thread(target=later)
    th.start()
    got = w.wait(30.0)
    woke = time.monotonic()
    th.join()
    assert [e.detail for e in got.events] == ["done"]
    assert woke - sent["t"] < 5.0, "woken long after the send"  # bound only; bench/ measures


def test_digest_names_literal_commands(fleet):
    b, fid, d, m = fleet
    w = make_watch(b, fid, d, observe=Panes())
    t = b.send(fid, m, d, "x" * 1000 + "\nsecond line")
    text = w.wait(1.0).text()
    f = f"cafleet --fleet-id {fid}"
    assert f"{f} message poll --agent-id {d}" in text
    assert f"{f} message ack --agent-id {d} --task-id {t['task_id']}" in text
    assert "(full text: message poll)" in text and "\nsecond line" not in text
    assert len(text) < 1200


def test_a_backlog_is_summed_up(fleet):
    b, fid, d, m = fleet
    w = make_watch(b, fid, d, observe=Panes())
    for i in range(wake.MAX_LISTED + 3):
        b.send(fid, m, d, f"report {i}")
    got = w.wait(1.0)
    text = got.text()
    assert len(got.events) == wake.MAX_LISTED + 3
    assert "and 3 more task(s)" in text and text.count("message ack") == wake.MAX_LISTED


def test_member_states_dialog_exited_and_stall(fleet):
    b, fid, d, m = fleet
    b.set_placement(fid, m, {"tmux_socket": "/nowhere", "session_name": "s", "window_id": "@1",
                             "pane_id": "%7", "pane_pid": 1}, "claude")
    panes = Panes()
    clock = [100.0]
    w = make_watch(b, fid, d, observe=panes, clock=lambda: clock[0], stall_seconds=60)
    panes.by_pane["%7"] = ("live", None, "h1")
    assert w.member_events() == []
    panes.by_pane["%7"] = ("dialog", "Do you want to proceed?", "")
    ev = w.member_events()
    assert [(e.kind, e.agent_id, e.detail) for e in ev] == [("dialog", m, "Do you want to proceed?")]
    assert w.member_events() == []  # once
    assert "member capture --member-id " + m in wake.Digest(fid, d, ev).text()
    panes.by_pane["%7"] = ("live", None, "h2")  # answered: the screen moved
    assert w.member_events() == []
    clock[0] += 59
    assert w.member_events() == []
    clock[0] += 2
    ev = w.member_events()
    assert [(e.kind, e.detail) for e in ev] == [("stalled", "61")]
    assert w.member_events() == []
    panes.by_pane["%7"] = ("dialog", "Do you want to proceed?", "")  # the same dialog again
    assert [e.kind for e in w.member_events()] == ["dialog"]
    panes.by_pane["%7"] = ("exited", None, "")
    assert w.member_events() == []  # first sight: tmux's pane-died hook may still record it
    ev = w.member_events()
    assert [e.kind for e in ev] == ["exited"]
    assert f"member delete --member-id {m} --force" in wake.Digest(fid, d, ev).text()


def test_cancel_ends_a_wait(fleet):
    b, fid, d, m = fleet
    w = make_watch(b, fid, d, observe=Panes())
    ev = threading.Event()
    threading.Timer(0.3, ev.set).start()
    t0 = time.monotonic()
    got = w.wait(30.0, ev)
    assert got.canceled and got.events == [] and time.monotonic() - t0 < 10
    assert "canceled" in got.text()


def test_timeout_is_capped_under_the_tool_timeout():
    assert wake.MAX_TIMEOUT < wake.TOOL_TIMEOUT and wake.DEFAULT_TIMEOUT <= wake.MAX_TIMEOUT


def test_unknown_director_is_not_found(fleet):
    b, fid, d, m = fleet
    with pytest.raises(NotFound):
        wake.Watch(b, fid, "0b4c7a43-1f0e-4d39-9b55-2f6f6c2b0e11")


def test_inbox_is_read_only(fleet):
    b, fid, d, m = fleet
    b.send(fid, m, d, "hi")
    before = b.get_agent(fid, d)["last_seen"]
    time.sleep(0.01)
    assert [t["body"] for t in b.inbox(fid, d)] == ["hi"]
    assert b.get_agent(fid, d)["last_seen"] == before


# ------------------------------------------------------------------ real panes (stand-ins)


@pytest.fixture
def tfleet(tmp_path):
    import shutil

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    from tmux_fleet import TmuxFleet

    f = TmuxFleet(tmp_path)
    try:
        yield f
    finally:
        f.close()


def test_real_panes_report_then_dialog_then_exit(tfleet):
    mid = tfleet.add_member("worker")
    b = Broker.open(str(tfleet.db))
    try:
        w = wake.Watch(b, tfleet.fid, tfleet.director)
        got = w.wait(10)
        assert [(e.kind, e.detail) for e in got.events] == [("task", "ready")]
        tfleet.fcli("message", "send", "--agent-id", tfleet.director, "--to", mid, "--text",
                    "choose a colour")
        got = w.wait(15)
        assert [e.kind for e in got.events] == ["dialog"], got.text()
        assert got.events[0].detail  # the marker screens.open_dialog found
        tfleet.fcli("member", "send-input", "--member-id", mid, "--choice", "2")
        got = w.wait(15)
        assert [e.kind for e in got.events] == ["task"] and got.events[0].detail.startswith("chose:")
        os.kill(tfleet.pane_pid(mid), signal.SIGKILL)
        got = w.wait(15)
        # cafleet's exit notice (a task from the member, via tmux's pane-died hook) says it;
        # the pane's own death is then not reported a second time
        assert [(e.kind, e.agent_id) for e in got.events] == [("task", mid)], got.text()
        assert "exited" in got.events[0].detail
        assert w.wait(2.5).events == []
    finally:
        b.close()


def test_real_pane_with_a_shell_in_it_counts_as_exited(fleet, tmux_server):
    """A member pane whose foreground program is a shell: the agent is gone."""
    b, fid, d, m = fleet
    sess = tmux_server.new_session(session_name="w", window_command="bash --norc --noprofile")
    pane = sess.active_window.active_pane
    pid = int(pane.pane_pid)
    b.set_placement(fid, m, {"tmux_socket": tmux_server.socket_path, "session_name": "w",
                             "window_id": sess.active_window.window_id, "pane_id": pane.pane_id,
                             "pane_pid": pid}, "claude")
    w = wake.Watch(b, fid, d)
    assert w.member_events() == []
    got = w.member_events()
    assert [(e.kind, e.agent_id) for e in got] == [("exited", m)]
    assert "a shell (bash) has its pane" in wake.Digest(fid, d, got).text()
    assert w.member_events() == []
