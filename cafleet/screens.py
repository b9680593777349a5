"""What a pane's visible screen shows, as pure functions over its text (stdlib only).

The keystroke gate (`cafleet.gate`) and `member list` read a pane's state from its screen:

* `open_dialog(screen)` -- a choice dialog with focus (a permission prompt, an
  AskUserQuestion frame, codex's trust/sign-in screens): a typed Enter would pick an option.
* `choice_frame(screen)` -- the 4-option frame `member send-input` answers (options 1-3
  and ``4. Type something.``, a selection cursor on one of them).
* `classify(screen, backend, …)` -- the member state: `working`, `idle`, `dialog`,
  `exited`, `shell`.

Each rule names the real screens it was built from; they are kept in ``tests/screens/``
named ``<client>-<version>-<what>.txt`` and every test in tests/test_screens.py runs the
detectors over all of them. Adding a backend's screens: drop its files there, add its
markers to `_DIALOG_MARKERS` / `_WORKING_MARKERS` below, and list the expected answers in
tests/test_screens.py's table.

Nothing here touches tmux, the DB or the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATES = ("working", "idle", "dialog", "exited", "shell")
"""Member states, in the words `member list` prints."""

DIALOG_SCAN_ROWS = 15
"""How many non-blank rows at the bottom of the visible screen the detectors look at."""

_DIALOG_MARKERS = (
    # Claude Code 2.1.330/2.1.332 (tests/screens/claude-2.1.332-*): a permission prompt
    # ("Do you want to proceed?" … "Esc to cancel") and an AskUserQuestion frame
    # ("4. Type something." … "Enter to select").
    "Do you want to proceed?",
    "Type something.",
    "Esc to cancel",
    "Enter to select",
    # codex 0.169.0 (tests/screens/codex-0.169.0-sign-in.txt): "Press enter to continue".
    "Press enter to continue",
)
_PERMISSION_MARKERS = (
    # Claude Code 2.1.332's permission prompt (tests/screens/claude-2.1.332-permission-dialog.txt)
    "Do you want to proceed?",
)
"""A dialog showing one of these asks to approve a command: never a choice frame."""
_KEY_HINT = re.compile(r"\benter\b.*\besc\b|\besc\b.*\benter\b", re.IGNORECASE)
"""A footer naming both keys of a choice list: Claude Code's "Enter to select · … · Esc to
cancel", codex 0.169.0's trust-folder "enter continue · esc back"."""
_OPTION_CURSOR = re.compile(r"^\s*[❯›▶>]\s*\d+\.\s")
"""A selection cursor on a numbered option: `❯ 1. Yes` (Claude Code), `› 1. Trust and
continue` and `> 1. Sign in with ChatGPT` (codex 0.169.0): a choice list has focus."""
_OPTION = re.compile(r"^\s*(?:[❯›▶>]\s*)?(\d+)\.\s+(\S.*?)\s*$")

_WORKING_MARKERS = (
    # Claude Code 2.1.332 while a turn runs: "✻ Thinking… (3s · esc to interrupt)".
    "esc to interrupt",
    # codex's "• Working (2s • esc to interrupt)" uses the same words (codex's public
    # source; its model-turn screens are not kept yet).
)

SHELLS = frozenset({"sh", "bash", "zsh", "fish", "dash", "ksh", "mksh", "tcsh", "csh", "ash",
                    "nu", "xonsh", "elvish", "pwsh", "login"})
"""Process names that mean "a shell has the pane": the agent is gone (or never started)."""


def _bottom_rows(screen: str) -> list[str]:
    return [r for r in screen.splitlines() if r.strip()][-DIALOG_SCAN_ROWS:]


def open_dialog(screen: str) -> str | None:
    """The dialog a pane's visible screen shows, or None.

    Typing into a pane that shows a choice dialog is not inert: the text is dropped and the
    Enter picks the focused option (a permission prompt's "1. Yes", codex's "1. Trust and
    continue"). A live dialog is recognised by its structure, not by a phrase alone (a
    message body or an agent's output may quote one): among the last `DIALOG_SCAN_ROWS`
    non-blank rows of the visible screen (no history) there is a selection cursor on a
    numbered option (`❯ 1. Yes`) and, on another row, a dialog marker (`Esc to cancel`,
    `Do you want to proceed?`, `Type something.`, `Enter to select`, `Press enter to
    continue`) or a key footer naming both Enter and Esc. Returns the marker found (for a
    footer: its text, at most 80 characters). Built from Claude Code 2.1.332's permission
    prompt and AskUserQuestion frame and codex 0.169.0's start screens; the stand-in agent
    draws its frames the same way. opencode's and codex's approval prompts are not yet kept.
    """
    rows = _bottom_rows(screen)
    cursors = {i for i, r in enumerate(rows) if _OPTION_CURSOR.match(r)}
    if not cursors:
        return None
    for i, row in enumerate(rows):
        if i in cursors:
            continue
        for marker in _DIALOG_MARKERS:
            if marker in row:
                return marker
        if _KEY_HINT.search(row):
            return row.strip()[:80]
    return None


@dataclass(frozen=True)
class ChoiceFrame:
    """A 4-option choice frame on screen: ``options`` maps 1-4 to their labels."""

    options: dict[int, str]
    question: str | None


def choice_frame(screen: str) -> ChoiceFrame | None:
    """The 4-option choice frame `member send-input` answers, or None.

    It is an open dialog (see `open_dialog`) whose numbered options, read top to bottom in
    the bottom rows, are 1, 2, 3, 4 with option 4 ``Type something.`` (Claude Code 2.1.332's
    AskUserQuestion with three options, which adds ``5. Chat about this`` below a rule; the
    stand-in's frame). A permission prompt
    (``1. Yes`` / ``2. …`` / ``3. No``) is not one: `send-input` must never approve a
    command, so a screen with a permission marker (`_PERMISSION_MARKERS`) never is one. The
    question is the nearest non-option row above option 1 (or None).
    """
    if open_dialog(screen) is None:
        return None
    rows = _bottom_rows(screen)
    if any(marker in row for row in rows for marker in _PERMISSION_MARKERS):
        return None
    options: dict[int, str] = {}
    first = None
    for i, row in enumerate(rows):
        m = _OPTION.match(row)
        if m:
            n = int(m.group(1))
            if n == len(options) + 1:
                options[n] = m.group(2)
                first = i if first is None else first
            elif n == 1:  # a second list started lower down: keep the lowest one
                options, first = {1: m.group(2)}, i
    if sorted(options)[:4] != [1, 2, 3, 4] or len(options) > 5 or not options[4].startswith("Type something"):
        return None
    question = None
    for row in reversed(rows[:first]):
        text = row.strip(" │╭╮╰╯─")
        if text:
            question = text[:200]
            break
    return ChoiceFrame(options=options, question=question)


_SPINNER = re.compile(r"^\s*[✻✢✳✶✽✺∗*·]\s+[A-Z][\w'-]*(?: [\w'-]+)*…")
"""Claude Code 2.1.332's status row while a turn runs: a spinner glyph and a gerund with an
ellipsis ("✢ Flibbertigibbeting…", "✻ Generating…"); once done it reads "✻ Brewed for 6s".
With a draft in the input box the footer drops "esc to interrupt" but keeps this row
(tests/screens/claude-2.1.332-working-with-draft.txt)."""


def working(screen: str) -> bool:
    """True when the bottom rows show the agent mid-turn ("esc to interrupt" or a spinner
    row: Claude Code 2.1.332; "esc to interrupt": codex 0.171.0)."""
    rows = _bottom_rows(screen)
    return any(marker in row.lower() for row in rows for marker in _WORKING_MARKERS) or any(
        _SPINNER.match(row) for row in rows)


def is_shell(command: str | None) -> bool:
    """True when a process name (``/proc/PID/comm``, tmux's ``#{pane_current_command}``)
    is a shell; a login shell's leading ``-`` is ignored."""
    return bool(command) and command.lstrip("-") in SHELLS


def classify(screen: str, *, dead: bool = False, foreground: str | None = None) -> str:
    """The member state of a pane, one of `STATES`.

    `dead`: tmux reports the pane's process ended (``#{pane_dead}``, kept by
    ``remain-on-exit``) -> ``exited``. `foreground`: the name of the pane's foreground
    process; a shell there -> ``shell``. Otherwise from the screen: an open dialog ->
    ``dialog``, a turn running -> ``working``, else ``idle``.
    """
    if dead:
        return "exited"
    if is_shell(foreground):
        return "shell"
    if open_dialog(screen) is not None:
        return "dialog"
    if working(screen):
        return "working"
    return "idle"


def describe(state: str, screen: str) -> str:
    """A few words on what a pane shows, for an error message: the state and, for a dialog,
    its marker."""
    if state == "dialog":
        return f"a dialog ({open_dialog(screen)!r})"
    return {"working": "the agent working on a turn", "idle": "the agent's input box, no choice frame",
            "exited": "an agent that has exited", "shell": "a shell (the agent is gone)"}.get(state, state)
