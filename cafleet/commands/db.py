"""`cafleet db`: the broker's SQLite file (`db init`)."""

from __future__ import annotations

import click

from cafleet.commands import current_state, emit


@click.group()
def db() -> None:
    """The broker's SQLite file."""


@db.command("init")
def db_init() -> None:
    """Create (or migrate) the DB file and check it; idempotent. Prints its path and schema
    version; exit 1 if SQLite finds the file damaged."""
    from cafleet.errors import DatabaseError

    broker = current_state().broker()
    problems = broker.check()
    if problems:
        raise DatabaseError(f"{broker.path} is damaged: {'; '.join(problems[:5])}; move it aside to start fresh")
    emit({"path": broker.path, "schema_version": broker.schema_version()},
         f"{broker.path}\nschema version {broker.schema_version()}")
