"""How cafleet prints: text and JSON shapes shared by the click CLI (`cli.py`) and the
click-free fast path (`fastpath.py`), so both print byte-identical output. Stdlib only.

Text goes out verbatim when stdout is piped (how agents read it); on a terminal, control
characters other than newline and tab are shown escaped (`\\x1b`) so a message body cannot
drive the terminal. JSON output is indented, non-ASCII kept, control characters escaped.
"""

from __future__ import annotations

import sys

TASK_FIELDS = ("task_id", "fleet_id", "sender_agent_id", "sender_name", "recipient_agent_id",
               "recipient_name", "body", "state", "created_at", "updated_at")


def task_json(t: dict) -> dict:
    """The public JSON shape of a task row."""
    return {k: t[k] for k in TASK_FIELDS}


POLL_FIELDS = ("task_id", "sender_agent_id", "sender_name", "created_at", "body")
"""What `message poll --json` gives per task. The fleet, the recipient (the poller) and the
state (always `input_required`) are the same for every task of a poll, so they are left out:
a poll is read on every supervision tick, and every byte of it stays in the reader's context."""


def poll_task_json(t: dict) -> dict:
    """The `message poll --json` shape of one task row (`POLL_FIELDS`)."""
    return {k: t[k] for k in POLL_FIELDS}


def push_text(p: dict) -> str:
    """One line saying whether a send's preview reached a pane."""
    return f"notified pane {p['pane_id']}" if p["notified"] else f"no pane notified ({p['reason']})"


def send_text(task: dict, push: dict) -> str:
    """`message send` text: line 1 the task id, line 2 the push outcome (never the body)."""
    return f"{task['task_id']}\n{push_text(push)}"


def poll_json(page: dict) -> dict:
    """`message poll --json`: `{"tasks": [task…], "more": N}`, each task in the trimmed
    `poll_task_json` shape, N the older un-acked tasks left out of this page."""
    return {"tasks": [poll_task_json(t) for t in page["tasks"]], "more": page["more"]}


def poll_text(tasks: list[dict], more: int = 0) -> str:
    """`message poll` text: one short line for an empty inbox, else a header and each task
    (id, sender, time) followed by its full body; when `more` older tasks wait, the header
    and a last line say so and how to read them."""
    if not tasks:
        return "No un-acked messages."
    n = len(tasks)
    if more:
        head = (f"{n} of {n + more} un-acked messages, newest first (ack each with `message ack --task-id`; "
                f"{more} older wait — ack these, then poll again, or add `--limit N`):")
    else:
        head = f"{n} un-acked message{'s' if n != 1 else ''}, newest first (ack each with `message ack --task-id`):"
    parts = [head]
    for t in tasks:
        parts.append(f"--- task {t['task_id']} from {t['sender_name']} ({t['sender_agent_id']}) at {t['created_at']}")
        parts.append(t["body"])
    if more:
        parts.append(f"--- {more} older un-acked message{'s' if more != 1 else ''} wait: ack the ones above, "
                     "then run this poll again.")
    return "\n".join(parts)


def ack_text(results: list[dict]) -> str:
    """`message ack` text: one line per task."""
    return "\n".join(f"acked {r['task_id']}" + (" (already)" if r["already_acked"] else "") for r in results)


def echo_text(out: str, stream=None) -> None:
    """Print text output (see module docstring) with a final newline."""
    stream = stream or sys.stdout
    if stream.isatty():
        out = "".join(ch if ch in "\n\t" or (" " <= ch != "\x7f" and not "\x80" <= ch <= "\x9f")
                      else ch.encode("unicode_escape").decode("ascii") for ch in out)
    stream.write(out + "\n")
    stream.flush()


#: What `json.dumps(..., ensure_ascii=False)` leaves raw but a reader may take as a line break
#: or a terminal control: the C1 controls (U+0080-U+009F, with NEL U+0085) and the Unicode line
#: and paragraph separators (U+2028, U+2029; `str.splitlines` breaks on all of them).
_JSON_RAW_HAZARDS = "[\x80-\x9f\u2028\u2029]"


def json_text(data, *, indent: int | None = None, separators: tuple[str, str] | None = None) -> str:
    """`data` as JSON text: non-ASCII kept, every control character and line separator
    escaped (C0 by `json`, C1 and U+2028/U+2029 here), so a line of it stays one line
    whoever splits it. The escapes only occur inside JSON strings, where they are valid."""
    import json
    import re  # already loaded: `json` imports it

    text = json.dumps(data, ensure_ascii=False, indent=indent, separators=separators)
    return re.sub(_JSON_RAW_HAZARDS, lambda m: f"\\u{ord(m.group()):04x}", text)


def echo_json(data, stream=None) -> None:
    """Print `data` as indented JSON (`json_text`) with a final newline."""
    stream = stream or sys.stdout
    stream.write(json_text(data, indent=2) + "\n")
    stream.flush()


def echo_error(message: str, code: str, as_json: bool) -> None:
    """An error on stderr: `Error: …`, or with `--json` `{"error": {"code", "message"}}`."""
    if as_json:
        line = json_text({"error": {"code": code, "message": message}})
    else:
        line = f"Error: {message}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def echo_unexpected(e: Exception, as_json: bool) -> int:
    """Report an unexpected exception in one line (no traceback unless `$CAFLEET_DEBUG` is
    set, in which case it is re-raised). Returns the exit code, 1."""
    import os

    if os.environ.get("CAFLEET_DEBUG"):
        raise e
    if type(e).__module__.startswith("sqlite3"):
        echo_error(f"database error: {e}", "database", as_json)
    else:
        echo_error(f"internal error: {type(e).__name__}: {e} (set CAFLEET_DEBUG=1 for a traceback)",
                   "internal", as_json)
    return 1


def age(seconds: float | None) -> str:
    """A short age for text output: `45s`, `3m`, `2h`, `4d` (rounded down); `-` for None."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def epoch_of(timestamp: str) -> float:
    """Epoch seconds of a broker time (`YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC; `cafleet.store.now`).
    Raises `ValueError` for a malformed time."""
    import calendar
    import time

    whole, _, frac = timestamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def age_of(timestamp: str | None, now: float | None = None) -> str:
    """`age` of a broker time (`YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC) at `now` (epoch seconds,
    default the current time); `-` for None or a malformed time."""
    import time

    if not timestamp:
        return "-"
    try:
        t = epoch_of(timestamp)
    except ValueError:
        return "-"
    return age((time.time() if now is None else now) - t)
