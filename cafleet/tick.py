"""`cafleet fleet tick`: the out-of-band wake-up for Directors without an in-session scheduler.

Claude Code Directors wake themselves with `/loop` (CronCreate). codex and opencode have no
such tool, so an operator-side driver types the supervision-tick prompt into the Director's
pane instead: once per call (for cron(8) or a systemd timer), or every N seconds until the
fleet is deleted (`--every`). A tick is skipped while the Director's screen is still
changing (it is mid-turn), so ticks never pile up into a busy agent.
"""

from __future__ import annotations

import time

from cafleet.broker import Broker
from cafleet.errors import CafleetError, Conflict, NotFound

BUSY_PROBE_SECONDS = 1.0
"""Two screen snapshots this far apart that differ mean the Director is busy."""


NUDGE = "Report your progress now. If blocked, state what is blocking you."
"""The stall nudge of the seed's template, kept word for word."""


def loop_prompt(fleet_id: str, director_id: str) -> str:
    """The supervision tick as a prompt (the monitoring skill's /loop prompt, which is this
    text with the placeholders `<fleet-id>` and `<director-agent-id>`; tests/test_skills.py
    checks they are the same). `<member-agent-id>` stays a placeholder: the Director fills it
    from the tick's own `member list`. State first, a screen only when a state calls for it
    (issue 12: every command is a model round trip, every byte stays in the Director's context)."""
    f = f"cafleet --fleet-id {fleet_id}"
    return "\n".join([
        "Monitor team health (cafleet tick, every minute), as the cafleet-agent-team-monitoring skill's tick says:",
        f"1. Run `{f} member list`: one line per member with STATE, QUIET, REPORTED, UNREAD.",
        f"2. Run `{f} message poll --agent-id {director_id}`; act on each task, then ack it "
        "(poll again while it says older ones wait).",
        "3. Dispatch queued work with message send.",
        "4. Capture only a member in `dialog`, or `idle` for 2m or more while it holds work you gave it: "
        f"`{f} member capture --member-id <member-agent-id> --changed`. "
        "Never capture or nudge a `working` member, or an idle one without open work.",
        "5. Stalled (idle with open work, quiet across two ticks, no report): "
        f"`{f} message send --agent-id {director_id} --to <member-agent-id> --text \"{NUDGE}\"`. "
        f"UNREAD long after your message: `{f} member ping --member-id <member-agent-id>`.",
        "6. Ask the user about a dialog, an exited member, or two nudges without progress. "
        "Every member reported its work done: tell the user \"All deliverables are ready for review.\"",
        "If nothing needs you, end the tick without comment.",
    ])


def tick_prompt(fleet_id: str, director_id: str) -> str:
    """The one-line prompt `fleet tick` types into the Director's pane: `loop_prompt` with
    its lines joined by spaces (literal ids, the skill's command forms, so the Director's
    permission rules match)."""
    return " ".join(loop_prompt(fleet_id, director_id).split("\n"))


def director_pane(broker: Broker, fleet_id: str, director_id: str | None) -> tuple[str, dict]:
    """(director_id, agent row) of the Director to tick. `Conflict` if it has no pane."""
    if director_id is None:
        director_id = broker.get_fleet(fleet_id)["director_agent_id"]
    d = broker.get_agent(fleet_id, director_id)
    p = d["placement"]
    if not p or not p.get("pane_id"):
        raise Conflict(f"agent {director_id} has no tmux pane to tick")
    return director_id, d


def tick_once(broker: Broker, fleet_id: str, director_id: str | None = None,
              probe_seconds: float = BUSY_PROBE_SECONDS) -> str:
    """One tick through the keystroke gate (`cafleet.gate`, kind `TICK`): typed only into the
    Director's own pane, at the agent (not a shell), with no dialog open (checked again right
    before the Enter) and no turn running, and only when two looks `probe_seconds` apart show
    the same screen. Held previews of the fleet are delivered and member exits swept first
    (`memberstate.list_members`). Returns `typed`, `busy`
    (skipped: mid-turn or still changing) or `held: <reason>` (a dialog, a shell, …). Raises
    `NotFound` for a deleted fleet, `Conflict` when the pane is gone or not the Director's."""
    from cafleet import gate, memberstate

    try:  # delivers held previews and reports exits the pane-died hook missed, like `member list`
        memberstate.list_members(broker, fleet_id)
    except CafleetError:
        pass
    director_id, director = director_pane(broker, fleet_id, director_id)
    target = gate.Target.of(director)
    before = gate.observe(target)
    d = gate.decide(gate.TICK, target, before)
    if d.verdict == gate.REFUSED:
        raise Conflict(f"not ticking the Director: {d.reason}")
    if not d.allowed:
        return "busy" if d.state == "working" else f"held: {d.reason}"
    time.sleep(probe_seconds)
    after = gate.observe(target)
    if after is None or after.screen != before.screen:
        return "busy"
    d = gate.type_line(target, tick_prompt(fleet_id, director_id), gate.TICK, broker=broker)
    if d.allowed:
        return "typed"
    if d.verdict == gate.REFUSED:
        raise Conflict(f"not ticking the Director: {d.reason}")
    return "busy" if d.state == "working" else f"held: {d.reason}"


def run(broker: Broker, fleet_id: str, *, director_id: str | None = None, every: float | None = None,
        report=print, probe_seconds: float = BUSY_PROBE_SECONDS, max_ticks: int | None = None) -> int:
    """Tick once, or every `every` seconds until the fleet is deleted (returns then) or
    `max_ticks` ticks have been attempted. Returns the number of ticks typed. Each tick is
    reported as one line: `<time> tick typed into %N` / `… skipped: Director busy`."""
    typed = attempts = 0
    while True:
        started = time.monotonic()
        try:
            outcome = tick_once(broker, fleet_id, director_id, probe_seconds)
        except NotFound:
            if every is None or _fleet_exists(broker, fleet_id):
                raise  # an unknown --agent-id is an error, not the end of the fleet
            report(f"{_clock()} fleet {fleet_id} is gone; stopping")
            return typed
        except CafleetError as e:
            if every is None:
                raise
            outcome = f"failed: {e.message}"
        attempts += 1
        if outcome == "typed":
            typed += 1
            report(f"{_clock()} tick typed into the Director's pane")
        elif outcome == "busy":
            report(f"{_clock()} tick skipped: the Director's screen is still changing (busy)")
        else:
            report(f"{_clock()} tick {outcome}")
        if every is None or (max_ticks is not None and attempts >= max_ticks):
            return typed
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def _fleet_exists(broker: Broker, fleet_id: str) -> bool:
    try:
        broker.get_fleet(fleet_id)
        return True
    except NotFound:
        return False


def _clock() -> str:
    return time.strftime("%H:%M:%S")
