"""The keystroke protocol: previews, sanitising, validation, tmux `;` escaping (pure)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cafleet import keystrokes as ks
from cafleet import screens
from cafleet.errors import UsageError

TASK = "0b7c5a0e-7f3e-4d0a-9d8e-2f4c1a9b6e21"
SENDER = "4f1d2c3b-aaaa-4bbb-8ccc-123456789abc"

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def unsafe(ch: str) -> bool:
    """Independent statement of what may never reach a pane inside a preview line."""
    cp = ord(ch)
    return (
        cp < 0x20
        or 0x7F <= cp <= 0x9F
        or 0xD800 <= cp <= 0xDFFF
        or ch in BIDI
        or ch in "\u2028\u2029"
    )


# --------------------------------------------------------------------- preview_lines


def test_preview_names_task_and_sender():
    line1, line2 = ks.preview_lines(TASK, "Alice", SENDER, "please review PR 7")
    assert TASK in line1 and "Alice" in line1 and SENDER in line1
    assert line1.startswith("[cafleet] ")
    assert "poll" in line1
    assert line2 == "please review PR 7"


def test_preview_text_is_two_lines_joined_by_one_newline():
    text = ks.preview_text(TASK, "Alice", SENDER, "a\nb\r\nc")
    assert text.count("\n") == 1
    assert text.split("\n") == list(ks.preview_lines(TASK, "Alice", SENDER, "a\nb\r\nc"))


@pytest.mark.parametrize(
    "body, shown",
    [
        ("a\nb", "a⏎b"),
        ("a\r\nb", "a⏎b"),
        ("a\rb", "a⏎b"),
        ("a\u2028b\u2029c", "a⏎b⏎c"),
        ("a\x85b", "a⏎b"),
        ("a\n\nb", "a⏎⏎b"),
        ("a\tb", "a b"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),
        ("\x1b]0;title\x07x", "]0;titlex"),
        ("bell\x07 nul\x00 del\x7f c1\x9b1m", "bell nul del c11m"),
        ("ctrl-c \x03 and \x04", "ctrl-c  and "),
        ("abc\u202edcba\u2066x\u2069\u200e\u200f\u061c", "abcdcbax"),
        ("C-c Enter Escape #{pane_id} ;", "C-c Enter Escape #{pane_id} ;"),
        ("emoji 🙂 and 日本語 and e\u0301", "emoji 🙂 and 日本語 and e\u0301"),
    ],
)
def test_preview_body_is_one_inert_line(body, shown):
    assert ks.preview_lines(TASK, "A", SENDER, body)[1] == shown


def test_preview_body_is_cut_with_marker():
    body = "x" * 500
    line2 = ks.preview_lines(TASK, "A", SENDER, body, limit=200)[1]
    assert len(line2) == 200
    m = re.fullmatch(r"(x+)…\[\+(\d+) chars\]", line2)
    assert m, line2
    assert len(m.group(1)) + int(m.group(2)) == 500


def test_preview_body_at_the_limit_is_not_cut():
    body = "y" * ks.PREVIEW_BODY_LIMIT
    assert ks.preview_lines(TASK, "A", SENDER, body)[1] == body


def test_preview_cut_counts_after_sanitising():
    # 300 line breaks become 300 marks; the count is of shown characters.
    line2 = ks.preview_lines(TASK, "A", SENDER, "\n" * 300, limit=50)[1]
    assert len(line2) <= 50 and line2.endswith(" chars]")


def test_preview_empty_body():
    assert ks.preview_lines(TASK, "A", SENDER, "")[1] == "(empty)"
    assert ks.preview_lines(TASK, "A", SENDER, "\x1b\x00")[1] == "(empty)"


def test_preview_sanitises_and_bounds_sender_name():
    name = "evil\x1b[2J\nname\u202e" + "n" * 100
    line1, _ = ks.preview_lines(TASK, name, SENDER, "hi")
    assert not any(unsafe(c) for c in line1)
    assert "\x1b" not in line1 and "⏎" in line1
    assert len(line1) < 200
    # a name made only of control characters still gives a readable line 1
    assert " from ? (" in ks.preview_lines(TASK, "\x1b\x07", SENDER, "hi")[0]


def test_preview_line1_never_starts_like_a_tui_command():
    line1, _ = ks.preview_lines(TASK, "!rm -rf", SENDER, "/exit")
    assert line1[0] not in "!/#@"


@settings(max_examples=300, deadline=None)
@given(
    body=st.text(),
    name=st.text(max_size=300),
    limit=st.integers(min_value=1, max_value=400),
)
def test_property_preview_lines_are_inert_and_bounded(body, name, limit):
    line1, line2 = ks.preview_lines(TASK, name, SENDER, body, limit=limit)
    for line in (line1, line2):
        assert not any(unsafe(c) for c in line), repr(line)
        assert "\n" not in line and "\r" not in line
    assert len(line2) <= limit
    # line 1 is bounded no matter how long the name is
    assert len(line1) <= len(ks.PREVIEW_PREFIX) + 2 * ks.ID_LIMIT + ks.SENDER_NAME_LIMIT + 40


@settings(max_examples=200, deadline=None)
@given(body=st.text(alphabet=st.characters(codec="utf-8"), min_size=1))
def test_property_preview_keeps_every_safe_character(body):
    """Nothing printable is lost when the body fits: sanitising only drops unsafe chars."""
    line2 = ks.preview_lines(TASK, "A", SENDER, body, limit=10_000)[1]
    expected = ks.sanitize_inline(body)
    if expected.strip():
        assert line2 == expected
    # every safe character of the body is still there, in order
    rest = iter(expected)
    assert all(c in rest for c in body if not unsafe(c) and not invisible(c))


def invisible(ch: str) -> bool:
    """What a preview also drops (issue 10): format characters, the tag block, Hangul fillers."""
    return unicodedata.category(ch) == "Cf" or 0xE0000 <= ord(ch) <= 0xE007F or ch in "\u115f\u1160\u3164\uffa0"


# --------------------------------------------------------------------------- truncate


@settings(max_examples=300, deadline=None)
@given(text=st.text(), limit=st.integers(min_value=1, max_value=300))
def test_property_truncate(text, limit):
    out = ks.truncate(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
    else:
        m = re.fullmatch(r"(.*)…\[\+(\d+) chars\]", out, flags=re.S)
        if m:  # marker fits: kept prefix + count of removed chars = whole text
            assert text.startswith(m.group(1))
            assert len(m.group(1)) + int(m.group(2)) == len(text)
        else:  # limit too small for any marker: hard cut
            assert out == text[:limit]


def test_truncate_rejects_nonpositive_limit():
    with pytest.raises(ValueError):
        ks.truncate("abc", 0)


# -------------------------------------------------------------------------- validation


@pytest.mark.parametrize("text", ["yes, go ahead", "option 4: do X; then Y;", "é 🙂", " a "])
def test_validate_freetext_accepts_single_printable_line(text):
    assert ks.validate_freetext(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "a\nb",
        "a\rb",
        "a\r\nb",
        "a\u2028b",
        "tab\there",
        "esc\x1b[A",
        "ctrl\x03",
        "nul\x00",
        "del\x7f",
        "c1\x9b",
        "bidi\u202eevil",
        "lone\ud800surrogate",
        "!rm -rf /",
        "  ! ls",
        "\t!ls",
    ],
)
def test_validate_freetext_refuses(text):
    with pytest.raises(UsageError) as info:
        ks.validate_freetext(text)
    assert info.value.exit_code == 2


def test_validate_freetext_allows_bang_later_in_text():
    assert ks.validate_freetext("great work!") == "great work!"


@pytest.mark.parametrize("cmd", ["git status", "ls -la; echo done;", "echo '$HOME' \"x\""])
def test_validate_exec_command_accepts(cmd):
    assert ks.validate_exec_command(cmd) == cmd
    assert ks.exec_line(cmd) == "! " + cmd


@pytest.mark.parametrize("cmd", ["", "  ", "a\nb", "a\rb", "a\tb", "\x1b", "x\x03", "a\u2066b"])
def test_validate_exec_command_refuses(cmd):
    with pytest.raises(UsageError) as info:
        ks.validate_exec_command(cmd)
    assert info.value.exit_code == 2


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_property_validated_text_is_typable(text):
    """Whatever passes validation is one line of printable text (safe for send-keys -l)."""
    try:
        ks.validate_exec_command(text)
    except UsageError:
        return
    assert not any(unsafe(c) for c in text)
    assert text.strip()
    for c in text:
        assert unicodedata.category(c) not in ("Cc", "Cs")


# ------------------------------------------------------------------ ; escaping for tmux


def tmux_parses(arg: str) -> tuple[str | None, bool]:
    """What tmux 3.3 (cmd_parse_from_arguments) makes of one argv item.

    Returns (argument or None if dropped, whether the command ends here).
    """
    if arg.endswith(";"):
        body = arg[:-1]
        if body.endswith("\\"):
            return body[:-1] + ";", False
        return (body if body else None), True
    return arg, False


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("echo a;", "echo a\\;"),
        (";", "\\;"),
        ("a\\;", "a\\\\;"),
        ("a;b", "a;b"),
        ("plain", "plain"),
        ("", ""),
        (";;", ";\\;"),
    ],
)
def test_escape_trailing_semicolon(text, escaped):
    assert ks.escape_trailing_semicolon(text) == escaped
    assert tmux_parses(escaped) == (text, False)


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_property_escape_round_trips_through_tmux_rule(text):
    arg, ends = tmux_parses(ks.escape_trailing_semicolon(text))
    assert not ends
    assert arg == text


# ----------------------------------------------------------------------------- dialogs

SCREENS = Path(__file__).parent / "screens"


@pytest.mark.parametrize("name,marker", [
    ("codex-0.169.0-sign-in.txt", "Press enter to continue"),
    ("codex-0.169.0-trust-folder.txt", "enter continue · esc back"),
    ("codex-0.171.0-sign-in.txt", "Press enter to continue"),
    ("codex-0.171.0-trust-folder.txt", "enter continue · esc back"),
])
def test_codex_start_screens_are_dialogs(name, marker):
    """Screens captured from the real codex 0.169.0 and 0.171.0 in a tmux pane (tests/screens/;
    0.171.0's trust screen is the same text): a preview's Enter there would sign in or trust
    the folder on the user's behalf."""
    assert screens.open_dialog((SCREENS / name).read_text()) == marker


def test_claude_code_permission_prompt_is_a_dialog():
    """The shape tests/e2e/test_scenario_dialogs.py meets in the real Claude Code 2.1.330 and 2.1.332."""
    screen = ("Bash command\n\n  npm test\n  Run the tests\n\nDo you want to proceed?\n"
              "❯ 1. Yes\n  2. Yes, and don't ask again for: npm test:*\n  3. No, and tell Claude what to do"
              " differently (esc)\n\nEsc to cancel · Tab to amend\n")
    assert screens.open_dialog(screen) == "Do you want to proceed?"


@pytest.mark.parametrize("screen", [
    # the trust screen once its list lost focus (no cursor row): a quote, not a dialog
    (SCREENS / "codex-0.169.0-trust-folder.txt").read_text().replace("› 1.", "  1."),
    # an agent's markdown: a quoted numbered list and a sentence about keys
    "> 1. Press Enter in the form\n> 2. or Esc to leave it\nDone.\n",
    # the footer far above the cursor (more than DIALOG_SCAN_ROWS rows): scrolled history
    "enter continue · esc back\n" + "output\n" * screens.DIALOG_SCAN_ROWS + "› 1. Trust and continue\n",
    "",
])
def test_not_dialogs(screen):
    assert screens.open_dialog(screen) is None
