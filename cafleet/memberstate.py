"""A member's state as its Director sees it: `list_members` (each member with its member
state, how long its screen has been quiet, held previews, its exit) and `capture` (its pane,
whole or only what changed since the Director's last look).

A look reads the pane through the gate's one-call view (`gate.observe`) and classifies the
screen (`screens.classify`). Looking also does two chores the Director would otherwise miss,
both through `cafleet.delivery` (which types only through the gate): it delivers previews
held for panes that can now take them (`delivery.deliver_quietly`), and it reports an exit
tmux's pane-died hook missed (`delivery.member_exited`). The member rows, their panes and their lifecycle are
`cafleet.members`'.

Errors: `NotFound` (no such member in this fleet), `Conflict` (no pane to look at),
`TmuxError`.
"""

from __future__ import annotations

import os
import time

from cafleet.broker import Broker
from cafleet.errors import CafleetError, Conflict
from cafleet.members import _member, _pane, pane_state, pane_status
from cafleet.store import now


def list_members(broker: Broker, fleet_id: str, director_id: str | None = None) -> list[dict]:
    """`Broker.list_members` rows plus `pane_status` (alive/dead/pending), `state`
    (`screens.STATES`, None while pending or when the pane is gone), `quiet_s` (whole seconds
    the visible screen has been unchanged, None when unknown: first look, or no screen),
    `held` (held previews addressed to it), `exit_status` and `last_line` (of an exited agent).
    Delivers held previews first (`delivery.deliver_held`)."""
    from cafleet import delivery

    delivery.deliver_quietly(broker, fleet_id)
    rows = broker.list_members(fleet_id, director_id)
    held = broker.held_counts(fleet_id)
    for r in rows:
        r.update(_look(broker, r))
        r["pane_status"] = pane_status(r) if r["state"] is None else ("dead" if r["state"] == "exited" else "alive")
        r["held"] = held.get(r["agent_id"], 0)
    return rows


def _look(broker: Broker, m: dict) -> dict:
    """`state`, `quiet_s`, `exit_status`, `last_line` of one member, from one look at its pane."""
    import hashlib

    from cafleet import delivery, gate, screens

    p = m["placement"] or {}
    out = {"state": None, "quiet_s": None, "exit_status": p.get("exit_status"), "last_line": None}
    if p.get("exited_at"):
        out["last_line"] = delivery.last_lines(p.get("last_screen") or "", 1) or None
    target = gate.Target.of(m)
    if target is None:
        return out
    try:
        facts = gate.observe(target)
    except CafleetError:
        return out
    if facts is None or gate.identity(target, facts):
        return out
    away = None if facts.dead else gate.program(target, facts)
    out["state"] = "exited" if facts.dead else ("shell" if away else screens.classify(facts.screen))
    if facts.dead and not p.get("exited_at"):
        # The pane-died hook has not reported it. tmux 3.3a marks a pane dead when its pty
        # closes but fires pane-died only once it reaps the process, and now and then it misses
        # that SIGCHLD (the process stays a zombie until another child of the server exits;
        # seen for 1-2 of 6 SIGKILLed panes here). A SIGCHLD makes it reap (and record the exit
        # status); then report it now, once (the hook, if it fires, finds it reported).
        if facts.dead_status is None and facts.server_pid:
            import signal

            try:
                os.kill(facts.server_pid, signal.SIGCHLD)
            except OSError:
                pass
        delivery.member_exited(broker, m["fleet_id"], m["agent_id"])
    if facts.dead:
        if out["exit_status"] is None:
            out["exit_status"] = facts.dead_status
        out["last_line"] = out["last_line"] or delivery.last_lines(facts.screen, 1) or None
    changed = broker.note_screen(m["agent_id"], hashlib.sha256(facts.screen.encode()).hexdigest())
    if changed is not None:
        out["quiet_s"] = max(0, int(_seconds_since(changed)))
    return out


def _seconds_since(ts: str) -> float:
    from cafleet.render import epoch_of

    return time.time() - epoch_of(ts)


CHANGED_EXTRA_ROWS = 200
"""Rows captured beyond `lines` for a compact view, so blank padding (a Claude Code screen
is mostly blank rows) does not crowd out the `lines` lines with content."""


def capture(broker: Broker, fleet_id: str, member_id: str, lines: int = 30, *, changed: bool = False) -> dict:
    """Look at the member's pane. An exited
    member's pane is kept until `member delete`: its last screen is shown under a line
    saying it exited.

    Plain: the last `lines` lines of the pane, wrapped lines joined:
    `{member_agent_id, pane_id, lines, content}`.
    `changed`: the compact view's last `lines` lines, of which only what changed since the
    previous `changed` look at this member (`looks.changes`), and that view is recorded as
    the new look (`cafleet.looks`; a plain capture, e.g. by the user, neither reads nor moves
    it); adds `previous_look_at` (ISO time or
    None), `previous_look_age_s`, `view_lines` and `unchanged` (bool; `content` is then "").
    Raises `NotFound`, `Conflict` (no pane to look at), `TmuxError`."""
    from cafleet import looks, tmux

    m = _member(broker, fleet_id, member_id)
    socket, pane_id = _pane(m)
    state = pane_state(m["placement"])
    head = None
    if state == "alive":
        body = tmux.capture(socket, pane_id, lines + CHANGED_EXTRA_ROWS if changed else lines)
    elif m["placement"].get("exited_at") or state == "dead":
        # the agent exited: its pane is kept (remain-on-exit) until `member delete`
        body = m["placement"].get("last_screen") or ""
        if state == "dead":
            body = "\n".join(r for r in tmux.capture(socket, pane_id, lines + 5).splitlines()
                             if not r.startswith("Pane is dead"))
        status = m["placement"].get("exit_status")
        head = f"(member exited{'' if status is None else f' with status {status}'}; its last screen:)"
    else:
        raise Conflict(f"member {member_id}'s pane {pane_id} is dead or gone; "
                       "see `member list`, and `member delete --force` to clean it up")
    out = {"member_agent_id": member_id, "pane_id": pane_id, "lines": lines}
    if not changed:
        content = body if head is None else head + "\n" + "\n".join(body.splitlines()[-lines:])
        return {**out, "content": content}
    view = ([head] if head else []) + looks.compact(body, lines)
    previous = looks.last_look(broker.path, member_id)
    shown = looks.changes(previous["lines"] if previous else None, view)
    looks.record_look(broker.path, member_id, view)
    return {**out, "content": "\n".join(shown or []), "unchanged": shown is None,
            "previous_look_at": now(previous["at"]) if previous else None,
            "previous_look_age_s": int(time.time() - previous["at"]) if previous else None,
            "view_lines": len(view)}
