"""The screen detectors (cafleet/screens.py) on the real screens kept in tests/screens/.

Each file is a visible screen captured from the real client named in its file name
(``<client>-<version>-<what>.txt``); the table says what each must read as. A screen file
without a row fails the last test, so a new capture gets its expected answers written down.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cafleet import screens

SCREENS = Path(__file__).parent / "screens"

# file: (state, open_dialog marker or None, is a send-input choice frame)
EXPECTED = {
    "claude-2.1.332-start.txt": ("idle", None, False),
    "claude-2.1.332-idle.txt": ("idle", None, False),
    "claude-2.1.332-working.txt": ("working", None, False),
    "claude-2.1.332-working-with-draft.txt": ("working", None, False),
    "claude-2.1.332-permission-dialog.txt": ("dialog", "Do you want to proceed?", False),
    "claude-2.1.332-dialog-over-draft.txt": ("dialog", "Do you want to proceed?", False),
    "claude-2.1.332-draft-after-dialog.txt": ("idle", None, False),
    "claude-2.1.332-choice-frame.txt": ("dialog", "Type something.", True),
    "codex-0.169.0-sign-in.txt": ("dialog", "Press enter to continue", False),
    "codex-0.169.0-trust-folder.txt": ("dialog", "enter continue · esc back", False),
    "codex-0.171.0-sign-in.txt": ("dialog", "Press enter to continue", False),
    "codex-0.171.0-idle.txt": ("idle", None, False),
    "codex-0.171.0-draft.txt": ("idle", None, False),
    "opencode-1.18.33-idle.txt": ("idle", None, False),
    "opencode-1.18.33-draft.txt": ("idle", None, False),
}

# A draft the gate typed is recognised in each client's input box (`gate.draft_visible`):
DRAFTS = {
    "claude-2.1.332-draft-after-dialog.txt": "[cafleet] task abc from X (id",
    "codex-0.171.0-draft.txt": "line one",
    "opencode-1.18.33-draft.txt": "hello draft text",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_screens_read_as_expected(name):
    screen = (SCREENS / name).read_text(encoding="utf-8")
    state, marker, frame = EXPECTED[name]
    assert screens.classify(screen) == state
    assert screens.open_dialog(screen) == marker
    assert (screens.choice_frame(screen) is not None) is frame


@pytest.mark.parametrize("name", sorted(DRAFTS))
def test_a_draft_shows_in_each_clients_input_box(name):
    from cafleet import gate

    screen = (SCREENS / name).read_text(encoding="utf-8")
    assert gate.draft_visible(DRAFTS[name], screen)
    idle = name.replace("draft-after-dialog", "idle").replace("draft", "idle")
    assert not gate.draft_visible(DRAFTS[name], (SCREENS / idle).read_text(encoding="utf-8"))


def test_every_kept_screen_has_expectations():
    assert {p.name for p in SCREENS.glob("*.txt")} == set(EXPECTED)


def test_the_claude_choice_frame_is_read_whole():
    frame = screens.choice_frame((SCREENS / "claude-2.1.332-choice-frame.txt").read_text(encoding="utf-8"))
    assert frame.options == {1: "Red", 2: "Green", 3: "Blue", 4: "Type something.", 5: "Chat about this"}
    assert frame.question == "Which colour?"


def test_a_permission_prompt_is_never_a_choice_frame():
    """`send-input` must never answer a permission prompt, whose option 1 approves a command."""
    screen = (SCREENS / "claude-2.1.332-permission-dialog.txt").read_text(encoding="utf-8")
    assert screens.open_dialog(screen) and screens.choice_frame(screen) is None
    forged = screen.replace("3. No", "3. No\n   4. Type something.")
    assert screens.choice_frame(forged) is None


def test_quoted_dialog_text_in_output_is_not_a_dialog():
    body = "the agent printed: Do you want to proceed?\n1. Yes\n4. Type something.\nEsc to cancel\n❯ "
    assert screens.open_dialog(body) is None and screens.classify(body) == "idle"


def test_states_from_process_facts():
    idle = (SCREENS / "claude-2.1.332-idle.txt").read_text(encoding="utf-8")
    assert screens.classify(idle, dead=True) == "exited"
    assert screens.classify(idle, foreground="bash") == "shell"
    assert screens.classify(idle, foreground="-zsh") == "shell"
    assert screens.classify(idle, foreground="claude") == "idle"
    assert not screens.is_shell(None) and not screens.is_shell("node")
