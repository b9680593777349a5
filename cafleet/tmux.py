"""The tmux seam: every tmux command cafleet runs goes through this module.

Each call addresses one tmux server by its socket path (``tmux -S PATH``, the first comma
field of ``$TMUX``), so a command works the same from any pane, from outside tmux, and
against a private test server (``tmux -L name``). Commands run through libtmux's
``Server(socket_path=...).cmd(...)``, one tmux client process per call, always as an argv
list: nothing here builds a shell string. The keys typed into a pane are `cafleet.sendkeys`,
which only the keystroke gate (`cafleet.gate`) uses.

Facts about tmux 3.3a this module relies on (each is covered by tests/test_tmux.py):

* tmux's argument parser treats an argument ending in ``;`` as a command separator and
  drops the ``;`` -- for every command and every argument (``send-keys -l "a;"`` types
  ``a``; ``split-window -e "K=v;"`` ends the command early). `_run` escapes a final ``;`` of
  every argument as ``\\;`` (`cafleet.keystrokes.escape_trailing_semicolon`).
* ``display-message -p -t %N`` does NOT fail for a pane that does not exist: it prints the
  format with every field empty. Pane lookups therefore print ``#{pane_id}`` first and treat
  an empty one as "gone".
* ``split-window`` with ONE command argument runs it with ``$SHELL -c``; with two or more it
  ``execvp``s them directly. A one-item argv is therefore started as ``env -- ITEM``.
* ``split-window -c DIR`` expands DIR as a format (``#{...}``) and silently falls back to
  another directory when DIR does not exist; `split_window` escapes ``#`` and checks DIR.

Errors: `cafleet.errors.TmuxError` (exit 1) for a missing ``tmux`` binary, an unreachable
server or a failed command; its subclass `TargetGone` when the server is not running or the
pane/window does not exist. No libtmux exception escapes. libtmux is imported lazily (it
costs ~80 ms), so importing this module is cheap.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cafleet.errors import TmuxError, UsageError
from cafleet.keystrokes import escape_trailing_semicolon

#: Layout applied by `rebalance`: ``tiled`` (tmux(1) select-layout) gives every pane an
#: equal share of the window in a grid, so each member TUI stays usable however many there
#: are, needs no window option and no pane swaps, and never moves the active pane. (In
#: ``main-vertical`` the main pane is the window's first pane and the others share one
#: column, which gets unusably short past three members.)
LAYOUT = "tiled"

_PANE_ID = re.compile(r"%[0-9]+\Z")
_WINDOW_ID = re.compile(r"@[0-9]+\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# stderr of a tmux client whose server or target is gone (tmux 3.3a wording).
_GONE_MARKERS = (
    "no server running",
    "error connecting to",
    "server exited",
    "can't find pane",
    "can't find window",
    "can't find session",
    "no such pane",
    "no such window",
)

__all__ = [
    "LAYOUT",
    "PaneInfo",
    "PaneRef",
    "TargetGone",
    "capture",
    "current_pane",
    "kill_pane",
    "list_panes",
    "pane_alive",
    "pane_current_command",
    "pane_info",
    "pane_pid",
    "rebalance",
    "server_alive",
    "socket_path_from_env",
    "split_window",
    "tmux_available",
    "wait_pane_dead",
    "wait_until",
]


class TargetGone(TmuxError):
    """The tmux server is not running, or the pane/window named does not exist (any more)."""

    code = "tmux_gone"


@dataclass(frozen=True)
class PaneRef:
    """Where a pane lives: ``socket_path`` (absolute path of the tmux server socket),
    ``session_name``, ``window_id`` (``@N``) and ``pane_id`` (``%N``)."""

    socket_path: str
    session_name: str
    window_id: str
    pane_id: str


@dataclass(frozen=True)
class PaneInfo:
    """A pane's state at one moment (tmux formats of the same names).

    ``dead`` is ``#{pane_dead}`` (the process exited and the pane is kept by
    ``remain-on-exit``); ``dead_status`` is ``#{pane_dead_status}``, the exit status of a
    dead pane's process (None while it runs, after a signal, or when tmux 3.3a missed it);
    ``pid`` is ``#{pane_pid}`` (None if tmux reports none);
    ``current_command`` is ``#{pane_current_command}``; ``width``/``height`` in cells.
    """

    pane_id: str
    window_id: str
    session_name: str
    dead: bool
    dead_status: int | None
    pid: int | None
    current_command: str
    width: int
    height: int


# --------------------------------------------------------------------------- plumbing


def tmux_available() -> bool:
    """True when a ``tmux`` binary is on PATH."""
    return shutil.which("tmux") is not None


def _check_pane_id(pane_id: str) -> str:
    if not isinstance(pane_id, str) or not _PANE_ID.match(pane_id):
        raise TmuxError(f"not a tmux pane id: {pane_id!r} (expected %N)")
    return pane_id


def _check_window_id(window_id: str) -> str:
    if not isinstance(window_id, str) or not _WINDOW_ID.match(window_id):
        raise TmuxError(f"not a tmux window id: {window_id!r} (expected @N)")
    return window_id


SEP = object()
"""An argument of `_run` that tmux reads as its command separator (a bare ``;``), so one
tmux client runs several commands; any other argument's final ``;`` is escaped."""


def _run(socket_path: str, *args: str) -> list[str]:
    """Run ``tmux -S socket_path ARGS...``; return its stdout lines (trailing blanks cut).

    Every argument gets its final ``;`` escaped (see module docstring). Raises `TargetGone`
    when the server or the target is gone, `TmuxError` for any other failure.
    """
    if not socket_path:
        raise TmuxError("no tmux socket path given")
    try:
        import libtmux
        from libtmux import exc as libtmux_exc
    except ImportError as e:  # pragma: no cover - libtmux is a dependency
        raise TmuxError(f"libtmux is not importable: {e}") from None
    argv = [";" if a is SEP else escape_trailing_semicolon(str(a)) for a in args]
    try:
        proc = libtmux.Server(socket_path=socket_path).cmd(*argv)
    except libtmux_exc.TmuxCommandNotFound:
        raise TmuxError("tmux is not installed (no `tmux` binary on PATH)") from None
    except (OSError, ValueError, UnicodeError) as e:
        raise TmuxError(f"could not run tmux {args[0]}: {e}") from None
    except libtmux_exc.LibTmuxException as e:  # pragma: no cover - defensive
        raise TmuxError(f"tmux {args[0]} failed: {e}") from None
    if proc.returncode != 0:
        stderr = " ".join(proc.stderr).strip()
        message = stderr or f"exit status {proc.returncode}"
        lowered = message.lower()
        # "error connecting to SOCKET (Permission denied)": the server is there but this
        # process may not reach it (a codex member's sandbox), which is not "gone"
        denied = "permission denied" in lowered or "operation not permitted" in lowered
        if not denied and any(marker in lowered for marker in _GONE_MARKERS):
            raise TargetGone(f"tmux {args[0]} (socket {socket_path}): {message}")
        raise TmuxError(f"tmux {args[0]} failed (socket {socket_path}): {message}")
    return list(proc.stdout)


# --------------------------------------------------------------------------- lookups


_INFO_FIELDS = (
    "pane_id",
    "window_id",
    "pane_dead",
    "pane_dead_status",
    "pane_pid",
    "pane_width",
    "pane_height",
    "pane_current_command",
    "session_name",  # last: the only free-form field
)
_INFO_FORMAT = "\t".join("#{%s}" % f for f in _INFO_FIELDS)


def _int_or(value: str, default: int | None) -> int | None:
    try:
        return int(value)
    except ValueError:
        return default


def _display(socket_path: str, pane_id: str, fields: tuple[str, ...], fmt: str,
             *more: str) -> tuple[dict[str, str], list[str]] | None:
    """Run ``display-message -p -t %N FMT`` (plus `more`, further tmux commands after a ``;``
    in the same client) and split its first line, tab-separated, into `fields`. Returns
    (field -> value, the output lines after the first), or None when the pane or its server
    is gone: a missing pane prints every field empty, no error (see module docstring)."""
    _check_pane_id(pane_id)
    try:
        out = _run(socket_path, "display-message", "-p", "-t", pane_id, fmt, *more)
    except TargetGone:
        return None
    values = out[0].split("\t", len(fields) - 1) if out else []
    if len(values) != len(fields) or values[0] != pane_id:
        return None
    return dict(zip(fields, values)), out[1:]


def pane_info(socket_path: str, pane_id: str) -> PaneInfo | None:
    """Current state of a pane, or None when the pane or its server is gone.

    Uses ``display-message -p -t %N FORMAT`` (tmux(1) display-message: ``-p`` prints to
    stdout, ``-t`` target pane). Raises `TmuxError` when tmux is missing or fails otherwise.
    """
    found = _display(socket_path, pane_id, _INFO_FIELDS, _INFO_FORMAT)
    if found is None:
        return None
    values, _ = found
    return PaneInfo(
        pane_id=values["pane_id"],
        window_id=values["window_id"],
        session_name=values["session_name"],
        dead=values["pane_dead"] == "1",
        dead_status=_int_or(values["pane_dead_status"], None),
        pid=_int_or(values["pane_pid"], None),
        current_command=values["pane_current_command"],
        width=_int_or(values["pane_width"], 0) or 0,
        height=_int_or(values["pane_height"], 0) or 0,
    )


def socket_path_from_env(environ: Mapping[str, str] = os.environ) -> str | None:
    """The tmux socket path from ``$TMUX`` (``<socket_path>,<server_pid>,<session>``):
    its first comma field, or None when ``$TMUX`` is unset or empty."""
    value = environ.get("TMUX", "")
    socket_path = value.split(",", 1)[0].strip()
    return socket_path or None


def current_pane(environ: Mapping[str, str] = os.environ) -> PaneRef | None:
    """The pane this process runs in, from ``$TMUX`` and ``$TMUX_PANE``.

    Returns None outside tmux (either variable unset or empty). Session name and window id
    are looked up live on the server (the session id in ``$TMUX`` goes stale when a window
    moves). Raises `TargetGone` when the server or that pane no longer exists, `TmuxError`
    for a malformed ``$TMUX_PANE`` or when tmux is missing.
    """
    socket_path = socket_path_from_env(environ)
    pane_id = environ.get("TMUX_PANE", "").strip()
    if socket_path is None or not pane_id:
        return None
    if not _PANE_ID.match(pane_id):
        raise TmuxError(f"$TMUX_PANE is not a tmux pane id: {pane_id!r}")
    info = pane_info(socket_path, pane_id)
    if info is None:
        raise TargetGone(
            f"$TMUX_PANE {pane_id} is not a pane of the tmux server at {socket_path} "
            "(the server or the pane is gone)"
        )
    return PaneRef(socket_path, info.session_name, info.window_id, info.pane_id)


def pane_alive(socket_path: str, pane_id: str) -> bool:
    """True when the pane exists and its process is running.

    False when the server is not running, the pane does not exist, or the pane is kept
    dead by ``remain-on-exit`` (``#{pane_dead}`` is 1). Raises `TmuxError` when tmux is
    missing or fails for another reason.
    """
    info = pane_info(socket_path, pane_id)
    return info is not None and not info.dead


def pane_pid(socket_path: str, pane_id: str) -> int | None:
    """``#{pane_pid}``: pid of the pane's first process, or None if the pane is gone."""
    info = pane_info(socket_path, pane_id)
    return None if info is None else info.pid


def pane_current_command(socket_path: str, pane_id: str) -> str | None:
    """``#{pane_current_command}`` (name of the pane's foreground process), or None if gone."""
    info = pane_info(socket_path, pane_id)
    return None if info is None else info.current_command


def server_alive(socket_path: str) -> bool:
    """True when a tmux server answers on `socket_path` (``list-sessions`` succeeds)."""
    try:
        _run(socket_path, "list-sessions", "-F", "#{session_id}")
    except TargetGone:
        return False
    return True


def list_panes(socket_path: str, window_id: str) -> list[str]:
    """Pane ids (``%N``) of a window, in pane-index order; [] when the window is gone.

    ``list-panes -t @N -F #{pane_id}`` (tmux(1) list-panes).
    """
    _check_window_id(window_id)
    try:
        out = _run(socket_path, "list-panes", "-t", window_id, "-F", "#{pane_id}")
    except TargetGone:
        return []
    return [line for line in out if line]


# --------------------------------------------------------------------------- panes


def _split(director: PaneRef, horizontal: bool, tail: list[str], path: str | None = None) -> list[str]:
    """Run split-window. tmux 3.3a (checked: `-e PATH=X` loses to the client's PATH) gives a
    new pane the PATH of the unattached tmux client that asked for it, so with `path` the
    client runs with PATH=`path` (os.environ is swapped for the call: libtmux runs tmux with
    this process's environment)."""
    argv = ("split-window", "-h" if horizontal else "-v", "-d", "-P", "-F",
            "#{pane_id}\t#{window_id}\t#{session_name}", "-t", director.pane_id, *tail)
    if path is None:
        return _run(director.socket_path, *argv)
    saved = os.environ.get("PATH")
    os.environ["PATH"] = path
    try:
        return _run(director.socket_path, *argv)
    finally:
        if saved is None:
            del os.environ["PATH"]
        else:
            os.environ["PATH"] = saved


def split_window(
    director: PaneRef,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    keep_on_exit: bool = False,
) -> PaneRef:
    """Split the Director's pane and start `argv` in the new pane; return the new pane.

    With `keep_on_exit` the new pane is born with ``remain-on-exit on``, so the output of a
    process that exits at once can still be captured: the window option is set for the
    split and restored to exactly what it was right after (the new pane keeps its own
    pane-level copy); for those few milliseconds another pane of the window that ends would
    also be kept.

    tmux(1) split-window flags: ``-d`` (the new pane is not made active), ``-P -F FORMAT``
    (print the new pane's id, window id and session), ``-t`` (the Director's pane), ``-h``
    or ``-v`` (side by side when the Director's pane is at least twice as wide as tall in
    cells, else stacked), ``-c DIR`` (working directory; ``#`` escaped as ``##`` because tmux
    expands it as a format), ``-e NAME=VALUE`` (one per `env` item, added to the server's
    global environment for that process), then ``--`` and `argv` as separate arguments, so
    tmux ``execvp``s it with no shell (a one-item argv becomes ``env -- ITEM``, because tmux
    runs a single command argument with ``$SHELL -c``). The child's environment is the tmux
    server's global environment plus `env` -- not the caller's environment -- except PATH,
    which tmux takes from the client that runs split-window: `env["PATH"]`, when given, is
    made that client's PATH (see `_split`).

    If the window has no space for another pane, the window is rebalanced (`LAYOUT`) and
    the split retried once. Raises `TargetGone` when the Director's pane or server is gone,
    `TmuxError` when `cwd` is not a directory or tmux fails; `ValueError` for an empty
    `argv` or a malformed environment name.
    """
    if not argv:
        raise ValueError("split_window needs a command (argv is empty)")
    _check_pane_id(director.pane_id)
    tail: list[str] = []
    if cwd is not None:
        if not os.path.isdir(cwd):
            raise TmuxError(f"working directory for the new pane does not exist: {cwd}")
        tail += ["-c", os.path.abspath(cwd).replace("#", "##")]
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"not an environment variable name: {name!r}")
        tail += ["-e", f"{name}={value}"]
    command = list(argv)
    if len(command) == 1:
        command = ["env", "--", command[0]]
    tail += ["--", *command]

    info = pane_info(director.socket_path, director.pane_id)
    if info is None:
        raise TargetGone(
            f"the Director's pane {director.pane_id} is gone (socket {director.socket_path})"
        )
    horizontal = info.width >= 2 * info.height
    if keep_on_exit:
        window_value = _run(director.socket_path, "show-options", "-w", "-q", "-v", "-t", info.window_id,
                            "remain-on-exit")
        _run(director.socket_path, "set-option", "-w", "-t", info.window_id, "remain-on-exit", "on")
        try:
            new = split_window(director, argv, env, cwd)
            set_remain_on_exit(director.socket_path, new.pane_id, True)
        finally:
            if window_value and window_value[0]:
                _run(director.socket_path, "set-option", "-w", "-t", info.window_id, "remain-on-exit",
                     window_value[0])
            else:
                _run(director.socket_path, "set-option", "-w", "-u", "-t", info.window_id, "remain-on-exit")
        return new
    try:
        out = _split(director, horizontal, tail, env.get("PATH"))
    except TargetGone:
        raise
    except TmuxError as e:
        if "no space for new pane" not in str(e):
            raise
        rebalance(director.socket_path, info.window_id)
        try:
            out = _split(director, horizontal, tail, env.get("PATH"))
        except TmuxError as again:
            if "no space for new pane" not in str(again):
                raise
            raise TmuxError(
                f"no space for another pane in window {info.window_id} "
                f"({len(list_panes(director.socket_path, info.window_id))} panes); "
                "make the terminal larger or delete a member"
            ) from None
    fields = out[0].split("\t", 2) if out else []
    if len(fields) != 3 or not _PANE_ID.match(fields[0]):
        raise TmuxError(f"tmux split-window printed no pane id: {out!r}")
    return PaneRef(
        socket_path=director.socket_path,
        session_name=fields[2],
        window_id=fields[1],
        pane_id=fields[0],
    )


def capture(socket_path: str, pane_id: str, lines: int) -> str:
    """The last `lines` lines of the pane's text (history + visible screen), as one string.

    ``capture-pane -p -J -t %N -S -LINES`` (tmux(1) capture-pane: ``-p`` to stdout, ``-J``
    join lines the pane wrapped at its width, so a long line or a UUID comes back whole,
    ``-S`` start line, negative = into the history), then trailing blank lines are dropped (a
    screen is padded with empty rows below its content) before the last `lines` lines are
    kept. Lines are joined with ``\\n``; no trailing newline; no escape sequences; trailing
    spaces of each line trimmed by tmux. A dead pane kept by ``remain-on-exit`` can still
    be captured. Raises `UsageError` for ``lines < 1``, `TargetGone` if the pane or server
    is gone, `TmuxError` otherwise.
    """
    if not isinstance(lines, int) or lines < 1:
        raise UsageError(f"--lines must be a positive number of lines, not {lines!r}")
    _check_pane_id(pane_id)
    out = _run(socket_path, "capture-pane", "-p", "-J", "-t", pane_id, "-S", f"-{lines}")
    rows = [row.rstrip() for row in out]
    while rows and not rows[-1]:
        rows.pop()
    return "\n".join(rows[-lines:])


def screen(socket_path: str, pane_id: str) -> str:
    """The pane's visible screen only (no history): ``capture-pane -p -t %N``. Trailing
    blank rows kept out. Raises `TargetGone` / `TmuxError` like `capture`."""
    _check_pane_id(pane_id)
    rows = [row.rstrip() for row in _run(socket_path, "capture-pane", "-p", "-t", pane_id)]
    while rows and not rows[-1]:
        rows.pop()
    return "\n".join(rows)


def set_remain_on_exit(socket_path: str, pane_id: str, on: bool) -> bool:
    """Keep (``on``) or close (off) the pane when its process exits: the pane option
    ``remain-on-exit`` (tmux(1) OPTIONS, ``set-option -p -t %N``). A kept pane shows
    ``#{pane_dead}`` 1 and can still be captured. Returns False if the pane is gone."""
    _check_pane_id(pane_id)
    try:
        _run(socket_path, "set-option", "-p", "-t", pane_id, "remain-on-exit", "on" if on else "off")
    except TargetGone:
        return False
    return True


def kill_pane(socket_path: str, pane_id: str) -> bool:
    """Kill the pane and its process: ``kill-pane -t %N``. True if a pane was killed, False
    if the pane or server was already gone. Killing a window's last pane closes the window
    (and an empty session/server ends). Raises `TmuxError` if tmux is missing or fails."""
    _check_pane_id(pane_id)
    try:
        _run(socket_path, "kill-pane", "-t", pane_id)
    except TargetGone:
        return False
    return True


def rebalance(socket_path: str, window_id: str) -> bool:
    """Re-arrange the window's panes with `LAYOUT` (``select-layout -t @N tiled``).

    Does not change the active pane. Returns True when applied, False when the window or
    server is gone (nothing to arrange). Raises `TmuxError` if tmux is missing or fails.
    """
    _check_window_id(window_id)
    try:
        _run(socket_path, "select-layout", "-t", window_id, LAYOUT)
    except TargetGone:
        return False
    return True


# --------------------------------------------------------------------------- waiting


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05
) -> bool:
    """Call `predicate` every `interval` seconds until it returns true or `timeout` seconds
    have passed (monotonic clock). Returns the last result; `predicate` runs at least once
    and once more at the deadline."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))


def wait_pane_dead(socket_path: str, pane_id: str, timeout: float, interval: float = 0.1) -> bool:
    """Wait up to `timeout` seconds for the pane to be gone or dead; True if it is."""
    return wait_until(lambda: not pane_alive(socket_path, pane_id), timeout, interval)


# --------------------------------------------------------------------------- the gate's view

TAG_OPTION = "@cafleet-agent"
"""The tmux pane user option (tmux(1) OPTIONS, ``@name``; pane options since tmux 3.0) that
holds the agent id of the pane cafleet made for that agent. tmux's own state: a process that
can write the DB but cannot reach the tmux socket (a codex member's sandbox) cannot forge it."""

_VIEW_FIELDS = ("pane_id", "pane_dead", "pane_dead_status", "pane_pid", "pid", "pane_current_command",
                TAG_OPTION[1:])
_VIEW_FORMAT = "\t".join("#{%s}" % (f if f != TAG_OPTION[1:] else TAG_OPTION) for f in _VIEW_FIELDS)


@dataclass(frozen=True)
class PaneView:
    """A pane's facts and visible screen read in ONE tmux client call (`pane_view`).

    ``dead``/``dead_status``/``pid`` as in `PaneInfo`; ``current_command`` is
    ``#{pane_current_command}``, the name of the pane's foreground process (tmux asks the
    kernel for the tty's foreground process group); ``tag`` is the `TAG_OPTION` value ("" when
    unset); ``screen`` the visible screen as `screen` returns it; ``server_pid`` is ``#{pid}``,
    the tmux server's process."""

    pane_id: str
    dead: bool
    dead_status: int | None
    pid: int | None
    current_command: str
    tag: str
    screen: str
    server_pid: int | None = None


def pane_view(socket_path: str, pane_id: str) -> PaneView | None:
    """The pane's `PaneView`, or None when the pane or its server is gone.

    One tmux client runs ``display-message -p -t %N FORMAT ; capture-pane -p -t %N`` (two
    commands joined by tmux's ``;`` separator). Raises `TmuxError` if tmux is missing or fails.
    """
    found = _display(socket_path, pane_id, _VIEW_FIELDS, _VIEW_FORMAT, SEP, "capture-pane", "-p", "-t", pane_id)
    if found is None:
        return None
    v, rest = found
    rows = [row.rstrip() for row in rest]
    while rows and not rows[-1]:
        rows.pop()
    return PaneView(pane_id=pane_id, dead=v["pane_dead"] == "1",
                    dead_status=_int_or(v["pane_dead_status"], None), pid=_int_or(v["pane_pid"], None),
                    current_command=v["pane_current_command"], tag=v[TAG_OPTION[1:]], screen="\n".join(rows),
                    server_pid=_int_or(v["pid"], None))


def set_pane_tag(socket_path: str, pane_id: str, agent_id: str) -> None:
    """Tag the pane as `agent_id`'s: ``set-option -p -t %N @cafleet-agent ID``. Raises
    `TargetGone` if the pane is gone, `TmuxError` otherwise."""
    _check_pane_id(pane_id)
    _run(socket_path, "set-option", "-p", "-t", pane_id, TAG_OPTION, agent_id)


def set_exit_hook(socket_path: str, pane_id: str, shell_command: str) -> None:
    """Run `shell_command` (with ``/bin/sh -c``, in the background) when the pane's process
    exits: ``set-option -p remain-on-exit on`` then ``set-hook -p -t %N pane-died 'run-shell
    -b CMD'`` (tmux(1) HOOKS: ``pane-died`` runs when a pane's program exits and
    remain-on-exit keeps the pane; checked on tmux 3.3a). The pane stays, dead, with its last
    screen, until killed. ``#`` in the command is escaped (tmux expands formats in run-shell).
    Raises `TargetGone` / `TmuxError`."""
    _check_pane_id(pane_id)
    _run(socket_path, "set-option", "-p", "-t", pane_id, "remain-on-exit", "on")
    _run(socket_path, "set-hook", "-p", "-t", pane_id, "pane-died",
         "run-shell -b " + _tmux_quote(shell_command.replace("#", "##")))


def _tmux_quote(text: str) -> str:
    """`text` as one single-quoted word of a tmux command line (tmux(1) PARSING SYNTAX: no
    escapes inside single quotes, so a ``'`` closes, is escaped outside, and reopens)."""
    return "'" + text.replace("'", "'\\''") + "'"
