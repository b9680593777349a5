"""What wakes a Director: the "something to do" of a supervision tick, and how to wait for it.

Stdlib only (the MCP server in `cafleet.mcp_server` and the CLI both use it). A Director has
something to do when

- a task addressed to it is un-acked and has not been reported by this watch yet
  (a member's report, a question, cafleet's own exit notice);
- one of its members turned to `dialog` (its screen shows a permission/approval prompt or a
  choice frame: `screens.open_dialog`) or `exited` (its pane is dead or gone, or a shell has
  it: `screens.classify`) -- unless cafleet recorded that exit (`exited_at`): then its exit
  notice, a task from the member, already says so;
- one of its members' screens has not changed for `stall_seconds` (quiet: stalled, or idle
  with nothing to do, either way the Director should look).

A :class:`Watch` remembers what it has reported, so each event is reported once: a member is
reported again only after it left that state (its dialog closed, its screen moved).
:meth:`Watch.wait` blocks until there are events or the timeout passes and returns a
:class:`Digest`, whose `text()` is the short tick digest a Director reads: what happened and
the literal `cafleet` commands to run next (the forms of the monitoring skill, so the
Director's permission rules match them).

Cost: checking the inbox is one indexed SELECT (every `TASK_INTERVAL` s); checking members is
one `display-message` and one `capture-pane` per member (every `MEMBER_INTERVAL` s). Nothing
is typed into any pane.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

#: Seconds a member's screen may stay unchanged before the Director is woken about it.
STALL_SECONDS = 300.0
#: How often the Director's inbox is checked while waiting (s).
TASK_INTERVAL = 0.2
#: How often members' panes are looked at while waiting (s).
MEMBER_INTERVAL = 1.0
#: Default and largest wait (s). codex's MCP `tool_timeout_sec` is set to `TOOL_TIMEOUT` by
#: `cafleet mcp config`, so a wait always returns before codex gives up on the call.
DEFAULT_TIMEOUT = 240.0
TOOL_TIMEOUT = 300
MAX_TIMEOUT = TOOL_TIMEOUT - 30.0
#: Characters of a task body shown in the digest.
BODY_PREVIEW = 300
#: Tasks listed one by one in a digest; a longer backlog is summed up (poll shows all).
MAX_LISTED = 8


@dataclass(frozen=True)
class Event:
    """One thing to do. `kind`: `task`, `dialog`, `exited` or `stalled`."""

    kind: str
    agent_id: str  # the sender (task) or the member
    name: str
    detail: str = ""  # task body / dialog marker / quiet seconds
    task_id: str | None = None


@dataclass
class Digest:
    """What a wait returns: `events` (possibly none: a timeout) and how long it waited (s)."""

    fleet_id: str
    director_id: str
    events: list[Event] = field(default_factory=list)
    waited_s: float = 0.0
    canceled: bool = False

    def text(self) -> str:
        """The tick digest: one line per event, then the literal next commands."""
        f, d = f"cafleet --fleet-id {self.fleet_id}", self.director_id
        if not self.events:
            why = "canceled" if self.canceled else f"nothing new in {self.waited_s:.0f} s"
            return (f"cafleet: {why}. Nothing to run; call the wait tool again to keep "
                    "supervising.")
        lines = [f"cafleet: {len(self.events)} new for Director {d}:"]
        nxt: list[str] = []
        tasks = [e for e in self.events if e.kind == "task"]
        more = len(tasks) - MAX_LISTED
        tasks = tasks[:MAX_LISTED]
        for e in tasks:
            body = " ".join(e.detail.split())
            if len(body) > BODY_PREVIEW:
                body = body[:BODY_PREVIEW] + "… (full text: message poll)"
            lines.append(f"- task {e.task_id} from {e.name} ({e.agent_id}): {body}")
        if more > 0:
            lines.append(f"- and {more} more task(s): read them with message poll")
        if tasks:
            nxt.append(f"{f} message poll --agent-id {d}")
            nxt += [f"{f} message ack --agent-id {d} --task-id {e.task_id}" for e in tasks]
        for e in self.events:
            m = f"{f} member capture --member-id {e.agent_id} --lines 120"
            if e.kind == "dialog":
                lines.append(f"- member {e.name} ({e.agent_id}) shows a prompt ({e.detail!r}): "
                             "read it, answer only what the user decided")
                nxt.append(m)
            elif e.kind == "exited":
                why = e.detail or "its pane is dead or gone"
                lines.append(f"- member {e.name} ({e.agent_id}) exited ({why})")
                nxt.append(f"{f} member list")
                nxt.append(f"{f} member delete --member-id {e.agent_id} --force")
            elif e.kind == "stalled":
                lines.append(f"- member {e.name} ({e.agent_id}) has been quiet for "
                             f"{e.detail} s")
                nxt.append(m)
        lines.append("next:")
        lines += [f"  {c}" for c in dict.fromkeys(nxt)]
        lines.append("then call the wait tool again.")
        return "\n".join(lines)


def _observe_member(placement: dict | None) -> tuple[str, str | None, str]:
    """(state, detail, screen hash) of one member's pane: `exited` (pane dead or gone, or a
    shell has it: `screens.classify`'s `exited`/`shell`), `dialog` (detail: its marker),
    `pending` (no pane yet, or tmux not reachable) or `live` (working or idle; the hash of
    the visible screen tells quiet from busy). Two tmux calls; never raises."""
    import hashlib

    from cafleet import screens, tmux
    from cafleet.errors import CafleetError

    if not placement or not placement.get("pane_id"):
        return "pending", None, ""
    socket, pane_id = placement["tmux_socket"], placement["pane_id"]
    try:
        info = tmux.pane_info(socket, pane_id)
        recorded = placement.get("pane_pid")
        if info is None or (recorded is not None and info.pid != recorded):
            return "exited", "its pane is gone", ""
        if info.dead:
            return "exited", "its pane is dead", ""
        screen = tmux.screen(socket, pane_id)
    except (CafleetError, OSError):
        return "pending", None, ""
    state = screens.classify(screen, foreground=info.current_command)
    if state == "shell":
        return "exited", f"a shell ({info.current_command}) has its pane", ""
    if state == "dialog":
        return "dialog", screens.open_dialog(screen), ""
    return "live", None, hashlib.sha256(screen.encode()).hexdigest()


class Watch:
    """Events for one Director of one fleet, each reported once. Thread-safe enough for one
    waiter at a time (the MCP server runs one wait per Director).

    `broker` is an open `cafleet.broker.Broker`; `observe(placement) -> (state, marker, hash)`
    and `clock` are for tests."""

    def __init__(self, broker, fleet_id: str, director_id: str, *,
                 stall_seconds: float = STALL_SECONDS,
                 observe: Callable[[dict | None], tuple[str, str | None, str]] = _observe_member,
                 clock: Callable[[], float] = time.monotonic):
        self.broker, self.fleet_id, self.director_id = broker, fleet_id, director_id
        self.stall_seconds = stall_seconds
        self.observe, self.clock = observe, clock
        self.reported_tasks: set[str] = set()
        self.reported_state: dict[str, str] = {}  # member -> state last reported
        self.screens: dict[str, tuple[str, float]] = {}  # member -> (hash, changed at)
        self.exited_seen: set[str] = set()  # members seen exited once (not yet reported)
        broker.get_agent(fleet_id, director_id)  # NotFound for a wrong fleet / Director

    def new_tasks(self) -> list[Event]:
        out = []
        for t in self.broker.inbox(self.fleet_id, self.director_id):
            if t["task_id"] not in self.reported_tasks:
                self.reported_tasks.add(t["task_id"])
                out.append(Event("task", t["sender_agent_id"], t["sender_name"], t["body"],
                                 t["task_id"]))
        return out

    def member_events(self) -> list[Event]:
        out = []
        now = self.clock()
        for m in self.broker.list_members(self.fleet_id, self.director_id):
            aid = m["agent_id"]
            state, marker, h = self.observe(m.get("placement"))
            if state == "live":
                prev = self.screens.get(aid)
                if prev is None or prev[0] != h:
                    self.screens[aid] = (h, now)
                    quiet = 0.0
                else:
                    quiet = now - prev[1]
                state = "stalled" if quiet >= self.stall_seconds else "live"
                detail = f"{quiet:.0f}"
            else:
                self.screens.pop(aid, None)
                detail = marker or ""
                if state == "exited" and (m.get("placement") or {}).get("exited_at"):
                    # cafleet recorded the exit: its exit notice is a task (reported as one),
                    # or the exit was asked for (a graceful `member delete`)
                    self.reported_state[aid] = state
                elif state == "exited" and aid not in self.exited_seen:
                    self.exited_seen.add(aid)
                    continue  # seen dead just now: give tmux's pane-died hook a check to record it
            if state != "exited":
                self.exited_seen.discard(aid)
            if state in ("dialog", "exited", "stalled"):
                if self.reported_state.get(aid) != state:
                    self.reported_state[aid] = state
                    out.append(Event(state, aid, m["name"], detail))
            else:
                self.reported_state.pop(aid, None)
        return out

    def wait(self, timeout: float = DEFAULT_TIMEOUT, cancel: threading.Event | None = None,
             *, task_interval: float = TASK_INTERVAL,
             member_interval: float = MEMBER_INTERVAL) -> Digest:
        """Block until there is something to do or `timeout` seconds (capped at
        `MAX_TIMEOUT`) pass, or `cancel` is set. Returns the digest (events may be empty)."""
        timeout = max(0.0, min(float(timeout), MAX_TIMEOUT))
        start = time.monotonic()
        deadline = start + timeout
        next_members = start
        events: list[Event] = []
        while True:
            events += self.new_tasks()
            now = time.monotonic()
            if now >= next_members:
                events += self.member_events()
                next_members = now + member_interval
            if events or now >= deadline or (cancel is not None and cancel.is_set()):
                break
            pause = min(task_interval, max(0.0, deadline - now))
            if cancel is not None:
                cancel.wait(pause)
            else:
                time.sleep(pause)
        return Digest(self.fleet_id, self.director_id, events, time.monotonic() - start,
                      canceled=bool(cancel is not None and cancel.is_set() and not events))
