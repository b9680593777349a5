"""The broker's schema and its history: `MIGRATIONS[n]` takes a file at `PRAGMA user_version`
n-1 to n (`Store._migrate` runs them in order, each in the opening write transaction).

A migration is added, never edited: a user's file may be at any older version. Stdlib only,
imported by the hooks through `cafleet.broker` (its `cafleet.store`).
"""

from __future__ import annotations

SCHEMA_VERSION = 4
"""The newest schema; a file written by a newer cafleet is refused, untouched."""

MIGRATIONS = {
    1: """
    CREATE TABLE fleets (
        fleet_id          TEXT PRIMARY KEY,
        name              TEXT NOT NULL,
        director_agent_id TEXT NOT NULL,
        created_at        TEXT NOT NULL,
        deleted_at        TEXT
    );
    CREATE TABLE agents (
        agent_id        TEXT PRIMARY KEY,
        fleet_id        TEXT NOT NULL REFERENCES fleets(fleet_id),
        name            TEXT NOT NULL,
        description     TEXT NOT NULL DEFAULT '',
        role            TEXT NOT NULL CHECK (role IN ('director', 'member', 'agent')),
        parent_agent_id TEXT REFERENCES agents(agent_id),
        coding_agent    TEXT,
        status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deregistered')),
        created_at      TEXT NOT NULL,
        last_seen       TEXT,
        deregistered_at TEXT
    );
    CREATE INDEX agents_by_fleet ON agents (fleet_id, status);
    CREATE TABLE placements (
        agent_id     TEXT PRIMARY KEY REFERENCES agents(agent_id),
        fleet_id     TEXT NOT NULL REFERENCES fleets(fleet_id),
        tmux_socket  TEXT NOT NULL,
        session_name TEXT NOT NULL,
        window_id    TEXT NOT NULL,
        pane_id      TEXT,
        coding_agent TEXT NOT NULL,
        created_at   TEXT NOT NULL
    );
    CREATE INDEX placements_by_pane ON placements (tmux_socket, pane_id);
    CREATE TABLE tasks (
        seq                INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id            TEXT NOT NULL UNIQUE,
        fleet_id           TEXT NOT NULL REFERENCES fleets(fleet_id),
        sender_agent_id    TEXT NOT NULL REFERENCES agents(agent_id),
        recipient_agent_id TEXT NOT NULL REFERENCES agents(agent_id),
        body               TEXT NOT NULL,
        state              TEXT NOT NULL DEFAULT 'input_required'
                           CHECK (state IN ('input_required', 'completed', 'canceled')),
        broadcast_id       TEXT,
        created_at         TEXT NOT NULL,
        updated_at         TEXT NOT NULL
    );
    CREATE INDEX tasks_inbox ON tasks (recipient_agent_id, state, seq);
    CREATE TABLE loops (
        agent_id   TEXT NOT NULL REFERENCES agents(agent_id),
        loop_id    TEXT NOT NULL,
        session_id TEXT,
        cron       TEXT,
        prompt     TEXT,
        durable    INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        deleted_at TEXT,
        PRIMARY KEY (agent_id, loop_id)
    );
    CREATE TABLE notices (
        agent_id   TEXT NOT NULL REFERENCES agents(agent_id),
        kind       TEXT NOT NULL,
        key        TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (agent_id, kind, key)
    );
    """,
    # 2: the pid of the pane's process when the placement was recorded. tmux numbers panes
    # per server (%0, %1, …), so after a server restart `%N` on the same socket can be a
    # stranger's pane; a pane whose pid differs is not the agent's.
    2: """
    ALTER TABLE placements ADD COLUMN pane_pid INTEGER;
    """,
    # 3: the keystroke gate (cafleet/gate.py). Placements: the foreground program recorded
    # for a pane cafleet did not start (the Director's), a withheld draft to take back, the
    # last screen hash and when it changed (member "quiet" time), and the exit of the agent
    # (status, time, last screen, kept until `member delete`). Tasks: a preview that could
    # not be typed is held with its reason and delivered by a later cafleet call.
    3: """
    ALTER TABLE placements ADD COLUMN agent_command TEXT;
    ALTER TABLE placements ADD COLUMN draft_chars INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE placements ADD COLUMN draft_mark TEXT;
    ALTER TABLE placements ADD COLUMN screen_hash TEXT;
    ALTER TABLE placements ADD COLUMN screen_changed_at TEXT;
    ALTER TABLE placements ADD COLUMN exited_at TEXT;
    ALTER TABLE placements ADD COLUMN exit_status INTEGER;
    ALTER TABLE placements ADD COLUMN last_screen TEXT;
    ALTER TABLE tasks ADD COLUMN held_reason TEXT;
    ALTER TABLE tasks ADD COLUMN held_at TEXT;
    CREATE INDEX tasks_held ON tasks (fleet_id, recipient_agent_id, seq) WHERE held_reason IS NOT NULL;
    """,
    # 4: a member's own git worktree (`member create --worktree`, cafleet/worktrees.py):
    # `repo` the working tree it was made from, `base` the ref as named (a branch keeps
    # moving as the Director merges), `base_commit` what that ref was at creation;
    # `removed_at` once the worktree directory is gone (the branch always stays).
    4: """
    CREATE TABLE worktrees (
        agent_id    TEXT PRIMARY KEY REFERENCES agents(agent_id),
        fleet_id    TEXT NOT NULL REFERENCES fleets(fleet_id),
        repo        TEXT NOT NULL,
        path        TEXT NOT NULL,
        branch      TEXT NOT NULL,
        base        TEXT NOT NULL,
        base_commit TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        removed_at  TEXT
    );
    CREATE INDEX worktrees_by_fleet ON worktrees (fleet_id);
    """,
}
assert max(MIGRATIONS) == SCHEMA_VERSION
