"""What the keystroke gate costs and how fast held previews and exit notices arrive.

Run: `python bench/gate_cost.py [--runs N]`. Uses a private tmux server (its own socket,
killed at the end) with stand-in agents (cafleet.standin), through the real CLI where a user
would use it. Prints medians (and p90) of N runs, measured in one run:

(a) gate cost per push, in-process, Enter delay set to 0 so only the work shows: the push as
    it was before the gate (pane lookup, screen capture, dialog check, text, Enter: what
    `members._type_preview` did) vs `gate.type_line` (one tmux call for facts + screen,
    /proc foreground check, text, the re-check right before the Enter, Enter), into a pane
    running `cat`. Goal: the gate adds <= 20 ms per push.
(b) held preview: a member shows a choice frame, a message to it is held; from the start of
    `member send-input --choice 1` (which closes the frame) to the held preview's first line
    arriving in the member (its key log).
(c) exit notice: from SIGKILL of a member's agent to the notice visible in the Director's
    pane (tmux pane-died hook -> `cafleet member exited` -> push). Goal: <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import p90  # noqa: E402


def old_push(socket, pane, text):
    """The pre-gate push path (members._type_preview before the gate), Enter delay 0."""
    from cafleet import screens, sendkeys, tmux

    info = tmux.pane_info(socket, pane)
    assert info is not None and not info.dead
    assert screens.open_dialog(tmux.screen(socket, pane)) is None
    sendkeys.type_line(socket, pane, text, enter_delay=0)


def bench_gate_cost(tf, runs):
    from cafleet import gate

    pane = tf.tmux("split-window", "-d", "-P", "-F", "#{pane_id}", "-t", tf.director_pane, "--", "cat").stdout.strip()
    agent = "6f1c2b9a-1111-4222-8333-444455556666"
    tf.tmux("set-option", "-p", "-t", pane, "@cafleet-agent", agent)
    pid = int(tf.tmux("display-message", "-p", "-t", pane, "#{pane_pid}").stdout)
    target = gate.Target(agent_id=agent, role="member", socket=tf.socket, pane_id=pane, pane_pid=pid)
    old, new = [], []
    for i in range(runs):
        t0 = time.perf_counter()
        old_push(tf.socket, pane, f"old push {i}")
        old.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        d = gate.type_line(target, f"gated push {i}", enter_delay=0)
        new.append((time.perf_counter() - t0) * 1000)
        assert d.allowed, d
        tf.tmux("clear-history", "-t", pane)
    return old, new


def member_keys(tf, mid):
    path = tf.logdir / f"{mid}.log"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def bench_held(tf, runs):
    out = []
    m = tf.add_member("Chooser")
    for i in range(runs):
        screen = lambda: tf.tmux("capture-pane", "-p", "-t", tf.pane_of(m)).stdout  # noqa: E731
        tf.wait(lambda: "Type something." not in screen(), "no frame")
        tf.fcli("message", "send", "--agent-id", tf.director, "--to", m, "--text", f"choose {i}")
        tf.wait(lambda: "Type something." in screen(), "the frame")
        sent = json.loads(tf.fcli("--json", "message", "send", "--agent-id", tf.director, "--to", m,
                                  "--text", f"held {i}").stdout)
        assert sent["push"]["held"], sent["push"]
        head = f"[cafleet] task {sent['task_id']}"
        t0 = time.perf_counter()
        tf.fcli("member", "send-input", "--member-id", m, "--choice", "1")
        tf.wait(lambda: any(e["kind"] == "line" and e["value"].startswith(head) for e in member_keys(tf, m)),
                "the held preview", timeout=20)
        out.append((time.perf_counter() - t0) * 1000)
        tf.wait(lambda: tf.rows("SELECT 1 FROM tasks WHERE sender_agent_id = ? AND body = ?", (m, f"done: held {i}")),
                "the answer")
    return out


def bench_exit(tf, runs):
    """(times of notices that came through the pane-died hook, number the hook missed). A
    missed one (tmux 3.3a did not reap the process) is then reported by `member list`."""
    out, missed = [], 0
    for i in range(runs):
        name = f"Gone{i}"
        m = tf.add_member(name)
        time.sleep(0.3)
        pid = tf.pane_pid(m)
        seen = lambda: f"member {name} exited" in tf.tmux(  # noqa: E731
            "capture-pane", "-p", "-J", "-t", tf.director_pane, "-S", "-50").stdout
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        try:
            tf.wait(seen, "the notice", timeout=10)
            out.append((time.perf_counter() - t0) * 1000)
        except AssertionError:
            missed += 1
            tf.fcli("member", "list")
            tf.wait(seen, "the notice after member list", timeout=10)
        tf.fcli("member", "delete", "--member-id", m)
    return out, missed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    from tmux_fleet import TmuxFleet

    tf = TmuxFleet(Path(tempfile.mkdtemp(prefix="cfg-")))
    try:
        old, new = bench_gate_cost(tf, max(args.runs * 2, 10))
        held = bench_held(tf, max(args.runs // 3, 3))
        exits, missed = bench_exit(tf, max(args.runs // 3, 3))
    finally:
        tf.close()
    med = statistics.median
    print(f"{'measure':<58} {'median ms':>10} {'p90 ms':>8} {'runs':>5}")
    rows = [("push before the gate (lookup, capture, text, Enter)", old),
            ("push through the gate (facts+screen, text, re-check, Enter)", new),
            ("send-input closes the frame -> held preview arrives", held),
            ("member SIGKILL -> exit notice visible in Director pane", exits)]
    for name, xs in rows:
        if not xs:
            continue
        print(f"{name:<58} {med(xs):>10.1f} {p90(xs):>8.1f} {len(xs):>5}")
    print(f"gate's added cost per push: {med(new) - med(old):+.1f} ms (ratio {med(new) / med(old):.2f}; goal <= +20 ms)")
    print(f"exit notice: {med(exits) / 1000:.2f} s median (goal <= 2 s); the hook missed {missed} of "
          f"{len(exits) + missed} exits (tmux 3.3a left the process unreaped; `member list` reported those)")


if __name__ == "__main__":
    main()
