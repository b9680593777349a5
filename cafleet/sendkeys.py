"""The keys cafleet types into a pane: tmux ``send-keys`` for literal text, Enter and Backspace.

Only `cafleet.gate` may import this module. The gate decides whether a pane may receive keys
(its identity, its foreground program, what its screen shows) and then types through these
primitives; no other cafleet module sends keys, so no keystroke can skip that decision
(tests/test_sendkeys.py fails when another cafleet module imports this one or runs
``send-keys``). bench/gate_cost.py calls `type_line` directly as its ungated baseline.

Every command runs through `cafleet.tmux` (``tmux -S SOCKET``, one client per call, a final
``;`` of every argument escaped). Facts about tmux 3.3a these functions rely on (each is
covered by tests/test_sendkeys.py):

* ``send-keys`` to a pane that is dead but kept (``remain-on-exit``) succeeds silently.
* A pane in a mode (copy mode after a mouse scroll, clock mode, ...) swallows
  ``send-keys`` input, literal text and Enter alike. `send_literal` and `send_enter` first
  run ``copy-mode -q -t %N`` (cancels any mode; a no-op when none is active).
* One tmux command line is limited to about 16 KiB (``command too long``); `send_literal`
  sends long text in chunks.

Errors: `cafleet.errors.TmuxError`, `cafleet.tmux.TargetGone` when the pane or server is gone.
"""

from __future__ import annotations

import time

from cafleet import tmux

#: Seconds between the literal text and its Enter in `type_line`. TUIs coalesce a burst of
#: input into a "paste" and may treat an Enter that arrives inside it as a newline, not as
#: submit: codex keeps a 120 ms paste-burst window, Claude Code commits a bracketed paste
#: after 100 ms of quiet. Observed with Claude Code 2.1.330 and 2.1.332 + tmux 3.3a: a separate
#: send-keys Enter submitted the 2-line push as one message at every delay tried (0 to
#: 0.3 s), so the delay is for codex-like TUIs and a loaded machine (tmux writes to the pane
#: asynchronously). 0.3 s clears 120 ms with margin and keeps a broadcast quick.
ENTER_DELAY = 0.3

#: Largest UTF-8 size of one ``send-keys -l`` argument; tmux refuses a command line of
#: about 16 KiB or more with "command too long".
MAX_SEND_BYTES = 8192

__all__ = [
    "ENTER_DELAY",
    "MAX_SEND_BYTES",
    "send_backspaces",
    "send_enter",
    "send_literal",
    "type_line",
]


def _chunks(text: str, max_bytes: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode("utf-8", "surrogatepass"))
        if current and size + n > max_bytes:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += n
    if current:
        chunks.append("".join(current))
    return chunks


def _out_of_mode(socket_path: str, pane_id: str, *command: str) -> None:
    """``copy-mode -q -t %N ; COMMAND`` in one tmux client (tmux(1) copy-mode ``-q``: cancel
    copy mode and any other mode; does nothing when the pane is in no mode), then `command`."""
    tmux._run(socket_path, "copy-mode", "-q", "-t", pane_id, tmux.SEP, *command)


def send_literal(socket_path: str, pane_id: str, text: str) -> None:
    """Type `text` into the pane exactly as given: ``send-keys -l -t %N -- TEXT``.

    tmux(1) send-keys ``-l``: the argument is typed as literal UTF-8 characters, key names
    (``Enter``, ``C-c``) are not looked up. ``--`` ends the flags, so text may start with
    ``-``. A final ``;`` is escaped (see `cafleet.tmux`). Text over `MAX_SEND_BYTES`
    bytes is sent as several send-keys commands. Control characters in `text` ARE typed
    (``\\n`` arrives as LF, ``\\x03`` as a C-c byte): sanitise with `cafleet.keystrokes`
    first. Empty text sends nothing. A mode the pane is in (copy mode after the user
    scrolled, ...) is cancelled first (``copy-mode -q``), else tmux would swallow the keys.
    Raises `TargetGone` if the pane or server is gone (a dead pane kept by
    ``remain-on-exit`` silently swallows the keys), `TmuxError` else.
    """
    tmux._check_pane_id(pane_id)
    if not text:
        return
    for i, chunk in enumerate(_chunks(text, MAX_SEND_BYTES)):
        keys = ("send-keys", "-t", pane_id, "-l", "--", chunk)
        if i == 0:
            _out_of_mode(socket_path, pane_id, *keys)
        else:
            tmux._run(socket_path, *keys)


def send_enter(socket_path: str, pane_id: str) -> None:
    """Press Enter in the pane: ``send-keys -t %N Enter`` (tmux key name, CR), after
    cancelling any mode like `send_literal`. Errors as `send_literal`."""
    tmux._check_pane_id(pane_id)
    _out_of_mode(socket_path, pane_id, "send-keys", "-t", pane_id, "Enter")


def type_line(
    socket_path: str, pane_id: str, text: str, enter_delay: float = ENTER_DELAY
) -> None:
    """Type `text` literally, wait `enter_delay` seconds, then press Enter.

    Enter is a separate ``send-keys`` after the pause so a TUI that coalesces fast input
    into a paste submits instead of inserting a newline (see `ENTER_DELAY`). Errors as
    `send_literal`.
    """
    send_literal(socket_path, pane_id, text)
    if enter_delay > 0:
        time.sleep(enter_delay)
    send_enter(socket_path, pane_id)


def send_backspaces(socket_path: str, pane_id: str, count: int) -> None:
    """Press Backspace `count` times: ``send-keys -t %N -N COUNT BSpace`` (tmux(1) send-keys
    ``-N`` repeat count). Takes typed text back out of an input box. Errors as `send_literal`."""
    tmux._check_pane_id(pane_id)
    if count > 0:
        _out_of_mode(socket_path, pane_id, "send-keys", "-t", pane_id, "-N", str(count), "BSpace")
