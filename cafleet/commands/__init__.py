"""cafleet's subcommands, one module per command or group, and what they all share.

Each module here defines one click group or command (`db`, `fleet`, `agent`, `member`,
`message`, `permissions`, `mcp`, `doctor`, `demo`); `cafleet.cli` registers them on the root
group. A command parses its flags, calls the module that does the work, and prints. This
file holds what they share: the id and seconds parameter types (checked at parse time, so a
bad value is a usage error, exit 2), the call's state the root group parsed, and printing
under `--json` or as text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cafleet import render

if TYPE_CHECKING:
    from cafleet.cli import State


BACKEND_CHOICES = ("claude", "codex", "opencode")


class AgentUUID(click.ParamType):
    """A canonical lowercase UUID4 (fleet, agent, member and task ids), checked at parse
    time so a malformed id is a usage error (exit 2) naming its flag before any DB access."""

    name = "uuid"

    def convert(self, value, param, ctx):
        from cafleet.broker import is_uuid4

        if is_uuid4(value):
            return value
        self.fail(f"must be a lowercase UUID4 like 3f2b8c1e-…, got {value!r}", param, ctx)


UUID = AgentUUID()


class Seconds(click.ParamType):
    """A finite number of seconds within `[low, high]`: `nan` and `inf` parse as floats but
    would make a wait never end (`member delete --timeout nan`) or a loop spin
    (`fleet tick --every nan`), so they are usage errors (exit 2)."""

    name = "seconds"

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        import math

        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds) or not self.low <= seconds <= self.high:
            self.fail(f"must be a number of seconds from {self.low:g} to {self.high:g}, got {value!r}", param, ctx)
        return seconds


def current_state() -> State:
    """What the root group parsed for this call (`cafleet.cli.State`)."""
    return click.get_current_context().find_root().obj


def emit(data, text) -> None:
    """Print `data` as JSON under `--json`, else `text` (a string or a callable making one)."""
    if current_state().json:
        render.echo_json(data)
    else:
        out = text() if callable(text) else text
        if out:
            render.echo_text(out)


def fmt_placement(p: dict | None) -> str:
    if not p:
        return "no pane"
    return f"pane {p.get('pane_id') or 'pending'} (session {p['session_name']}, window {p['window_id']})"


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers)] + [line(r) for r in rows])
