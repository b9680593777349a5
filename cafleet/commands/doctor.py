"""`cafleet doctor`: this pane, the DB and the backends on PATH, checked and printed."""

from __future__ import annotations

import click

from cafleet.commands import emit
from cafleet.errors import CafleetError


@click.command("doctor")
def doctor_cmd() -> None:
    """This pane's tmux session/window/pane, the DB path and schema, the backends on PATH.
    Exits 1 outside tmux."""
    from cafleet import doctor

    report = doctor.report()
    emit(report, doctor.format_report(report))
    if not report["ok"]:
        raise CafleetError(report["problem"])
