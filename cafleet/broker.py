"""The cafleet broker: one SQLite file holding fleets, agents, placements, tasks and loops.

Stdlib only (hooks import it with a bare `python3`). Every public operation is one
transaction; writes start with `BEGIN IMMEDIATE`, so two processes never interleave a
read-then-write and a waiting writer blocks on SQLite's busy timeout instead of failing
with "database is locked" half-way.

Storage (CONTRACT.md "Identifiers and storage"):
- path: `$CAFLEET_DB` (absolute) if set, else `$XDG_DATA_HOME/cafleet/cafleet.db`, else
  `~/.local/share/cafleet/cafleet.db`; directory created 0700, file created 0600;
- `PRAGMA user_version` is the schema version; older files migrate forward on open, a newer
  one is refused (`DatabaseError`, file untouched);
- WAL journal, `busy_timeout` (`$CAFLEET_BUSY_TIMEOUT_MS`, default 5000 ms), foreign keys.

Times are UTC ISO-8601 strings with milliseconds and a `Z` (`2026-11-21T19:32:00.123Z`).
Ids are canonical lowercase UUID4 strings.

Rows come back as plain dicts so the CLI can print them or dump them as JSON.
"""

from __future__ import annotations

import os
import sqlite3
import time

from cafleet.errors import CafleetError, Conflict, DatabaseError, Forbidden, NotFound, UsageError
from cafleet.schema import MIGRATIONS, SCHEMA_VERSION

MAX_BODY_BYTES = 64 * 1024
"""Largest message body, in bytes of UTF-8. A larger one is refused before anything is stored."""
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
DEFAULT_POLL_LIMIT = 10
"""Tasks in a `message poll` page when no `--limit` is given."""
POLL_PAGE_BYTES = MAX_BODY_BYTES
"""A default poll page also stops once its bodies reach this many bytes (it always holds at
least one task), so a flood of large messages cannot fill its reader's context."""
MAX_POLL_LIMIT = 1000
DEFAULT_BUSY_TIMEOUT_MS = 5000

TASK_STATES = ("input_required", "completed", "canceled")
_HEX = frozenset("0123456789abcdef")


# ---------------------------------------------------------------- ids, times, paths


def new_id() -> str:
    """A fresh canonical lowercase UUID4 (without importing `uuid`, which costs a few ms)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid4(value: str) -> bool:
    """True for a canonical lowercase UUID4 string: 8-4-4-4-12 lowercase hex digits, version
    nibble 4, variant 8/9/a/b. Checked by hand: `re` would cost a per-tick command ~4 ms of
    imports (re, enum) before any work."""
    return (isinstance(value, str) and len(value) == 36
            and value[8] == value[13] == value[18] == value[23] == "-"
            and value[14] == "4" and value[19] in "89ab"
            and _HEX.issuperset(value[:8] + value[9:13] + value[14:18] + value[19:23] + value[24:]))


def check_id(value: str, flag: str) -> str:
    """Return `value` if it is a canonical UUID4, else raise `UsageError` naming `flag`."""
    if not is_uuid4(value):
        raise UsageError(f"{flag} must be a lowercase UUID4 like 3f2b8c1e-…, got {value!r}")
    return value


def now() -> str:
    """The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    t = time.time()
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


# ---------------------------------------------------------------- the broker


class Broker:
    """An open cafleet database. Use `Broker.open()`; close it, or use it as a context manager.

    Every method that writes runs in its own `BEGIN IMMEDIATE` transaction. Methods raise
    `NotFound`, `Forbidden`, `Conflict`, `UsageError` or `DatabaseError` (all `CafleetError`).
    """

    def __init__(self, conn: sqlite3.Connection, path: str):
        self.conn = conn
        self.path = path

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(cls, path: str | None = None, *, create: bool = True) -> "Broker":
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
        broker = cls(conn, path)
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
                broker._switch_to_wal(timeout_ms)
            conn.execute("PRAGMA synchronous = NORMAL")
            if version < SCHEMA_VERSION:
                broker._migrate()
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
        return broker

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

    def __enter__(self) -> "Broker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transactions --------------------------------------------------------

    class _Tx:
        def __init__(self, broker: "Broker", mode: str):
            self.broker, self.mode = broker, mode

        def __enter__(self):
            try:
                self.broker.conn.execute(f"BEGIN {self.mode}")
            except sqlite3.Error as e:
                raise _translate(e, self.broker.path) from None
            return self.broker.conn

        def __exit__(self, exc_type, exc, tb):
            conn = self.broker.conn
            if exc_type is None:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as e:
                    if conn.in_transaction:  # a failed COMMIT (disk full…) may already have rolled back
                        conn.execute("ROLLBACK")
                    raise _translate(e, self.broker.path) from None
                return False
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _translate(exc, self.broker.path) from None
            return False

    def _write(self) -> "Broker._Tx":
        return Broker._Tx(self, "IMMEDIATE")

    def _read(self) -> "Broker._Tx":
        return Broker._Tx(self, "DEFERRED")

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

    # -- fleets --------------------------------------------------------------

    def create_fleet(self, name: str | None = None, coding_agent: str = "claude", placement: dict | None = None) -> dict:
        """Create a fleet and its root Director (named `Director`).

        `placement`: `{tmux_socket, session_name, window_id, pane_id, pane_pid}` of the calling pane, or
        None outside tmux. Returns `get_fleet()`'s shape plus `director` (the agent row with
        its `placement`).
        """
        fleet_id, director_id, ts = new_id(), new_id(), now()
        name = _clean_name(name or f"fleet-{fleet_id[:8]}", "--name")
        with self._write() as c:
            c.execute(
                "INSERT INTO fleets (fleet_id, name, director_agent_id, created_at) VALUES (?,?,?,?)",
                (fleet_id, name, director_id, ts),
            )
            c.execute(
                "INSERT INTO agents (agent_id, fleet_id, name, description, role, coding_agent, created_at, last_seen)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (director_id, fleet_id, "Director", "Root Director of the fleet", "director", coding_agent, ts, ts),
            )
            if placement is not None:
                self._refuse_second_fleet_in_pane(placement)
                self._insert_placement(c, director_id, fleet_id, placement, coding_agent, ts)
        fleet = self.get_fleet(fleet_id)
        fleet["director"] = self.get_agent(fleet_id, director_id)
        return fleet

    def _refuse_second_fleet_in_pane(self, placement: dict) -> None:
        """`Conflict` when an active agent of a live fleet is already placed in this pane and
        its recorded pane process is the pane's current one (`pane_pid`): the hooks and
        SessionStart would otherwise act on one fleet while the user works in another. A
        placement whose recorded pid differs is a stale one (a tmux server restart reuses `%N`)."""
        existing = self.find_agent_by_pane(
            placement["tmux_socket"], placement["pane_id"],
            lambda p: not p.get("pane_pid") or not placement.get("pane_pid") or p["pane_pid"] == placement["pane_pid"])
        if existing is None:
            return
        fleet = existing["fleet"]
        what = "the Director" if existing["role"] == "director" else f"the {existing['role']} \"{existing['name']}\""
        raise Conflict(
            f"this pane ({placement['pane_id']}) already hosts {what} of fleet {fleet['fleet_id']} "
            f"(\"{fleet['name']}\"); one pane holds one fleet agent. Keep using that fleet, or delete it first: "
            f"`cafleet fleet delete {fleet['fleet_id']}` (see `cafleet fleet list`), or run `fleet create` in "
            "another pane.")

    def _insert_placement(self, c, agent_id, fleet_id, placement, coding_agent, ts) -> None:
        c.execute(
            "INSERT OR REPLACE INTO placements (agent_id, fleet_id, tmux_socket, session_name, window_id,"
            " pane_id, pane_pid, coding_agent, created_at, agent_command) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                agent_id,
                fleet_id,
                placement["tmux_socket"],
                placement["session_name"],
                placement["window_id"],
                placement.get("pane_id"),
                placement.get("pane_pid"),
                coding_agent,
                ts,
                placement.get("agent_command"),
            ),
        )

    def get_fleet(self, fleet_id: str, *, include_deleted: bool = False) -> dict:
        """One fleet: `{fleet_id, name, director_agent_id, created_at, deleted_at}`.

        A deleted fleet is `NotFound` unless `include_deleted`.
        """
        row = self._row("SELECT * FROM fleets WHERE fleet_id = ?", (fleet_id,))
        if row is None or (row["deleted_at"] and not include_deleted):
            raise NotFound(f"fleet {fleet_id} not found" + (" (it was deleted)" if row else "")
                           + "; `cafleet fleet list` shows the active fleets")
        return row

    def list_fleets(self) -> list[dict]:
        """Active fleets, oldest first, each with `director_name` and `member_count`."""
        return self._rows(
            "SELECT f.*, d.name AS director_name,"
            " (SELECT COUNT(*) FROM agents a WHERE a.fleet_id = f.fleet_id AND a.role = 'member'"
            "   AND a.status = 'active') AS member_count"
            " FROM fleets f JOIN agents d ON d.agent_id = f.director_agent_id"
            " WHERE f.deleted_at IS NULL ORDER BY f.created_at, f.rowid"
        )

    def delete_fleet(self, fleet_id: str) -> dict:
        """Soft-delete the fleet and deregister all its agents (placements are dropped).

        Idempotent: returns `{fleet_id, deleted_at, already_deleted, deregistered: [agent_id…]}`.
        Checking for live member panes is the caller's job (it needs tmux).
        """
        with self._write() as c:
            fleet = self.get_fleet(fleet_id, include_deleted=True)
            if fleet["deleted_at"]:
                return {"fleet_id": fleet_id, "deleted_at": fleet["deleted_at"], "already_deleted": True, "deregistered": []}
            ts = now()
            ids = [r[0] for r in c.execute("SELECT agent_id FROM agents WHERE fleet_id = ? AND status = 'active'", (fleet_id,))]
            c.execute(
                "UPDATE agents SET status = 'deregistered', deregistered_at = ? WHERE fleet_id = ? AND status = 'active'",
                (ts, fleet_id),
            )
            c.execute("DELETE FROM placements WHERE fleet_id = ?", (fleet_id,))
            c.execute("UPDATE loops SET deleted_at = ? WHERE deleted_at IS NULL AND agent_id IN"
                      " (SELECT agent_id FROM agents WHERE fleet_id = ?)", (ts, fleet_id))
            c.execute("UPDATE fleets SET deleted_at = ? WHERE fleet_id = ?", (ts, fleet_id))
        return {"fleet_id": fleet_id, "deleted_at": ts, "already_deleted": False, "deregistered": ids}

    # -- agents --------------------------------------------------------------

    _AGENT_SELECT = (
        "SELECT a.agent_id, a.fleet_id, a.name, a.description, a.role, a.parent_agent_id, a.coding_agent,"
        " a.status, a.created_at, a.last_seen, a.deregistered_at,"
        " p.agent_id AS p_agent, p.tmux_socket AS p_tmux_socket, p.session_name AS p_session_name,"
        " p.window_id AS p_window_id, p.pane_id AS p_pane_id, p.pane_pid AS p_pane_pid,"
        " p.coding_agent AS p_coding_agent, p.agent_command AS p_agent_command, p.draft_chars AS p_draft_chars,"
        " p.draft_mark AS p_draft_mark, p.screen_hash AS p_screen_hash, p.screen_changed_at AS p_screen_changed_at,"
        " p.exited_at AS p_exited_at, p.exit_status AS p_exit_status, p.last_screen AS p_last_screen"
        " FROM agents a LEFT JOIN placements p ON p.agent_id = a.agent_id"
    )

    def _agents(self, where: str, params) -> list[dict]:
        """Agent rows with `placement` = `{tmux_socket, session_name, window_id, pane_id,
        pane_pid, coding_agent}` or None."""
        out = []
        for row in self._rows(self._AGENT_SELECT + " WHERE " + where, params):
            has_placement = row.pop("p_agent") is not None
            placement = {k[2:]: row.pop(k) for k in list(row) if k.startswith("p_")}
            row["placement"] = placement if has_placement else None
            out.append(row)
        return out

    def get_agent(self, fleet_id: str, agent_id: str, *, active: bool = True, flag: str = "--agent-id") -> dict:
        """One agent of this fleet with its `placement` (or None). An agent of another fleet,
        or (with `active`) a deregistered one, is `NotFound`."""
        self.get_fleet(fleet_id)
        rows = self._agents("a.agent_id = ? AND a.fleet_id = ?", (agent_id, fleet_id))
        if not rows or (active and rows[0]["status"] != "active"):
            what = "member" if flag == "--member-id" else "agent"
            suffix = " (deregistered)" if rows else ""
            raise NotFound(f"{what} {agent_id} not found in fleet {fleet_id}{suffix}")
        return rows[0]

    def list_agents(self, fleet_id: str, *, include_deregistered: bool = False) -> list[dict]:
        """Agents of the fleet, oldest first (the Director first)."""
        self.get_fleet(fleet_id)
        where = "a.fleet_id = ?" + ("" if include_deregistered else " AND a.status = 'active'")
        rows = self._agents(where, (fleet_id,))
        rows.sort(key=lambda r: (r["role"] != "director", r["created_at"]))
        return rows

    def register_agent(
        self,
        fleet_id: str,
        name: str,
        description: str = "",
        *,
        role: str = "agent",
        parent_agent_id: str | None = None,
        coding_agent: str | None = None,
        placement: dict | None = None,
    ) -> dict:
        """Register an agent in an active fleet; returns the agent row (see `get_agent`).

        `role` is `agent` (plain `agent register`) or `member` (a pane spawned by
        `parent_agent_id`). `placement` may be given for a member whose pane is still
        pending (`pane_id` None).
        """
        name = _clean_name(name, "--name")
        description = _clean_text(description, "--description", MAX_DESCRIPTION_CHARS, allow_empty=True)
        agent_id, ts = new_id(), now()
        with self._write() as c:
            self.get_fleet(fleet_id)
            if parent_agent_id is not None:
                self.get_agent(fleet_id, parent_agent_id)
            c.execute(
                "INSERT INTO agents (agent_id, fleet_id, name, description, role, parent_agent_id, coding_agent, created_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (agent_id, fleet_id, name, description, role, parent_agent_id, coding_agent, ts),
            )
            if placement is not None:
                self._insert_placement(c, agent_id, fleet_id, placement, coding_agent or "claude", ts)
        return self.get_agent(fleet_id, agent_id)

    def deregister_agent(self, fleet_id: str, agent_id: str) -> dict:
        """Deregister an agent (drops its placement). The root Director is `Forbidden`.
        Returns the agent row as it is afterwards."""
        with self._write() as c:
            fleet = self.get_fleet(fleet_id)
            self.get_agent(fleet_id, agent_id)
            if agent_id == fleet["director_agent_id"]:
                raise Forbidden("the root Director cannot be deregistered; use `cafleet fleet delete` to end the fleet")
            ts = now()
            c.execute("UPDATE agents SET status = 'deregistered', deregistered_at = ? WHERE agent_id = ?", (ts, agent_id))
            c.execute("DELETE FROM placements WHERE agent_id = ?", (agent_id,))
            c.execute("UPDATE loops SET deleted_at = ? WHERE agent_id = ? AND deleted_at IS NULL", (ts, agent_id))
        return self.get_agent(fleet_id, agent_id, active=False)

    def delete_agent_row(self, fleet_id: str, agent_id: str) -> None:
        """Remove an agent that never became usable (rollback of a failed `member create`):
        its placement, tasks and the row itself, as if it had never been registered."""
        with self._write() as c:
            c.execute("DELETE FROM placements WHERE agent_id = ? AND fleet_id = ?", (agent_id, fleet_id))
            c.execute("DELETE FROM worktrees WHERE agent_id = ? AND fleet_id = ?", (agent_id, fleet_id))
            c.execute("DELETE FROM notices WHERE agent_id = ?", (agent_id,))
            c.execute("DELETE FROM loops WHERE agent_id = ?", (agent_id,))
            c.execute("DELETE FROM tasks WHERE fleet_id = ? AND (sender_agent_id = ? OR recipient_agent_id = ?)",
                      (fleet_id, agent_id, agent_id))
            c.execute("DELETE FROM agents WHERE agent_id = ? AND fleet_id = ?", (agent_id, fleet_id))

    def touch(self, agent_id: str) -> None:
        """Set the agent's `last_seen` to now (every cafleet call made as that agent)."""
        with self._write() as c:
            self._seen(c, agent_id, now())

    # -- placements ----------------------------------------------------------

    def set_placement(self, fleet_id: str, agent_id: str, placement: dict, coding_agent: str) -> None:
        """Record or replace an agent's pane: `placement` = `{tmux_socket, session_name,
        window_id, pane_id, pane_pid}` (`pane_id` None while the pane is being created;
        `pane_pid` None when unknown)."""
        with self._write() as c:
            self.get_agent(fleet_id, agent_id)
            self._insert_placement(c, agent_id, fleet_id, placement, coding_agent, now())

    def set_draft(self, agent_id: str, chars: int, mark: str | None) -> None:
        """Record (or clear, `chars` 0) text typed into the agent's pane whose Enter the gate
        withheld: how many characters, and its first characters to recognise it on screen."""
        with self._write() as c:
            c.execute("UPDATE placements SET draft_chars = ?, draft_mark = ? WHERE agent_id = ?", (chars, mark, agent_id))

    def note_screen(self, agent_id: str, screen_hash: str) -> str | None:
        """Record the hash of the agent's visible screen; returns when the screen last changed
        (a `now()` string) -- None the first time a screen is seen (quiet time unknown)."""
        with self._write() as c:
            row = c.execute("SELECT screen_hash, screen_changed_at FROM placements WHERE agent_id = ?",
                            (agent_id,)).fetchone()
            if row is None:
                return None
            if row[0] == screen_hash:
                return row[1]
            c.execute("UPDATE placements SET screen_hash = ?, screen_changed_at = ? WHERE agent_id = ?",
                      (screen_hash, now(), agent_id))
            return None if row[0] is None else now()

    def expect_exit(self, agent_id: str, expected: bool = True) -> None:
        """Before a graceful `member delete`: the coming exit is asked for, so no exit notice
        (`mark_exited` then returns False). `expected=False` undoes it (the agent stayed)."""
        with self._write() as c:
            if expected:
                c.execute("UPDATE placements SET exited_at = ? WHERE agent_id = ? AND exited_at IS NULL", (now(), agent_id))
            else:
                c.execute("UPDATE placements SET exited_at = NULL WHERE agent_id = ? AND exit_status IS NULL"
                          " AND last_screen IS NULL", (agent_id,))

    def mark_exited(self, agent_id: str, status: int | None, last_screen: str) -> bool:
        """Record that the agent in the placement's pane exited; True the first time only."""
        with self._write() as c:
            cur = c.execute("UPDATE placements SET exited_at = ?, exit_status = ?, last_screen = ?"
                            " WHERE agent_id = ? AND exited_at IS NULL", (now(), status, last_screen, agent_id))
            return cur.rowcount == 1

    # -- held previews -------------------------------------------------------

    def hold(self, task_id: str, reason: str) -> None:
        """Mark a task's preview held (not typed) with `reason`; a later call delivers it."""
        with self._write() as c:
            c.execute("UPDATE tasks SET held_reason = ?, held_at = ? WHERE task_id = ? AND state = 'input_required'",
                      (reason, now(), task_id))

    def has_held(self, fleet_id: str) -> bool:
        """True when some un-acked task of the fleet has a held preview (one indexed lookup)."""
        return self.conn.execute(
            "SELECT 1 FROM tasks WHERE fleet_id = ? AND held_reason IS NOT NULL LIMIT 1", (fleet_id,)
        ).fetchone() is not None

    def held_tasks(self, fleet_id: str, recipient_id: str | None = None) -> list[dict]:
        """Tasks with a held preview, oldest first, each with `held_reason`, `held_at` and
        `recipient` (the agent row). An acked or canceled task is never held (both clear it)."""
        sql = self._TASK_SELECT.replace(" FROM tasks t", ", t.held_at FROM tasks t") + \
            " WHERE t.fleet_id = ? AND t.held_reason IS NOT NULL"
        params: tuple = (fleet_id,)
        if recipient_id is not None:
            sql += " AND t.recipient_agent_id = ?"
            params += (recipient_id,)
        tasks = self._rows(sql + " ORDER BY t.seq", params)
        agents = {}
        for t in tasks:
            rid = t["recipient_agent_id"]
            if rid not in agents:
                rows = self._agents("a.agent_id = ?", (rid,))
                agents[rid] = rows[0] if rows else None
            t["recipient"] = agents[rid]
        return tasks

    def claim_held(self, task_id: str) -> bool:
        """Take a held preview for delivery: clears the hold if it is still held and un-acked.
        True for exactly one caller, so two cafleet calls never type the same preview."""
        with self._write() as c:
            return c.execute("UPDATE tasks SET held_reason = NULL WHERE task_id = ? AND held_reason IS NOT NULL"
                             " AND state = 'input_required'", (task_id,)).rowcount == 1

    def held_counts(self, fleet_id: str) -> dict[str, int]:
        """{recipient agent_id: number of held previews} for the fleet's un-acked tasks."""
        return dict(self.conn.execute(
            "SELECT recipient_agent_id, COUNT(*) FROM tasks WHERE fleet_id = ? AND held_reason IS NOT NULL"
            " AND state = 'input_required' GROUP BY recipient_agent_id", (fleet_id,)).fetchall())

    def find_agent_by_pane(self, tmux_socket: str, pane_id: str, accept=None) -> dict | None:
        """The active agent placed in this pane of this tmux server, with `fleet` info, or None.
        `accept(placement) -> bool`, when given, skips placements the caller knows are stale
        (see `hooks.open_agent`). Agents of deleted fleets are skipped; of several, the most
        recently placed one wins (`fleet create` refuses a second live one, see there)."""
        rows = self._agents(  # newest placement first: the same answer every time (issue 10)
            "p.tmux_socket = ? AND p.pane_id = ? AND a.status = 'active' ORDER BY p.created_at DESC, p.rowid DESC",
            (tmux_socket, pane_id),
        )
        for row in rows:
            if accept is not None and not accept(row["placement"]):
                continue
            fleet = self._row("SELECT * FROM fleets WHERE fleet_id = ? AND deleted_at IS NULL", (row["fleet_id"],))
            if fleet:
                row["fleet"] = fleet
                return row
        return None

    # -- worktrees -----------------------------------------------------------

    def add_worktree(self, fleet_id: str, agent_id: str, *, repo: str, path: str, branch: str, base: str,
                     base_commit: str) -> None:
        """Record a member's git worktree (absolute `repo` and `path`, `branch`, `base` ref
        as named, `base_commit` sha). `NotFound` if the agent is not in the fleet."""
        with self._write() as c:
            self.get_agent(fleet_id, agent_id)
            c.execute("INSERT INTO worktrees (agent_id, fleet_id, repo, path, branch, base, base_commit, created_at)"
                      " VALUES (?,?,?,?,?,?,?,?)", (agent_id, fleet_id, repo, path, branch, base, base_commit, now()))

    def worktrees(self, fleet_id: str, agent_id: str | None = None) -> list[dict]:
        """The fleet's worktree rows (optionally one agent's), oldest first, each with the
        agent's `name`: `{agent_id, fleet_id, name, repo, path, branch, base, base_commit,
        created_at, removed_at}`."""
        sql = ("SELECT w.*, a.name FROM worktrees w JOIN agents a ON a.agent_id = w.agent_id"
               " WHERE w.fleet_id = ?")
        params: tuple = (fleet_id,)
        if agent_id is not None:
            sql += " AND w.agent_id = ?"
            params += (agent_id,)
        return self._rows(sql + " ORDER BY w.created_at, w.rowid", params)

    def mark_worktree_removed(self, agent_id: str) -> None:
        """Note that a member's worktree directory is gone (its row stays for the branch)."""
        with self._write() as c:
            c.execute("UPDATE worktrees SET removed_at = ? WHERE agent_id = ? AND removed_at IS NULL",
                      (now(), agent_id))

    # -- members -------------------------------------------------------------

    def list_members(self, fleet_id: str, director_id: str | None = None) -> list[dict]:
        """Active members of the fleet (optionally only those spawned by `director_id`), oldest
        first, each an agent row plus `unread` (its un-acked tasks), `last_report_at` (when it
        last sent its Director a task, any state; None if never) and `unacked_reports` (how
        many of those the Director has not acked)."""
        self.get_fleet(fleet_id)
        where = "a.fleet_id = ? AND a.role = 'member' AND a.status = 'active'"
        params: tuple = (fleet_id,)
        if director_id is not None:
            self.get_agent(fleet_id, director_id)
            where += " AND a.parent_agent_id = ?"
            params += (director_id,)
        rows = self._agents(where, params)
        counts = dict(
            self.conn.execute(
                "SELECT recipient_agent_id, COUNT(*) FROM tasks WHERE fleet_id = ? AND state = 'input_required'"
                " GROUP BY recipient_agent_id",
                (fleet_id,),
            ).fetchall()
        )
        # what each member sent the Director that spawned it: when last, and how much of it
        # that Director has not acked yet
        reports = {
            sender: (last, unacked)
            for sender, last, unacked in self.conn.execute(
                "SELECT t.sender_agent_id, MAX(t.created_at), SUM(t.state = 'input_required') FROM tasks t"
                " JOIN agents a ON a.agent_id = t.sender_agent_id AND a.parent_agent_id = t.recipient_agent_id"
                " WHERE t.fleet_id = ? GROUP BY t.sender_agent_id",
                (fleet_id,),
            ).fetchall()
        }
        for r in rows:
            r["unread"] = counts.get(r["agent_id"], 0)
            r["last_report_at"], r["unacked_reports"] = reports.get(r["agent_id"], (None, 0))
        rows.sort(key=lambda r: r["created_at"])
        return rows

    # -- tasks ---------------------------------------------------------------

    _TASK_SELECT = (
        "SELECT t.task_id, t.fleet_id, t.sender_agent_id, s.name AS sender_name, t.recipient_agent_id,"
        " r.name AS recipient_name, t.body, t.state, t.broadcast_id, t.created_at, t.updated_at, t.held_reason"
        " FROM tasks t JOIN agents s ON s.agent_id = t.sender_agent_id"
        " JOIN agents r ON r.agent_id = t.recipient_agent_id"
    )

    def _insert_task(self, c, fleet_id, sender_id, recipient_id, body, ts, broadcast_id=None) -> str:
        task_id = new_id()
        c.execute(
            "INSERT INTO tasks (task_id, fleet_id, sender_agent_id, recipient_agent_id, body, broadcast_id,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
            (task_id, fleet_id, sender_id, recipient_id, body, broadcast_id, ts, ts),
        )
        return task_id

    def send(self, fleet_id: str, sender_id: str, recipient_id: str, body: str) -> dict:
        """Persist one task from `sender_id` to `recipient_id` (both active agents of the fleet).

        Returns the task row (`get_task` shape) with `recipient` (the recipient agent row,
        placement included, for the push). Raises `UsageError` for an empty or oversized body.
        """
        body = check_body(body)
        with self._write() as c:
            self.get_agent(fleet_id, sender_id)
            recipient = self.get_agent(fleet_id, recipient_id, flag="--to")
            ts = now()
            task_id = self._insert_task(c, fleet_id, sender_id, recipient_id, body, ts)
            self._seen(c, sender_id, ts)
            task = self._task(task_id)
        task["recipient"] = recipient
        return task

    def broadcast(self, fleet_id: str, sender_id: str, body: str) -> list[dict]:
        """One task to every other active agent of the fleet, all in one transaction.
        Returns the task rows (each with `recipient`), in agent order; [] if alone."""
        body = check_body(body)
        with self._write() as c:
            self.get_agent(fleet_id, sender_id)
            recipients = [a for a in self.list_agents(fleet_id) if a["agent_id"] != sender_id]
            ts, broadcast_id = now(), new_id()
            tasks = []
            for r in recipients:
                task_id = self._insert_task(c, fleet_id, sender_id, r["agent_id"], body, ts, broadcast_id)
                task = self._task(task_id)
                task["recipient"] = r
                tasks.append(task)
            self._seen(c, sender_id, ts)
        return tasks

    def _task(self, task_id: str) -> dict | None:
        return self._row(self._TASK_SELECT + " WHERE t.task_id = ?", (task_id,))

    def _fleet_task(self, fleet_id: str, task_id: str) -> dict:
        """The task, if it belongs to this fleet; `NotFound` otherwise (other fleets' too)."""
        task = self._task(task_id)
        if task is None or task["fleet_id"] != fleet_id:
            raise NotFound(f"task {task_id} not found in fleet {fleet_id}")
        return task

    @staticmethod
    def _seen(c, agent_id: str, ts: str) -> None:
        """Set the agent's `last_seen` inside the caller's transaction."""
        c.execute("UPDATE agents SET last_seen = ? WHERE agent_id = ?", (ts, agent_id))

    def poll(self, fleet_id: str, agent_id: str, limit: int | None = None) -> list[dict]:
        """Un-acked (`input_required`) tasks addressed to `agent_id`, newest first, full bodies.
        Touches only the agent's `last_seen`."""
        if limit is not None and not 1 <= limit <= MAX_POLL_LIMIT:
            raise UsageError(f"--limit must be from 1 to {MAX_POLL_LIMIT}")
        with self._write() as c:
            self.get_agent(fleet_id, agent_id)
            self._seen(c, agent_id, now())
            sql = self._TASK_SELECT + " WHERE t.recipient_agent_id = ? AND t.state = 'input_required' ORDER BY t.seq DESC"
            params: tuple = (agent_id,)
            if limit is not None:
                sql += " LIMIT ?"
                params += (limit,)
            return self._rows(sql, params)

    def inbox(self, fleet_id: str, agent_id: str) -> list[dict]:
        """Un-acked tasks addressed to `agent_id`, oldest first. Read-only: unlike `poll` it
        does not touch `last_seen` (a watcher is not the agent itself; `cafleet.wake`)."""
        with self._read():
            self.get_agent(fleet_id, agent_id)
            return self._rows(self._TASK_SELECT + " WHERE t.recipient_agent_id = ? AND t.state = "
                              "'input_required' ORDER BY t.seq", (agent_id,))

    def poll_page(self, fleet_id: str, agent_id: str, limit: int | None = None) -> dict:
        """One page of `poll`: `{tasks, total, more}` — the newest un-acked tasks (at most `limit`;
        by default `DEFAULT_POLL_LIMIT`, cut further at `POLL_PAGE_BYTES` of bodies), how many
        un-acked tasks there are in all, and how many older ones the page leaves out. Reading
        every task takes acking each page and polling again. Touches only `last_seen`."""
        if limit is not None and not 1 <= limit <= MAX_POLL_LIMIT:
            raise UsageError(f"--limit must be from 1 to {MAX_POLL_LIMIT}")
        with self._write() as c:
            self.get_agent(fleet_id, agent_id)
            self._seen(c, agent_id, now())
            total = c.execute("SELECT COUNT(*) FROM tasks WHERE recipient_agent_id = ? AND state = 'input_required'",
                              (agent_id,)).fetchone()[0]
            tasks = self._rows(self._TASK_SELECT + " WHERE t.recipient_agent_id = ? AND t.state = 'input_required'"
                               " ORDER BY t.seq DESC LIMIT ?", (agent_id, limit or DEFAULT_POLL_LIMIT))
        if limit is None:
            size = 0
            for k, t in enumerate(tasks):
                size += len(t["body"].encode("utf-8", "surrogatepass"))
                if size > POLL_PAGE_BYTES and k > 0:
                    tasks = tasks[:k]
                    break
        return {"tasks": tasks, "total": total, "more": total - len(tasks)}

    def ack(self, fleet_id: str, agent_id: str, task_ids: list[str]) -> list[dict]:
        """Mark tasks addressed to `agent_id` completed. All or nothing: any task that is not
        in the fleet (`NotFound`), not addressed to the agent (`Forbidden`) or canceled
        (`Conflict`) refuses the whole call. Acking a completed task again is harmless.
        Returns `[{task_id, state, already_acked}]` in the order given."""
        with self._write() as c:
            self.get_agent(fleet_id, agent_id)
            results = []
            ts = now()
            for task_id in dict.fromkeys(task_ids):
                task = self._fleet_task(fleet_id, task_id)
                if task["recipient_agent_id"] != agent_id:
                    raise Forbidden(f"task {task_id} is not addressed to agent {agent_id}; only its recipient can ack it")
                if task["state"] == "canceled":
                    raise Conflict(f"task {task_id} was canceled by its sender; there is nothing to ack")
                already = task["state"] == "completed"
                if not already:
                    c.execute("UPDATE tasks SET state = 'completed', updated_at = ?, held_reason = NULL WHERE task_id = ?",
                              (ts, task_id))
                results.append({"task_id": task_id, "state": "completed", "already_acked": already})
            self._seen(c, agent_id, ts)
        return results

    def cancel(self, fleet_id: str, agent_id: str, task_id: str) -> dict:
        """Retract a task the agent sent, before its recipient acks it. Canceling twice is
        harmless. `Forbidden` for a non-sender, `Conflict` after ack. Returns the task row."""
        with self._write() as c:
            self.get_agent(fleet_id, agent_id)
            task = self._fleet_task(fleet_id, task_id)
            if task["sender_agent_id"] != agent_id:
                raise Forbidden(f"task {task_id} was not sent by agent {agent_id}; only its sender can cancel it")
            if task["state"] == "completed":
                raise Conflict(f"task {task_id} was already acked by its recipient; it can no longer be canceled")
            ts = now()
            if task["state"] != "canceled":
                c.execute("UPDATE tasks SET state = 'canceled', updated_at = ?, held_reason = NULL WHERE task_id = ?",
                          (ts, task_id))
            self._seen(c, agent_id, ts)
            return self._task(task_id)

    def show_task(self, fleet_id: str, agent_id: str, task_id: str) -> dict:
        """One task, for its sender or recipient only (`Forbidden` otherwise)."""
        with self._write() as c:
            self.get_agent(fleet_id, agent_id)
            task = self._fleet_task(fleet_id, task_id)
            if agent_id not in (task["sender_agent_id"], task["recipient_agent_id"]):
                raise Forbidden(f"task {task_id} is visible only to its sender and recipient")
            self._seen(c, agent_id, now())
            return task

    def unread_count(self, agent_id: str) -> int:
        """How many un-acked tasks are addressed to the agent."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM tasks WHERE recipient_agent_id = ? AND state = 'input_required'", (agent_id,)
        ).fetchone()[0]

    # -- loops and notices (hooks) ------------------------------------------

    def add_loop(self, agent_id: str, loop_id: str, *, session_id=None, cron=None, prompt=None, durable=False) -> None:
        """Record a running `/loop` (a Claude Code CronCreate job) of the agent."""
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO loops (agent_id, loop_id, session_id, cron, prompt, durable, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (agent_id, loop_id, session_id, cron, prompt, int(bool(durable)), now()),
            )

    def end_loop(self, agent_id: str, loop_id: str | None = None, *, session_id: str | None = None) -> int:
        """Mark the agent's loop `loop_id` (or all its loops, or all of one session's
        non-durable loops) ended. Returns how many rows changed."""
        sql, params = "UPDATE loops SET deleted_at = ? WHERE agent_id = ? AND deleted_at IS NULL", [now(), agent_id]
        if loop_id is not None:
            sql += " AND loop_id = ?"
            params.append(loop_id)
        if session_id is not None:
            sql += " AND session_id = ? AND durable = 0"
            params.append(session_id)
        with self._write() as c:
            return c.execute(sql, params).rowcount

    def active_loops(self, agent_id: str) -> list[dict]:
        """The agent's loops not yet ended, oldest first."""
        return self._rows(
            "SELECT * FROM loops WHERE agent_id = ? AND deleted_at IS NULL ORDER BY created_at", (agent_id,)
        )

    def note_once(self, agent_id: str, kind: str, key: str) -> bool:
        """Record a notice; True the first time this `(agent, kind, key)` is seen, else False."""
        with self._write() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO notices (agent_id, kind, key, created_at) VALUES (?,?,?,?)",
                (agent_id, kind, key, now()),
            )
            return cur.rowcount == 1


# ---------------------------------------------------------------- input checks


def _clean_text(value: str, flag: str, max_chars: int, *, allow_empty: bool = False) -> str:
    if value is None:
        value = ""
    if not allow_empty and not value.strip():
        raise UsageError(f"{flag} must not be empty")
    if len(value) > max_chars:
        raise UsageError(f"{flag} is {len(value)} characters; the limit is {max_chars}")
    _check_utf8(value, flag)
    return value


def _clean_name(value: str, flag: str) -> str:
    value = _clean_text(value, flag, MAX_NAME_CHARS)
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise UsageError(f"{flag} must not contain control characters or newlines")
    return value


def _check_utf8(value: str, flag: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{flag} is not valid UTF-8 text") from None


def check_body(body: str) -> str:
    """Validate a message body: not empty (or only whitespace), valid UTF-8, at most
    `MAX_BODY_BYTES` bytes. Raises `UsageError`; returns the body unchanged."""
    if body is None or not body.strip():
        raise UsageError("--text must not be empty")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError("--text is not valid UTF-8 text") from None
    if size > MAX_BODY_BYTES:
        raise UsageError(f"--text is {size} bytes; the limit is {MAX_BODY_BYTES} bytes (64 KiB) of UTF-8")
    return body
