"""The cafleet broker: fleets, agents and the tasks they send each other, in one SQLite file.

Stdlib only (hooks import it with a bare `python3`). `Broker` is a `cafleet.store.Store`
(the file: its path, opening and migrating, transactions, errors) with the records of
`cafleet.supervision.SupervisionRecords` (placements, held previews, worktree rows, loops)
mixed in; this module is the message broker itself. Every public operation is one
transaction; writes start with `BEGIN IMMEDIATE`, so two processes never interleave a
read-then-write and a waiting writer blocks on SQLite's busy timeout instead of failing
with "database is locked" half-way.

Ids are canonical lowercase UUID4 strings.

Rows come back as plain dicts so the CLI can print them or dump them as JSON.
"""

from __future__ import annotations

import os

from cafleet.errors import Conflict, Forbidden, NotFound, UsageError
from cafleet.store import Store, now
from cafleet.supervision import SupervisionRecords

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

TASK_STATES = ("input_required", "completed", "canceled")
_HEX = frozenset("0123456789abcdef")


# ---------------------------------------------------------------- ids


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


# ---------------------------------------------------------------- the broker


class Broker(SupervisionRecords, Store):
    """An open cafleet database. Use `Broker.open()`; close it, or use it as a context manager.

    Every method that writes runs in its own `BEGIN IMMEDIATE` transaction. Methods raise
    `NotFound`, `Forbidden`, `Conflict`, `UsageError` or `DatabaseError` (all `CafleetError`).
    """

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
