"""cafleet.sendkeys against a real tmux server (a private one per test, see conftest): the
bytes a stand-in in the pane receives (test_tmux's `RECORDER`, raw mode, every read logged),
and the rule that only the keystroke gate imports this module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from cafleet import keystrokes, sendkeys, tmux
from cafleet.errors import TmuxError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_tmux  # noqa: E402  (tests/ is on sys.path)

PACKAGE = Path(sendkeys.__file__).resolve().parent
director, recorder = test_tmux.director, test_tmux.recorder  # fixtures: a private server's panes
receives, wait_for = test_tmux.receives, test_tmux.wait_for



def test_send_literal_arrives_verbatim(recorder):
    pane, read = recorder
    text = "hello 'sq' \"dq\" $HOME `id` C-c Enter Escape #{pane_id} -x é 日本 🙂 \\ ;x"
    sendkeys.send_literal(pane.socket_path, pane.pane_id, text)
    receives(read, text.encode())


@pytest.mark.parametrize("text", ["echo a;", ";", "a\\;", "two;;", "-starts-with-dash;"])
def test_trailing_semicolon_survives(recorder, text):
    pane, read = recorder
    sendkeys.send_literal(pane.socket_path, pane.pane_id, text)
    receives(read, text.encode())


def test_unescaped_trailing_semicolon_is_eaten_by_tmux(recorder):
    """The tmux fact the escaping exists for (tmux 3.3a): a raw final ';' is dropped."""
    pane, read = recorder
    subprocess.run(
        ["tmux", "-S", pane.socket_path, "send-keys", "-t", pane.pane_id, "-l", "--", "echo a;"],
        check=True,
    )
    receives(read, b"echo a")


def test_long_text_is_sent_in_chunks(recorder):
    pane, read = recorder
    text = ("abcdefghi\u00e9\u65e5\U0001f642" * 3000)[:25000]  # ~50 KiB of UTF-8
    assert len(text.encode()) > 3 * sendkeys.MAX_SEND_BYTES
    sendkeys.send_literal(pane.socket_path, pane.pane_id, text)
    receives(read, text.encode(), timeout=5)


def test_empty_text_sends_nothing(recorder):
    pane, read = recorder
    sendkeys.send_literal(pane.socket_path, pane.pane_id, "")
    sendkeys.send_literal(pane.socket_path, pane.pane_id, "z")
    receives(read, b"z")


def test_control_characters_are_typed_raw_without_sanitising(recorder):
    """send_literal types what it is given: the reason keystrokes sanitises first."""
    pane, read = recorder
    sendkeys.send_literal(pane.socket_path, pane.pane_id, "a\x03b\x1b[31mc\rd\ne")
    receives(read, b"a\x03b\x1b[31mc\rd\ne")


def test_hostile_preview_arrives_as_inert_text(recorder):
    pane, read = recorder
    body = (
        "C-c Enter Escape\x03\x04\x1a\x1b[2J\x1b]0;pwned\x07 \r!rm -rf ~\n"
        "/exit\u202egnp.exe\u2066x\u2069\x7f\x9b31m\x00 end;"
    )
    name = "Mallory\x1b[31m\r\nC-c"
    text = keystrokes.preview_text(
        "0b7c5a0e-7f3e-4d0a-9d8e-2f4c1a9b6e21", name,
        "4f1d2c3b-aaaa-4bbb-8ccc-123456789abc", body,
    )
    sendkeys.send_literal(pane.socket_path, pane.pane_id, text)
    got = receives(read, text.encode()).decode("utf-8")
    assert got.count("\n") == 1  # exactly the one line break between line 1 and line 2
    for ch in got.replace("\n", "", 1):
        assert ord(ch) >= 0x20 and not 0x7F <= ord(ch) <= 0x9F, repr(ch)
        assert ch not in keystrokes.BIDI_CONTROLS
    line1, line2 = got.split("\n")
    assert "Mallory" in line1
    assert line2.startswith("C-c Enter Escape") and line2.endswith("end;")


def test_type_line_sends_enter_separately_after_the_delay(recorder):
    pane, read = recorder
    sendkeys.type_line(pane.socket_path, pane.pane_id, "hi there", enter_delay=0.3)
    receives(read, b"hi there\r")
    _, chunks = read()
    assert bytes.fromhex(chunks[-1]["hex"]) == b"\r"  # Enter is its own read
    assert chunks[-1]["t"] - chunks[0]["t"] >= 0.25
    assert sendkeys.ENTER_DELAY >= 0.15  # past Claude Code's 100 ms / codex's 120 ms windows


def test_send_enter_sends_cr(recorder):
    pane, read = recorder
    sendkeys.send_enter(pane.socket_path, pane.pane_id)
    receives(read, b"\r")


def test_keys_reach_a_pane_the_user_scrolled(recorder):
    """A pane in copy mode swallows send-keys; sending leaves the mode first."""
    pane, read = recorder
    for mode in ("copy-mode", "clock-mode"):
        subprocess.run(["tmux", "-S", pane.socket_path, mode, "-t", pane.pane_id], check=True)
        sendkeys.type_line(pane.socket_path, pane.pane_id, mode, enter_delay=0.01)
    receives(read, b"copy-mode\rclock-mode\r")


def test_send_to_gone_pane_raises(director):
    with pytest.raises(tmux.TargetGone):
        sendkeys.send_literal(director.socket_path, "%999", "x")
    with pytest.raises(tmux.TargetGone):
        sendkeys.send_enter(director.socket_path, "%999")


def test_bad_pane_id_is_refused(director):
    for bad in ("0", "fleet:0.1", "%1;kill-server", ""):
        with pytest.raises(TmuxError):
            sendkeys.send_literal(director.socket_path, bad, "x")


def test_unencodable_text_is_a_tmux_error(recorder):
    pane, _ = recorder
    with pytest.raises(TmuxError):
        sendkeys.send_literal(pane.socket_path, pane.pane_id, "nul\x00byte")


def test_send_after_the_server_is_killed_raises(director, tmux_server):
    member = tmux.split_window(director, ["sleep", "30"], {}, None)
    tmux_server.cmd("kill-server")
    wait_for(lambda: not tmux.server_alive(director.socket_path))
    with pytest.raises(tmux.TargetGone):
        sendkeys.send_literal(member.socket_path, member.pane_id, "x")


def test_missing_tmux_binary_is_a_tmux_error(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for call in (lambda: sendkeys.send_literal("/tmp/s", "%0", "x"),
                 lambda: sendkeys.send_enter("/tmp/s", "%0"),
                 lambda: sendkeys.send_backspaces("/tmp/s", "%0", 3)):
        with pytest.raises(TmuxError, match="tmux is not installed") as info:
            call()
        assert not isinstance(info.value, tmux.TargetGone)


def test_send_backspaces_sends_that_many_dels(recorder):
    pane, read = recorder
    sendkeys.send_literal(pane.socket_path, pane.pane_id, "abc")
    sendkeys.send_backspaces(pane.socket_path, pane.pane_id, 0)
    sendkeys.send_backspaces(pane.socket_path, pane.pane_id, 2)
    receives(read, b"abc\x7f\x7f")  # tmux's BSpace is DEL (0x7f) in a pane without kbs


# ------------------------------------------------------------------ only the gate types


def _imports_sendkeys(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "cafleet.sendkeys" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom):
            if node.module == "cafleet.sendkeys" or (node.level and node.module == "sendkeys"):
                return True
            if (node.module == "cafleet" or (node.level and node.module is None)) \
                    and any(a.name == "sendkeys" for a in node.names):
                return True
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                "__import__", "import_module") and any(
                isinstance(a, ast.Constant) and "sendkeys" in str(a.value) for a in node.args):
            return True
    return False


def _sends_keys(tree: ast.Module) -> bool:
    """A call given tmux's ``send-keys`` as an argument (the hook's sets of tmux commands it
    denies are not calls)."""
    return any(isinstance(n, ast.Call) and any(isinstance(a, ast.Constant) and a.value == "send-keys"
                                               for a in n.args) for n in ast.walk(tree))


def test_only_the_gate_imports_sendkeys():
    """The gate decides whether a pane may receive keys; a module that imported the
    primitives could type without asking it."""
    importers = sorted(p.name for p in PACKAGE.glob("*.py")
                       if p.name != "sendkeys.py" and _imports_sendkeys(ast.parse(p.read_text(), str(p))))
    assert importers == ["gate.py"]


def test_no_other_module_runs_send_keys():
    """No cafleet module but sendkeys runs tmux's `send-keys` command."""
    senders = sorted(p.name for p in PACKAGE.glob("*.py") if _sends_keys(ast.parse(p.read_text(), str(p))))
    assert senders == ["sendkeys.py"]


@pytest.mark.parametrize("line", ["from cafleet import sendkeys", "from cafleet import tmux, sendkeys as k",
                                  "import cafleet.sendkeys", "from cafleet.sendkeys import send_enter",
                                  "from . import sendkeys", "from .sendkeys import send_literal",
                                  "def f():\n    from cafleet import sendkeys", "__import__('cafleet.sendkeys')",
                                  "importlib.import_module('cafleet.sendkeys')"])
def test_the_import_check_sees_every_spelling(line):
    assert _imports_sendkeys(ast.parse(line))
    assert not _imports_sendkeys(ast.parse(line.replace("sendkeys", "screens")))
    assert _sends_keys(ast.parse('_run(s, "send-keys", "-t", p, "Enter")'))
    assert not _sends_keys(ast.parse('"""run send-keys"""\nDENY = {"send-keys", "kill-pane"}'))
