"""The keystroke protocol as pure functions (stdlib only).

Everything cafleet types into a member's pane goes through here first:

* `preview_lines` builds the 2-line inline preview that `message send` / `message broadcast`
  push into the recipient's pane. The caller sends ``line1 + "\\n" + line2`` with ONE
  ``send-keys -l`` and then a separate Enter (`cafleet.gate.type_line`); a Claude Code TUI
  receives that as one two-line user message (observed with Claude Code 2.1.330, tmux 3.3a,
  see shared/REAL-CLIENT.md). Both lines are made inert: no control character (so no escape
  sequence, no C-c, no CR that would submit early), no bidi override, no line break.
* `validate_freetext` / `validate_exec_command` refuse text that `member send-input
  --freetext` / `member exec` must not type (exit 2, `UsageError`).
* `escape_trailing_semicolon` protects one tmux command-line argument: tmux's argument
  parser treats an argument ending in ``;`` as a command separator and drops the ``;``
  (``send-keys -l "echo a;"`` types ``echo a``); ``\\;`` at the end is a literal ``;``.

Nothing here touches tmux, the DB or the environment.
"""

from __future__ import annotations

import unicodedata

from cafleet.errors import UsageError

#: Default bound of preview line 2, in characters (code points), marker included.
PREVIEW_BODY_LIMIT = 200
#: Bound of a sender name shown in preview line 1, in characters, marker included.
SENDER_NAME_LIMIT = 40
#: Bound of an id shown in preview line 1 (a UUID is 36), in characters, marker included.
ID_LIMIT = 40
#: What a line break in a body looks like in a preview.
NEWLINE_MARK = "\u23ce"  # ⏎
#: Prefix of every preview line 1; never starts with `!`, `/`, `#` or `@`, so a coding
#: agent's TUI reads it as plain text, not as a shell escape, slash command or mention.
PREVIEW_PREFIX = "[cafleet]"

# Bidirectional formatting characters ("Trojan Source", CVE-2021-42574): embeddings and
# overrides U+202A-U+202E, isolates U+2066-U+2069, marks U+200E/U+200F and U+061C.
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e"
    "\u2066\u2067\u2068\u2069"
    "\u200e\u200f\u061c"
)

# Line breaks shown as NEWLINE_MARK in a preview. "\r\n" is handled as one break first.
# U+0085 (NEL) is a C1 control but also a line break, so it is shown, not silently dropped.
_LINE_BREAKS = ("\r\n", "\n", "\r", "\u2028", "\u2029", "\x85")

__all__ = [
    "BIDI_CONTROLS",
    "ID_LIMIT",
    "NEWLINE_MARK",
    "PREVIEW_BODY_LIMIT",
    "PREVIEW_PREFIX",
    "SENDER_NAME_LIMIT",
    "escape_trailing_semicolon",
    "exec_line",
    "is_invisible",
    "is_unsafe_char",
    "preview_lines",
    "preview_text",
    "sanitize_inline",
    "truncate",
    "validate_exec_command",
    "validate_freetext",
]


def is_unsafe_char(ch: str) -> bool:
    """True for a character that must never be typed into a pane as part of inert text.

    That is: C0 controls U+0000-U+001F (tab, LF, CR and ESC included), DEL U+007F, C1
    controls U+0080-U+009F (category ``Cc``), lone surrogates (``Cs``; they cannot even be
    encoded as UTF-8), the bidi formatting characters in `BIDI_CONTROLS`, and the Unicode
    line/paragraph separators U+2028/U+2029.
    """
    if ch in BIDI_CONTROLS or ch in "\u2028\u2029":
        return True
    return unicodedata.category(ch) in ("Cc", "Cs")


def sanitize_inline(text: str) -> str:
    """Return `text` as one inert line.

    Line breaks (``\\r\\n``, ``\\n``, ``\\r``, U+2028, U+2029, U+0085) become `NEWLINE_MARK`
    (one mark per break), tabs become one space, and every other character for which
    `is_unsafe_char` or `is_invisible` is true is removed. No length bound; see `truncate`.
    """
    for brk in _LINE_BREAKS:
        text = text.replace(brk, NEWLINE_MARK)
    text = text.replace("\t", " ")
    return "".join(ch for ch in text if not is_unsafe_char(ch) and not is_invisible(ch))


INVISIBLE_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
"""Hangul fillers: category Lo, yet drawn as nothing."""


def is_invisible(ch: str) -> bool:
    """True for a character a preview drops because it shows nothing yet can hide or change
    text: Unicode format characters (category ``Cf``: U+200B-U+200F, U+FEFF, U+00AD, U+2060-
    U+2064, the tag characters U+E0001/U+E0020-U+E007F…), the rest of the tag block U+E0000-
    U+E007F, and `INVISIBLE_FILLERS`. Only previews drop them; the stored body stays exact."""
    return unicodedata.category(ch) == "Cf" or ch in INVISIBLE_FILLERS or "\U000e0000" <= ch <= "\U000e007f"


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters (code points), marker included.

    A cut text ends in ``…[+N chars]`` where N is how many characters were removed.
    `limit` must be >= 1; when it is too small for any marker, the text is hard-cut.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(text) <= limit:
        return text
    keep = limit
    while keep > 0:
        marker = f"\u2026[+{len(text) - keep} chars]"
        if keep + len(marker) <= limit:
            return text[:keep] + marker
        keep -= 1
    return text[:limit]


def _inline(text: str, limit: int) -> str:
    return truncate(sanitize_inline(text), limit)


def preview_lines(
    task_id: str,
    sender_name: str,
    sender_id: str,
    body: str,
    limit: int = PREVIEW_BODY_LIMIT,
) -> tuple[str, str]:
    """The 2-line inline preview of a message, as ``(line1, line2)``.

    line 1: ``[cafleet] task <task_id> from <sender_name> (<sender_id>) - poll to read it:``
    (sender name and ids are sanitised like the body; the name is cut to
    `SENDER_NAME_LIMIT` characters, ids to `ID_LIMIT`). line 2: the body on one line, see
    `sanitize_inline`, cut to `limit` characters including the ``…[+N chars]`` marker.
    An empty body shows as ``(empty)``. Neither line holds a control character, a bidi
    control or a line break, so ``line1 + "\\n" + line2`` is exactly one line break.
    """
    name = _inline(sender_name, SENDER_NAME_LIMIT).strip() or "?"
    line1 = (
        f"{PREVIEW_PREFIX} task {_inline(task_id, ID_LIMIT)} from {name} "
        f"({_inline(sender_id, ID_LIMIT)}) \u2014 poll to read it:"
    )
    line2 = _inline(body, limit)
    if not line2.strip():
        line2 = truncate("(empty)", limit)
    return line1, line2


def preview_text(
    task_id: str,
    sender_name: str,
    sender_id: str,
    body: str,
    limit: int = PREVIEW_BODY_LIMIT,
) -> str:
    """``line1 + "\\n" + line2`` of `preview_lines`: the text for one ``send-keys -l``."""
    return "\n".join(preview_lines(task_id, sender_name, sender_id, body, limit))


def _refuse_unsafe(text: str, what: str) -> None:
    if not text.strip():
        raise UsageError(f"{what} is empty")
    for ch in text:
        if ch in "\r\n\u2028\u2029\x85":
            raise UsageError(f"{what} must be a single line (it contains a line break)")
        if is_unsafe_char(ch):
            raise UsageError(
                f"{what} contains a control or bidi formatting character "
                f"(U+{ord(ch):04X}); only printable text can be typed into a pane"
            )


def validate_freetext(text: str) -> str:
    """Check the text of ``member send-input --freetext``; return it unchanged.

    Raises `UsageError` (exit 2) for empty/blank text, a line break, any control character
    (see `is_unsafe_char`; tab and ESC included) or bidi control, and for a leading ``!``
    (after optional whitespace): in a coding agent's input box that runs a shell command.
    """
    _refuse_unsafe(text, "--freetext")
    if text.lstrip().startswith("!"):
        raise UsageError(
            "--freetext must not start with '!' (that would run a shell command in the "
            "member); use `member exec` for that"
        )
    return text


def validate_exec_command(cmd: str) -> str:
    """Check the command of ``member exec``; return it unchanged.

    Raises `UsageError` (exit 2) for an empty/blank command, a line break, or any control
    character or bidi control (see `is_unsafe_char`).
    """
    _refuse_unsafe(cmd, "the command")
    return cmd


def exec_line(cmd: str) -> str:
    """The text `member exec` types (before Enter): ``! <cmd>``, after validation."""
    return "! " + validate_exec_command(cmd)


def escape_trailing_semicolon(text: str) -> str:
    """Make one tmux command-line argument safe from tmux's ``;`` command separator.

    tmux (3.x ``cmd_parse_from_arguments``) removes a final ``;`` from an argument and ends
    the command there; a final ``\\;`` becomes a literal ``;``. So a final ``;`` is
    escaped as ``\\;``; nothing else changes (``a\\;`` -> ``a\\\\;``, which tmux turns back
    into ``a\\;``; ``;`` -> ``\\;``).
    """
    if text.endswith(";"):
        return text[:-1] + "\\;"
    return text
