"""The dialog detector on real codex 0.171.0 and opencode 1.18.33 screens (tests/screens/,
captured by tests/e2e/test_scenario_openai_screens.py in a tmux pane), beyond the table of
tests/test_screens.py: the captures are what they say, and near-misses are not dialogs.

A preview's Enter into codex's approval prompt would pick "1. Yes, proceed" and run a command
outside the sandbox; into opencode's permission prompt it would press the focused
"Allow once" button. Both must count as dialogs; their working and idle screens must not
(a preview into them is how a member hears of a task)."""

from __future__ import annotations

from pathlib import Path

from cafleet.screens import open_dialog

SCREENS = Path(__file__).parent / "screens"


def screen(name: str) -> str:
    return (SCREENS / name).read_text(encoding="utf-8")


def test_the_captured_screens_are_what_they_say():
    # guards against a re-capture that caught the wrong moment
    assert "Working (" in screen("codex-0.171.0-working.txt")
    assert "esc interrupt" in screen("opencode-1.18.33-working.txt")
    assert "idle now" in screen("codex-0.171.0-idle-after-turn.txt")
    assert "esc interrupt" not in screen("opencode-1.18.33-idle-after-turn.txt")
    assert "› 1. Yes, proceed" in screen("codex-0.171.0-approval.txt")
    assert "Allow once" in screen("opencode-1.18.33-permission.txt")


def test_opencode_prompt_needs_both_its_title_and_its_buttons():
    s = screen("opencode-1.18.33-permission.txt")
    no_title = s.replace("Permission required", "Shell output")
    assert open_dialog(no_title) is None
    no_buttons = s.replace("Allow once", "allowed").replace("Reject", "done")
    assert open_dialog(no_buttons) is None
    # the prompt scrolled away (an agent printed a lot below it): not a live dialog
    assert open_dialog(s + "\n".join(f"line {i}" for i in range(20))) is None


def test_codex_prompt_without_its_cursor_is_not_live():
    s = screen("codex-0.171.0-approval.txt").replace("› 1. Yes, proceed", "  1. Yes, proceed")
    assert open_dialog(s) is None
