"""The Director's look at a member's screen: a compact view, and what changed since its last look.

A Claude Code pane is mostly padding: the conversation sits at the top, the input box at the
bottom, blank rows between, and each horizontal rule is the pane's full width of `─` (three
bytes apiece in UTF-8, so a 250-column rule is 750 bytes). A supervising Director pays for
every byte it reads, on every tick, for the rest of its session. So `member capture
--changed` shows a *compact view* of the pane (`compact`), and of that only what changed
since the Director's previous look at the same member (`changes`):

- compact: runs of blank rows become one blank row; a run of more than `RULE_KEEP` identical
  box-drawing characters becomes `RULE_KEEP` of them; a run of `SPACE_RUN` or more spaces
  inside a line (right-aligned status text) becomes `SPACE_KEEP` spaces. The last `lines`
  lines of that view are kept, so `--lines` counts lines with content.
- changes: the view is compared line by line with the one stored at the previous look
  (`difflib.SequenceMatcher`): new and changed lines are shown, runs of unchanged lines are
  folded into one `⋯ N unchanged lines` marker (one line of context kept on each side of a
  change). An unchanged screen is one line saying since when.

The last look is a small file per member beside the DB (`<db>.looks/<agent_id>`, directory
0700, file 0600, replaced atomically): the view and when it was taken. Only `member capture
--changed` reads and records it (the Director's form); a plain capture, which a user or a
script may run in between, leaves it alone. `member delete` and `fleet delete` remove it. It is
not in the DB because it is a cache of what one reader last saw, not fleet state; a missing
or unreadable file only means "no previous look" (the whole view is shown). Stdlib only.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time

RULE_KEEP = 8
"""Box-drawing characters kept of a longer run (a rule stays recognisable as a rule)."""
SPACE_RUN = 16
"""A run of at least this many spaces inside a line is padding, not alignment."""
SPACE_KEEP = 4
CONTEXT = 1
"""Unchanged lines shown on each side of a change."""

_RULE = re.compile(r"([─━═╌╍┄┅┈┉▔▁-])\1{%d,}" % RULE_KEEP)
_SPACES = re.compile(" {%d,}" % SPACE_RUN)


def compact(text: str, lines: int | None = None) -> list[str]:
    """The compact view of captured pane text (see module docstring), as a list of lines
    without trailing whitespace and without leading or trailing blank lines; the last
    `lines` of them if `lines` is given."""
    out: list[str] = []
    for raw in text.split("\n"):
        line = _SPACES.sub(" " * SPACE_KEEP, _RULE.sub(lambda m: m.group(1) * RULE_KEEP, raw.rstrip()))
        if not line.strip():
            if out and out[-1]:
                out.append("")
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    if lines is not None:
        out = out[-lines:]
    while out and not out[0]:
        out.pop(0)
    return out


def changes(old: list[str] | None, new: list[str], context: int = CONTEXT) -> list[str] | None:
    """The lines of `new` to show a reader who last saw `old`: None when nothing changed;
    all of `new` when there is no `old`; else new and changed lines, with runs of unchanged
    lines longer than `2 * context + 1` folded to `⋯ N unchanged lines` (keeping `context`
    lines next to each change)."""
    if old is None:
        return list(new)
    if old == new:
        return None
    # deleted lines are gone from the screen (scrolled off, redrawn): nothing to show for them
    spans: list[list] = []  # [changed?, j1, j2] over `new`, adjacent equal runs merged
    for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "delete":
            continue
        changed = tag != "equal"
        if spans and not changed and not spans[-1][0]:
            spans[-1][2] = j2
        else:
            spans.append([changed, j1, j2])
    if not any(changed for changed, _, _ in spans):
        return [f"⋯ {len(old) - len(new)} line(s) gone; the other {len(new)} unchanged"]
    out: list[str] = []
    for n, (changed, j1, j2) in enumerate(spans):
        run = new[j1:j2]
        if changed:
            out.extend(run)
            continue
        head = context if n > 0 else 0                # context after the previous change
        tail = context if n < len(spans) - 1 else 0   # context before the next change
        if len(run) <= head + tail + 1:
            out.extend(run)
            continue
        out.extend(run[:head])
        hidden = len(run) - head - tail
        out.append(f"⋯ {hidden} unchanged line{'s' if hidden != 1 else ''}")
        out.extend(run[len(run) - tail:] if tail else [])
    return out


def store_dir(db_path: str) -> str:
    """Where last looks are kept for the DB at `db_path`: `<db_path>.looks`."""
    return db_path + ".looks"


def _file(db_path: str, agent_id: str) -> str:
    return os.path.join(store_dir(db_path), agent_id)


def last_look(db_path: str, agent_id: str) -> dict | None:
    """`{"at": epoch seconds (float), "lines": [str]}` of the previous look at `agent_id`'s
    pane, or None (never looked, or the file is missing or unreadable)."""
    try:
        with open(_file(db_path, agent_id), encoding="utf-8") as fh:
            data = json.load(fh)
        if isinstance(data.get("at"), (int, float)) and isinstance(data.get("lines"), list) \
                and all(isinstance(x, str) for x in data["lines"]):
            return data
    except (OSError, ValueError, AttributeError):
        pass
    return None


def record_look(db_path: str, agent_id: str, lines: list[str], at: float | None = None) -> None:
    """Store `lines` as the latest look at `agent_id`'s pane (atomic replace). Best effort:
    an OSError (read-only directory, disk full) is swallowed, the next look then shows all."""
    path = _file(db_path, agent_id)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(store_dir(db_path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"at": time.time() if at is None else at, "lines": lines}, fh, ensure_ascii=False)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def forget(db_path: str, agent_id: str) -> None:
    """Remove the last look at `agent_id` (its member was deleted); missing is fine."""
    try:
        os.unlink(_file(db_path, agent_id))
    except OSError:
        pass
