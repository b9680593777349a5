"""Message previews into panes, held previews, and exit notices -- all through the gate.

* `push_preview(task, broker)` types a new task's 2-line preview into its recipient's pane
  (`cafleet.gate.type_line`). When the gate holds it (a dialog, a shell, another program in
  the pane, or a dialog that opened before the Enter), the task is marked held with the
  reason (`Broker.hold`); the task itself is stored either way.
* `deliver_held(broker, fleet_id, …)` retries held previews, oldest first. Later cafleet calls
  on the fleet run it -- `message poll`, `member list`, `member send-input`, `fleet tick`,
  `message send` -- so there is no daemon. A held preview is claimed atomically before it is
  typed (`Broker.claim_held`), so two calls never type it twice, and an acked or canceled
  task is never pushed.
* `member_exited(broker, fleet_id, member_id)` runs from tmux's ``pane-died`` hook on a
  member's pane (`cafleet.tmux.set_exit_hook`): it records the exit and the pane's last
  screen, and sends the Director a task from the member saying so, pushed like any message.

Stdlib only until there is something to type (tmux is imported lazily).
"""

from __future__ import annotations

from cafleet import keystrokes
from cafleet.errors import CafleetError

NOTICE_LINES = 5
"""How many last non-blank lines of a dead pane an exit notice quotes."""


def _outcome(notified: bool, pane_id, reason=None, held: bool = False) -> dict:
    return {"notified": notified, "pane_id": pane_id, "reason": reason, "held": held}


def push_preview(task: dict, broker=None) -> dict:
    """Type the preview of `task` (a `Broker.send` row with `recipient`) into the recipient's
    pane through the gate. Never raises. Returns `{notified, pane_id, reason, held}`; `held`
    is True when the preview was recorded for later delivery (needs `broker`)."""
    from cafleet import gate

    recipient = task.get("recipient") or {}
    target = gate.Target.of(recipient) if recipient else None
    if recipient.get("agent_id") == task["sender_agent_id"]:
        return _outcome(False, None, "self-send")
    if target is None:
        return _outcome(False, None, "recipient has no pane")
    text = keystrokes.preview_text(task["task_id"], task["sender_name"], task["sender_agent_id"], task["body"])
    try:
        d = gate.type_line(target, text, broker=broker)
    except CafleetError as e:
        # tmux failed for this process (a codex member's sandbox cannot reach the socket):
        # a later cafleet call from elsewhere can still deliver it
        d = gate.Decision(gate.HELD, f"tmux failed from here ({e.message})")
    except Exception as e:  # the push must never fail the send
        return _outcome(False, target.pane_id, f"push failed: {e}")
    if d.allowed:
        return _outcome(True, target.pane_id)
    if d.verdict == gate.HELD and broker is not None:
        try:
            broker.hold(task["task_id"], d.reason)
        except CafleetError:
            return _outcome(False, target.pane_id, d.reason)
        return _outcome(False, target.pane_id, f"held: {d.reason}; delivered by a later cafleet call", held=True)
    return _outcome(False, target.pane_id, d.reason)


def deliver_held(broker, fleet_id: str, recipient_id: str | None = None) -> list[dict]:
    """Push held previews of the fleet (or of one recipient) that the gate now allows, oldest
    first; a recipient whose oldest held preview still cannot go in gets nothing newer. Returns
    one `{task_id, recipient_agent_id, notified, reason}` per preview tried. Raises only
    `CafleetError` from the DB."""
    out = []
    try:
        if not broker.has_held(fleet_id):
            return out
        tasks = broker.held_tasks(fleet_id, recipient_id)
    except CafleetError:
        return out
    blocked: set[str] = set()
    for t in tasks:
        rid = t["recipient_agent_id"]
        if rid in blocked:
            continue
        if not broker.claim_held(t["task_id"]):
            continue  # another call took it, or it was acked meanwhile
        try:  # read now: the placement may have changed (a draft recorded) since the claim's read
            t["recipient"] = broker.get_agent(fleet_id, rid)
        except CafleetError:
            continue  # deregistered meanwhile
        # held again if the gate still holds it; refused (the pane is gone, exited or not the
        # agent's) drops it from delivery -- the task itself stays in the recipient's inbox
        result = push_preview(t, broker)
        if not result["notified"]:
            blocked.add(rid)  # keep the order: nothing newer goes in before it
        out.append({"task_id": t["task_id"], "recipient_agent_id": rid, "notified": result["notified"],
                    "reason": result["reason"]})
    return out


def deliver_quietly(broker, fleet_id: str, recipient_id: str | None = None) -> None:
    """`deliver_held` for callers whose own output must not change (poll, member list)."""
    try:
        deliver_held(broker, fleet_id, recipient_id)
    except Exception:  # delivery is a courtesy of this call, never its failure
        pass


# ---------------------------------------------------------------- exit notices


def notice_text(name: str, status: int | None, last_lines: str) -> str:
    """The body of an exit notice: ``cafleet: member NAME exited with status S; last lines: …``."""
    how = "with an unknown status" if status is None else f"with status {status}"
    tail = last_lines.strip() or "(the pane was blank)"
    return (f"cafleet: member {name} exited {how}; its pane is kept until `member delete`. "
            f"Last lines:\n{tail}")


def last_lines(screen: str, n: int = NOTICE_LINES) -> str:
    """The last `n` non-blank lines of a screen, without tmux's ``Pane is dead`` notice."""
    rows = [r for r in screen.splitlines() if r.strip() and not r.startswith("Pane is dead")]
    return "\n".join(rows[-n:])


def member_exited(broker, fleet_id: str, member_id: str) -> dict | None:
    """Record that member `member_id`'s agent exited and tell its Director, once.

    Reads the dead pane (`#{pane_dead_status}`, its last screen), stores them on the
    placement, and sends the Director (the member's parent) a task from the member with
    `notice_text`, pushed through the gate (held if the Director's pane is not ready).
    Returns the task row, or None when there is nothing to report (already reported, the
    member was deleted, the pane is alive)."""
    import time

    from cafleet import tmux

    try:
        m = broker.get_agent(fleet_id, member_id, flag="--member-id")
    except CafleetError:
        return None
    p = m.get("placement") or {}
    if m["role"] != "member" or not p.get("pane_id"):
        return None
    view = tmux.pane_view(p["tmux_socket"], p["pane_id"])
    if view is not None and (view.tag != member_id or not view.dead):
        return None
    deadline = time.monotonic() + 0.3  # tmux records the status when it reaps the process, a moment later
    while view is not None and view.dead_status is None and time.monotonic() < deadline:
        time.sleep(0.03)
        view = tmux.pane_view(p["tmux_socket"], p["pane_id"]) or view
    status = None if view is None else view.dead_status
    screen = "" if view is None else _dead_screen(p["tmux_socket"], p["pane_id"], view.screen)
    if not broker.mark_exited(member_id, status, screen):
        return None
    director_id = m["parent_agent_id"] or broker.get_fleet(fleet_id)["director_agent_id"]
    task = broker.send(fleet_id, member_id, director_id, notice_text(m["name"], status, last_lines(screen)))
    push_preview(task, broker)
    return task


def _dead_screen(socket: str, pane_id: str, screen: str) -> str:
    """The dead pane's screen; when tmux's notice pushed the output into history, the history too."""
    from cafleet import tmux

    if last_lines(screen).strip():
        return screen
    try:
        return tmux.capture(socket, pane_id, 200)
    except CafleetError:
        return screen
