"""Expected faults. The CLI turns each into `Error: …` on stderr (or a JSON error object)
and its exit code; nothing here ever reaches a user as a traceback."""

from __future__ import annotations


class CafleetError(Exception):
    """A fault a user can act on.

    `code` is a short machine-readable tag (`not_found`, `forbidden`, …) used in `--json`
    error objects; `exit_code` is 1 for runtime faults and 2 for usage faults.
    """

    code = "error"
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if exit_code is not None:
            self.exit_code = exit_code


class NotFound(CafleetError):
    """An id that does not exist in this fleet (ids of other fleets included)."""

    code = "not_found"


class Forbidden(CafleetError):
    """The calling agent may not do this (ack by a non-recipient, cancel by a non-sender…)."""

    code = "forbidden"


class Conflict(CafleetError):
    """The object is in a state that refuses the operation (cancel after ack, live panes…)."""

    code = "conflict"


class UsageError(CafleetError):
    """Bad input that the command line could not catch (malformed id, empty text…). Exit 2."""

    code = "usage"
    exit_code = 2


class Timeout(CafleetError):
    """A wait ran out (graceful `member delete`). Exit 2, as the contract says."""

    code = "timeout"
    exit_code = 2


class DatabaseError(CafleetError):
    """The DB file cannot be used: locked past the busy timeout, corrupt, unwritable,
    or written by a newer schema than this code knows."""

    code = "database"


class TmuxError(CafleetError):
    """tmux is missing, its server is gone, or a tmux command failed."""

    code = "tmux"
