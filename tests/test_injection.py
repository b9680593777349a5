"""Keystroke injection, end to end: a real stand-in member (`cafleet.standin`, started
through the claude backend path) in a private tmux server receives what cafleet types,
and logs every line and key it reads (`$CAFLEET_STANDIN_LOG`).

Hostile text in message bodies, sender names, `--freetext` and `member exec` — ESC
sequences, C-c, CR/LF, tmux key names, bidi overrides, a trailing `;`, very long lines —
must reach the pane only as inert printable text (CONTRACT.md "Messages": control
characters removed, newlines shown as ⏎; "Members": keystrokes sent literally, refused text
exits 2 and types nothing). The stand-in must still be alive and answering afterwards.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tmux_fleet import TmuxFleet as _BaseFleet  # noqa: E402  (tests/ is on sys.path)
from cafleet import keystrokes
from cafleet.cli import main

PY = sys.executable

class TmuxFleet(_BaseFleet):
    """The shared rig (tests/tmux_fleet.py), wider, plus in-process invocation."""

    def __init__(self, tmp: Path):
        super().__init__(tmp, size=(220, 60), name="inj")

    def invoke(self, *args, code=0):
        """The same command in this process (click's CliRunner, the Director's environment):
        the same code path as the console script without a Python start-up per call."""
        r = CliRunner().invoke(main, ["--fleet-id", self.fid, *map(str, args)], env=self.denv)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        assert "Traceback" not in r.output + r.stderr
        if code is not None:
            assert r.exit_code == code, (args, r.exit_code, r.stdout, r.stderr)
        return r


@pytest.fixture(scope="module")
def tf(tmp_path_factory):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    f = TmuxFleet(tmp_path_factory.mktemp("inj"))
    try:
        yield f
    finally:
        f.close()


def inert(value: str) -> bool:
    return not any(keystrokes.is_unsafe_char(ch) for ch in value)


def assert_still_answers(tf, mid):
    """The member's process is the same live stand-in and still reacts to a ping."""
    assert tf.alive(mid)
    before = len(tf.log(mid))
    tf.fcli("member", "ping", "--member-id", mid)
    poll = f"cafleet --fleet-id {tf.fid} message poll --agent-id {mid}"
    tf.wait(lambda: any(e["value"] == poll for e in tf.log(mid)[before:]), "the ping to arrive")
    tf.wait(lambda: "polled" in tf.capture(mid).split(poll)[-1], "the stand-in to poll after the ping")


# ---------------------------------------------------------------- message bodies


BODIES = [
    "\x1b[31mred\x1b[0m \x1b[2J\x1b[H cleared? \x1b]0;pwned-title\x07 OSC \x1b]52;c;aGVsbG8=\x07 clipboard"
    " \x1b[200~pasted\x1b[201~ paste markers \x1bP+q544e\x1b\\ DCS \x9bCSI-8bit \x90DCS-8bit",
    "before\x03after a C-c byte \x04 C-d \x1a C-z \x1c C-\\ \ttab\x7fDEL\x08BS",
    "line one\r\nline two\rline three\nline four\u2028five\u2029six\x85seven",
    "C-c Enter Escape C-d BSpace Up M-x \\; ; KPEnter \u202eevil\u202c bidi \u2066isolate\u2069 \u200fRLM\u061c",
    "ends with a semicolon;",
    "/exit",
    "! touch /tmp/cafleet-injection-should-not-exist",
    "x" * 60000 + "END \u00e9\u221e \u6f22\u5b57 \U0001f680 e\u0301",
]


def test_hostile_bodies_arrive_as_inert_previews_and_round_trip(tf):
    marker = Path("/tmp/cafleet-injection-should-not-exist")
    marker.unlink(missing_ok=True)
    m = tf.add_member("Body")
    task_ids = {}
    for body in BODIES:
        data = json.loads(tf.invoke("--json", "message", "send", "--agent-id", tf.director, "--to", m,
                                    "--text", body).stdout)
        assert data["push"]["notified"] is True, data["push"]
        task_ids[data["task_id"]] = body
    # the stand-in polls on each preview and answers every task `done: <body>`
    tf.wait(lambda: len(tf.rows("SELECT 1 FROM tasks WHERE sender_agent_id = ? AND body LIKE 'done: %'", (m,)))
            == len(BODIES), "an answer to every body", timeout=60)
    replies = [r[0] for r in tf.rows("SELECT body FROM tasks WHERE sender_agent_id = ? AND body LIKE 'done: %'",
                                     (m,))]
    assert sorted(replies) == sorted("done: " + b for b in BODIES), "a body did not round-trip exactly"
    acked = tf.rows("SELECT COUNT(*) FROM tasks WHERE recipient_agent_id = ? AND state = 'completed'", (m,))[0][0]
    assert acked == len(BODIES)

    # every preview is read (the stand-in may still be working through its input)
    tf.wait(lambda: len(tf.log(m)) >= 2 * len(BODIES), "every preview to be read", timeout=30)
    time.sleep(0.3)
    log = tf.log(m)
    assert all(inert(e["value"]) for e in log), [e for e in log if not inert(e["value"])][:3]
    values = [e["value"] for e in log if e["kind"] == "line"]
    for task_id, body in task_ids.items():
        line1, line2 = keystrokes.preview_lines(task_id, "Director", tf.director, body)
        assert line1 in values, (task_id, line1)
        i = values.index(line1)
        assert values[i + 1] == line2, (body[:40], values[i + 1][:80], line2[:80])
        assert len(line2) <= keystrokes.PREVIEW_BODY_LIMIT
    # exactly two lines per preview, nothing else typed into the pane
    assert len(values) == 2 * len(BODIES), values
    assert not marker.exists(), "a body ran a shell command in the member"
    assert_still_answers(tf, m)


# ---------------------------------------------------------------- names and descriptions


HOSTILE_DESCRIPTION = "desc \x1b[2J\x1b]0;t\x07 ESC, a\nnewline, C-c \x03 and \u202ebidi; Enter;"


def test_sender_name_with_bidi_and_key_names_is_inert_in_the_directors_preview(tf):
    name = "Eve\u202e\u2066 C-c Enter ;x;"
    m = tf.add_member(name, HOSTILE_DESCRIPTION)
    # the stand-in's `ready` was pushed into the Director's pane with its name on line 1
    task_id = tf.rows("SELECT task_id FROM tasks WHERE sender_agent_id = ? AND body = 'ready'", (m,))[0][0]
    line1, line2 = keystrokes.preview_lines(task_id, name, m, "ready")
    def both_lines():
        values = [e["value"] for e in tf.log("director")]
        return line1 in values and values.index(line1) + 1 < len(values)

    tf.wait(both_lines, "the ready preview in the Director")
    log = tf.log("director")
    assert all(inert(e["value"]) for e in log)
    values = [e["value"] for e in log]
    assert values[values.index(line1) + 1] == line2
    assert "Eve C-c Enter ;x;" in line1 and "\u202e" not in line1
    # name and description reach the member only as argv (never typed), byte for byte
    argv = Path(f"/proc/{tf.pane_pid(m)}/cmdline").read_bytes().decode("utf-8").split("\0")[:-1]
    assert f"--name={name}" in argv
    prompt = argv[argv.index("--") + 1]
    assert f"You are {name}, a member" in prompt and HOSTILE_DESCRIPTION in prompt
    assert tf.log(m) == [], "the member was typed at before any message"
    assert_still_answers(tf, m)


@pytest.mark.parametrize("bad", ["Esc\x1b[31m", "New\nline", "C\x03c", "Tab\there", "CR\rhere", "Del\x7f", "C1\x9b"])
def test_names_with_control_characters_are_refused_and_nothing_is_spawned(tf, bad):
    panes, agents = tf.panes(), tf.rows("SELECT COUNT(*) FROM agents")
    p = tf.fcli("member", "create", "--name", bad, "--description", "d", "--", "hi", code=2)
    assert p.stderr.startswith("Error:") and "--name" in p.stderr
    p = tf.fcli("agent", "register", "--name", bad, "--description", "d", code=2)
    assert "--name" in p.stderr
    assert tf.panes() == panes and tf.rows("SELECT COUNT(*) FROM agents") == agents


# ---------------------------------------------------------------- --freetext and exec


REFUSED_FREETEXT = ["\x1b[A", "a\x1bb", "a\x03b", "a\nb", "a\rb", "a\r\nb", "\u202eabc", "abc\u2066", "!ls",
                    "  ! ls", "\t", "", "   ", "a\x7fb", "a\x85b", "a\u2028b", "x\x9b1m"]
REFUSED_EXEC = ["", "   ", "echo a\nrm -rf x", "echo \x1b[A", "echo \x03", "echo \u202eexe", "echo a\rb",
                "echo a\x7f", "echo \u2029", "echo \x1b]0;t\x07"]


def test_refused_freetext_and_exec_type_nothing(tf):
    m = tf.add_member("Refuser")
    tf.wait(lambda: "sent to Director" in tf.capture(m), "the member's start-up output")
    time.sleep(0.3)
    screen, log = tf.capture(m), tf.log(m)
    for text in REFUSED_FREETEXT:
        r = tf.invoke("member", "send-input", "--member-id", m, "--freetext", text, code=2)
        assert r.stderr.startswith("Error:") and r.stdout == "", r.stderr
    for cmd in REFUSED_EXEC:
        r = tf.invoke("member", "exec", "--member-id", m, cmd, code=2)
        assert r.stderr.startswith("Error:") and r.stdout == "", r.stderr
    # the flags themselves: neither or both of --choice/--freetext, a choice out of range
    tf.invoke("member", "send-input", "--member-id", m, code=2)
    tf.invoke("member", "send-input", "--member-id", m, "--choice", "1", "--freetext", "x", code=2)
    for choice in ("0", "4", "5", "-1", "1;", "C-c"):
        tf.invoke("member", "send-input", "--member-id", m, "--choice", choice, code=2)
    # a few through the console script too (real argv)
    for text in ("a\x1bb", "!ls", "a\nb"):
        tf.fcli("member", "send-input", "--member-id", m, "--freetext", text, code=2)
    tf.fcli("member", "exec", "--member-id", m, "echo \x03", code=2)
    time.sleep(0.5)
    assert tf.log(m) == log, "a refused command typed something"
    assert tf.capture(m) == screen
    assert_still_answers(tf, m)


ACCEPTED_FREETEXT = ["C-c Enter Escape C-d BSpace", "semi;", ";", "a\\;", "-n --flag é 漢字 🚀",
                     "send-keys -t %0 C-c", "y" * 3000]


def test_accepted_freetext_is_typed_literally(tf):
    m = tf.add_member("Typist")
    tf.wait(lambda: "sent to Director" in tf.capture(m), "the member's start-up output")
    for text in ACCEPTED_FREETEXT:
        # send-input answers only a choice frame (the keystroke gate): open one first
        def visible():
            return tf.tmux("capture-pane", "-p", "-t", tf.pane_of(m)).stdout

        tf.wait(lambda: "Type something." not in visible(), "the last frame to close")
        tf.fcli("message", "send", "--agent-id", tf.director, "--to", m, "--text", "choose a colour")
        tf.wait(lambda: "Type something." in visible(), "the choice frame")
        n = len(tf.log(m))
        tf.invoke("member", "send-input", "--member-id", m, "--freetext", text)
        # the stand-in's frame reads `4`, then the text as one line (Enter ends it)
        tf.wait(lambda: len(tf.log(m)) >= n + 2, "the freetext")
        got = tf.log(m)[n:n + 2]
        assert got == [{"kind": "key", "value": "4"}, {"kind": "line", "value": text}], got
    assert_still_answers(tf, m)


ACCEPTED_EXEC = ["echo C-c Enter Escape", "echo semi;", "echo 'a;b';", "echo a\\;", "echo " + "q" * 3000,
                 "echo $((6*7)) done", "echo é漢🚀"]


def test_accepted_exec_commands_are_typed_literally(tf):
    m = tf.add_member("Execer")
    tf.wait(lambda: "sent to Director" in tf.capture(m), "the member's start-up output")
    n = len(tf.log(m))
    for cmd in ACCEPTED_EXEC:
        assert "typed" in tf.invoke("member", "exec", "--member-id", m, cmd).stdout
    tf.wait(lambda: len(tf.log(m)) >= n + len(ACCEPTED_EXEC), "every exec")
    time.sleep(0.2)
    assert tf.log(m)[n:] == [{"kind": "line", "value": "! " + cmd} for cmd in ACCEPTED_EXEC]
    tf.wait(lambda: "42 done" in tf.capture(m), "the exec output")
    assert_still_answers(tf, m)
