"""The SQLite store under the broker: where the DB file is, opening it, transactions, errors.

Stdlib only (hooks import it through `cafleet.broker` with a bare `python3`). `Store` is an
open connection to the file; `cafleet.broker.Broker` extends it with the fleet's records.
Writes start with `BEGIN IMMEDIATE`, so two processes never interleave a read-then-write and
a waiting writer blocks on SQLite's busy timeout instead of failing with "database is locked"
half-way; every sqlite3 error leaves as a `DatabaseError` a user can act on.

Storage (CONTRACT.md "Identifiers and storage"):
- path: `$CAFLEET_DB` (absolute) if set, else `$XDG_DATA_HOME/cafleet/cafleet.db`, else
  `~/.local/share/cafleet/cafleet.db`; directory created 0700, file created 0600;
- `PRAGMA user_version` is the schema version; older files migrate forward on open, a newer
  one is refused (`DatabaseError`, file untouched);
- WAL journal, `busy_timeout` (`$CAFLEET_BUSY_TIMEOUT_MS`, default 5000 ms), foreign keys.

Times are UTC ISO-8601 strings with milliseconds and a `Z` (`2026-11-21T19:32:00.123Z`).
"""

from __future__ import annotations

import os
import sqlite3
import time

from cafleet.errors import CafleetError, DatabaseError, NotFound, UsageError
from cafleet.schema import MIGRATIONS, SCHEMA_VERSION

DEFAULT_BUSY_TIMEOUT_MS = 5000


# ---------------------------------------------------------------- times, paths


def now(at: float | None = None) -> str:
    """The current UTC time (or `at`, epoch seconds) as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    t = time.time() if at is None else at
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def busy_timeout_ms(environ=None) -> int:
    """How long a writer waits for a lock, in ms: `$CAFLEET_BUSY_TIMEOUT_MS` (a whole number
    >= 0) or 5000. Raises `UsageError` for anything else."""
    env = os.environ if environ is None else environ
    raw = env.get("CAFLEET_BUSY_TIMEOUT_MS")
    if raw is None or raw == "":
        return DEFAULT_BUSY_TIMEOUT_MS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"CAFLEET_BUSY_TIMEOUT_MS must be a whole number of milliseconds, got {raw!r}")
    return value


def db_path(environ=None) -> str:
    """The DB file path from the environment (see module docstring). Always absolute; a
    relative `$XDG_DATA_HOME` is ignored, as the XDG Base Directory spec says.

    Raises `UsageError` if `CAFLEET_DB` is set but not absolute.
    """
    env = os.environ if environ is None else environ
    explicit = env.get("CAFLEET_DB")
    if explicit:
        if not os.path.isabs(explicit):
            raise UsageError(f"CAFLEET_DB must be an absolute path, got {explicit!r}")
        return explicit
    base = env.get("XDG_DATA_HOME") or ""
    if not os.path.isabs(base):  # the XDG Base Directory spec: relative paths are to be ignored
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "cafleet", "cafleet.db")


def _translate(e: sqlite3.Error, path: str) -> CafleetError:
    """Turn a sqlite3 exception into a `DatabaseError` a user can act on."""
    text = str(e)
    if "locked" in text or "busy" in text:
        return DatabaseError(
            f"the database {path} stayed locked by another process past the busy timeout; "
            "nothing was written, try again"
        )
    if "no such table" in text or "no such column" in text:
        return DatabaseError(f"{path} is not a cafleet database ({text}); point CAFLEET_DB elsewhere or move it aside")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return DatabaseError(f"{path} is not a usable cafleet database ({text}); move it aside to start fresh")
    if "readonly" in text or "unable to open" in text or "disk I/O" in text:
        return DatabaseError(f"cannot write the database {path} ({text}); check its permissions and free space")
    return DatabaseError(f"database error on {path}: {text}")


# ---------------------------------------------------------------- the store


class Store:
    """An open cafleet database file. Use `open()`; close it, or use it as a context manager.

    `_write()` / `_read()` are the transactions (`BEGIN IMMEDIATE` / `DEFERRED`), `_rows()` /
    `_row()` the queries (rows as plain dicts); all raise `DatabaseError` for sqlite3 faults.
    """

    def __init__(self, conn: sqlite3.Connection, path: str):
        self.conn = conn
        self.path = path

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(cls, path: str | None = None, *, create: bool = True) -> "Store":
        """Open (and create, migrate) the DB at `path` (default: `db_path()`).

        With `create=False` a missing file raises `NotFound` instead (hooks use this so a
        machine that never ran cafleet stays untouched). The file and its directory are checked
        first (`cafleet.dbfile`: no symlinks, owned by you, not writable by others; created
        0700 / 0600): `DatabaseError` otherwise.
        """
        from cafleet import dbfile

        explicit = path is None and bool(os.environ.get("CAFLEET_DB"))
        path = path or db_path()
        if not dbfile.prepare(path, create=create, explicit=explicit):
            raise NotFound(f"no cafleet database at {path}")
        timeout_ms = busy_timeout_ms()
        try:
            conn = sqlite3.connect(path, timeout=timeout_ms / 1000, isolation_level=None)
        except sqlite3.Error as e:
            raise _translate(e, path) from None
        store = cls(conn, path)
        try:
            conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DatabaseError(
                    f"{path} was written by a newer cafleet (schema {version}; this one knows "
                    f"{SCHEMA_VERSION}); upgrade cafleet — the file was left untouched"
                )
            conn.execute("PRAGMA foreign_keys = ON")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                store._switch_to_wal(timeout_ms)
            conn.execute("PRAGMA synchronous = NORMAL")
            if version < SCHEMA_VERSION:
                store._migrate()
            elif conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'fleets'"
                              ).fetchone()[0] == 0:
                raise DatabaseError(f"{path} is an SQLite file but not a cafleet database (no cafleet tables); "
                                    "point CAFLEET_DB elsewhere or move it aside")
        except CafleetError:
            conn.close()
            raise
        except sqlite3.Error as e:
            conn.close()
            raise _translate(e, path) from None
        return store

    def _switch_to_wal(self, timeout_ms: int) -> None:
        """`PRAGMA journal_mode = WAL`, retried until the busy timeout: SQLite does not call
        its busy handler for this switch, so a second process opening a brand-new file while
        the first one is creating it would otherwise fail at once with "database is locked"."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self) -> None:
        with self._write():
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {target}")

    def check(self) -> list[str]:
        """`PRAGMA quick_check`: [] when the file is sound, else SQLite's findings (reads
        every page, so it is for `db init`, not for every call)."""
        try:
            rows = [r[0] for r in self.conn.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.Error as e:
            return [str(e)]
        return [] if rows == ["ok"] else rows

    def schema_version(self) -> int:
        """The file's `PRAGMA user_version`."""
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transactions --------------------------------------------------------

    class _Tx:
        def __init__(self, store: "Store", mode: str):
            self.store, self.mode = store, mode

        def __enter__(self):
            try:
                self.store.conn.execute(f"BEGIN {self.mode}")
            except sqlite3.Error as e:
                raise _translate(e, self.store.path) from None
            return self.store.conn

        def __exit__(self, exc_type, exc, tb):
            conn = self.store.conn
            if exc_type is None:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as e:
                    if conn.in_transaction:  # a failed COMMIT (disk full…) may already have rolled back
                        conn.execute("ROLLBACK")
                    raise _translate(e, self.store.path) from None
                return False
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _translate(exc, self.store.path) from None
            return False

    def _write(self) -> "Store._Tx":
        return Store._Tx(self, "IMMEDIATE")

    def _read(self) -> "Store._Tx":
        return Store._Tx(self, "DEFERRED")

    def _rows(self, sql: str, params=()) -> list[dict]:
        try:
            cur = self.conn.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None

    def _row(self, sql: str, params=()) -> dict | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None
