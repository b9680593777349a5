"""What cafleet records to supervise agents in their panes, beside their messages.

A mixin of `cafleet.broker.Broker` (stdlib only, like it): each agent's placement and what
the keystroke gate and supervision saw there (the draft whose Enter the gate withheld, the
screen's hash and when it last changed, the exit), previews held until a pane can take them,
which agent a pane hosts (the hooks' "who am I"), a member's git worktree row, and the hooks'
records of a Director's `/loop` jobs and of notices given once.

It relies on its host for `get_agent`, `_agents` (agent rows with `placement`) and
`_TASK_SELECT` (the task row shape), and on `cafleet.store.Store` for transactions.
"""

from __future__ import annotations

from cafleet.store import now


class SupervisionRecords:
    """Placements, held previews, worktree rows, loops and notices (mixed into `Broker`).

    Every method that writes runs in its own `BEGIN IMMEDIATE` transaction.
    """

    # -- placements ----------------------------------------------------------

    def _insert_placement(self, c, agent_id, fleet_id, placement, coding_agent, ts) -> None:
        """Write the agent's placement row inside the caller's transaction `c` (also used by
        the broker's `create_fleet` and `register_agent`)."""
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
            ts = now()
            c.execute("UPDATE placements SET screen_hash = ?, screen_changed_at = ? WHERE agent_id = ?",
                      (screen_hash, ts, agent_id))
            return None if row[0] is None else ts

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
        """Tasks with a held preview, oldest first, each with `held_reason` and `held_at`. An
        acked or canceled task is never held (both clear it)."""
        sql = self._TASK_SELECT.replace(" FROM tasks t", ", t.held_at FROM tasks t") + \
            " WHERE t.fleet_id = ? AND t.held_reason IS NOT NULL"
        params: tuple = (fleet_id,)
        if recipient_id is not None:
            sql += " AND t.recipient_agent_id = ?"
            params += (recipient_id,)
        return self._rows(sql + " ORDER BY t.seq", params)

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

    # -- which agent a pane hosts --------------------------------------------

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
