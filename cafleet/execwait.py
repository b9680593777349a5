"""`member exec` waits until the command it typed has finished, so the `member ping` that
follows lands in an idle agent instead of in the middle of the command's output.

How the coding agents show a `!` command (observed with real panes, offline, tmux 3.3a):

- Claude Code 2.1.332: `! CMD` + Enter draws `⎿  Running… (Ns)` under the command, and
  the footer reads `… · esc to interrupt · …` while it runs; when it ends, the output
  replaces `Running…` and a model turn starts at once (the output is its user text), with
  the same footer, until the turn ends and the footer reads `? for shortcuts` again.
- codex 0.171.0: `• Running CMD` and `• Working (Ns • esc to interrupt)` while it runs,
  then `• You ran CMD`, its output and `Worked for Ns`; no model turn follows. Typed while
  codex is still starting, the command waits under `• Queued follow-up inputs` first (about
  4 s after start here).

So "finished" is: no busy marker (`esc to interrupt`) and nothing queued, held for
`SETTLE` seconds (a gap between the command and claude's model turn must not count), and
either a busy marker was seen since typing or `START_GRACE` passed (a command so quick that
the marker came and went between two looks). A dialog on screen also ends the wait: the
command is over and the agent now waits for an answer (the caller says so). Pure over a
screen-reading function and a clock, so the rules are tested without tmux; stdlib only.
"""

from __future__ import annotations

import time
from typing import Callable

QUEUED_MARKERS = ("queued follow-up",)
"""Lower-cased text of input an agent has not started yet (codex 0.171.0)."""
SETTLE = 0.8
"""Seconds the screen must look idle in a row before the command counts as finished."""
START_GRACE = 2.0
"""Seconds after which an idle screen counts as finished even if no busy marker was seen."""
INTERVAL = 0.1
DEFAULT_WAIT = 90.0
"""Default seconds `member exec` waits: under the 2-minute default timeout of Claude Code's
Bash tool, which the Director runs it in."""


def busy(screen: str) -> bool:
    """True if the screen shows an agent that is running something: the member state
    `working` (`cafleet.screens.working`: the footer's interrupt hint of Claude Code 2.1.332,
    codex 0.171.0 and opencode 1.18.33, or Claude Code's spinner row)."""
    from cafleet.screens import working

    return working(screen)


def queued(screen: str) -> bool:
    """True if the screen shows input the agent has not started yet (`QUEUED_MARKERS`)."""
    low = screen.lower()
    return any(m in low for m in QUEUED_MARKERS)


def wait_finished(read_screen: Callable[[], str | None], timeout: float, *,
                  dialog: Callable[[str], str | None] = lambda s: None,
                  settle: float = SETTLE, start_grace: float = START_GRACE, interval: float = INTERVAL,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> dict:
    """Watch the screen until the typed command has finished (see module docstring) or
    `timeout` seconds pass. `read_screen` returns the visible screen, or None when the pane
    is gone; `dialog` names a dialog on a screen (e.g. `screens.open_dialog`).

    Returns `{"finished": bool, "waited_s": float, "saw_busy": bool, "dialog": str | None,
    "pane_gone": bool}`; `finished` is False only on timeout.
    """
    start = clock()
    saw_busy = False
    idle_since: float | None = None
    while True:
        now = clock()
        screen = read_screen()
        result = {"finished": True, "waited_s": round(now - start, 2), "saw_busy": saw_busy,
                  "dialog": None, "pane_gone": screen is None}
        if screen is None:
            return result
        marker = dialog(screen)
        if marker:
            return {**result, "dialog": marker}
        if busy(screen) or queued(screen):
            saw_busy = saw_busy or busy(screen)
            idle_since = None
        else:
            if idle_since is None:
                idle_since = now
            if now - idle_since >= settle and (saw_busy or now - start >= start_grace):
                return {**result, "saw_busy": saw_busy}
        if now - start >= timeout:
            return {**result, "finished": False, "saw_busy": saw_busy}
        sleep(interval)
