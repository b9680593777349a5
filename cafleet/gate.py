"""The keystroke gate: the one module that types into a pane.

Every keystroke cafleet sends to an agent's pane -- a message preview, `member ping`,
`member exec`, `member send-input`, `fleet tick`, the exit command of a graceful
`member delete`, an exit notice -- goes through `type_line` or `answer_choice` here (they
type with `cafleet.sendkeys`, which no other cafleet module imports). Each first reads the
pane (`observe`: one tmux client call for the pane's facts and visible screen, plus the
kernel's foreground process group from ``/proc``), then decides with the pure function
`decide` whether this kind of keystroke may go in now:

* identity: the pane carries cafleet's tag for this agent (tmux user option
  ``@cafleet-agent``, set when cafleet made the pane; the DB cannot forge it), its
  ``#{pane_pid}`` is the recorded one, and the agent is its foreground program -- for a
  member the pane's own process (cafleet starts it directly, no shell), for a Director the
  program recorded at `fleet create` -- and not a shell. A mismatch is `REFUSED` ("pane %N
  is not member M's") and nothing is typed.
* state (`cafleet.screens`): no dialog for a line + Enter, checked again right before the
  Enter; the validated choice frame for `send-input`; for a tick also no turn running.

A line whose Enter was withheld because a dialog opened after the text went in (Claude Code
2.1.332 keeps that text as a draft under the dialog and shows it again when the dialog
closes: tests/screens/claude-2.1.332-draft-after-dialog.txt) is recorded on the placement
(`draft_chars`, `draft_mark`); before anything else is typed into that pane, once no dialog
shows and the draft is visible in the input box, it is taken back with that many Backspaces
(``send-keys -N COUNT BSpace``). Seen on the real clients in tmux 3.3a: Claude Code 2.1.332
(tests/e2e/test_scenario_gate.py), codex 0.171.0 and opencode 1.18.33 (a one- and a two-line
draft cleared; tests/screens/*-draft.txt); the stand-in honours it too.

Outcomes are `Decision`s: `ALLOWED` (typed), `HELD` (not now: a dialog, a busy agent, a shell
or another program in the pane; a preview is kept and delivered later, see
`cafleet.delivery`), `REFUSED` (never: the pane is not the agent's, or is gone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cafleet import screens

LINE, CHOICE, FREETEXT, TICK, EXIT = "line", "choice", "freetext", "tick", "exit"
KINDS = (LINE, CHOICE, FREETEXT, TICK, EXIT)
ALLOWED, HELD, REFUSED = "allowed", "held", "refused"

ENTER_DELAY = 0.3
"""Seconds between a line's text and its Enter (see `cafleet.sendkeys.ENTER_DELAY`)."""
CHOICE_TO_TEXT_DELAY = 0.3
"""Seconds between the `4` that opens a choice frame's free-text field and the text."""
DRAFT_ROWS = 8
"""A draft counts as visible when its mark is in this many bottom non-blank rows (the input box)."""
DRAFT_MARK_CHARS = 30
DRAFT_PATIENCE = 3.0
"""Seconds to wait for a taken-back draft to leave the screen."""


@dataclass(frozen=True)
class Target:
    """Where an agent's keys go, from its placement row: ``agent_id``, ``role``
    (``director``/``member``/``agent``), ``socket``, ``pane_id``, ``pane_pid`` (recorded
    ``#{pane_pid}``, None when unknown), ``agent_command`` (the foreground program recorded for
    a pane cafleet did not start, e.g. the Director's ``claude``; None for a member),
    ``draft_chars``/``draft_mark`` (a withheld line left in the input box, or 0/None)."""

    agent_id: str
    role: str
    socket: str
    pane_id: str
    pane_pid: int | None = None
    agent_command: str | None = None
    draft_chars: int = 0
    draft_mark: str | None = None

    @classmethod
    def of(cls, agent: dict) -> "Target | None":
        """The target of an agent row (`Broker.get_agent` shape), or None without a pane."""
        p = agent.get("placement") or {}
        if not p.get("pane_id"):
            return None
        return cls(agent_id=agent["agent_id"], role=agent.get("role") or "agent", socket=p["tmux_socket"],
                   pane_id=p["pane_id"], pane_pid=p.get("pane_pid"), agent_command=p.get("agent_command"),
                   draft_chars=p.get("draft_chars") or 0, draft_mark=p.get("draft_mark"))

    @property
    def who(self) -> str:
        return f"{'member' if self.role == 'member' else 'agent'} {self.agent_id}"


@dataclass(frozen=True)
class Facts:
    """What `observe` read: the tmux `PaneView` fields plus ``foreground_pid``, the pane's
    foreground process group (``tpgid``, field 8 of ``/proc/PANE_PID/stat``, proc(5); None
    where there is no /proc)."""

    pane_id: str
    dead: bool
    dead_status: int | None
    pid: int | None
    foreground: str
    foreground_pid: int | None
    tag: str
    screen: str
    server_pid: int | None = None


@dataclass(frozen=True)
class Decision:
    """``verdict`` in `ALLOWED`/`HELD`/`REFUSED`, ``reason`` (what the pane shows, for a
    user), ``state`` (`cafleet.screens.STATES` or None when not read), ``draft`` (characters
    typed whose Enter was withheld, 0 if none)."""

    verdict: str
    reason: str = ""
    state: str | None = None
    draft: int = 0

    @property
    def allowed(self) -> bool:
        return self.verdict == ALLOWED


def foreground_pgid(pid: int | None) -> int | None:
    """The foreground process group of `pid`'s terminal (``tpgid`` in ``/proc/PID/stat``,
    proc(5)), or None when unknown (no such process, no /proc)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        tpgid = int(stat.rsplit(")", 1)[1].split()[5])
    except (OSError, ValueError, IndexError):
        return None
    return tpgid if tpgid > 0 else None


def observe(target: Target) -> Facts | None:
    """Read the target's pane now; None when the pane or its server is gone. Raises
    `TmuxError` when tmux itself fails."""
    from cafleet import tmux

    v = tmux.pane_view(target.socket, target.pane_id)
    if v is None:
        return None
    return Facts(pane_id=v.pane_id, dead=v.dead, dead_status=v.dead_status, pid=v.pid,
                 foreground=v.current_command, foreground_pid=None if v.dead else foreground_pgid(v.pid),
                 tag=v.tag, screen=v.screen, server_pid=v.server_pid)


# ---------------------------------------------------------------- pure decisions


def identity(target: Target, facts: Facts) -> str | None:
    """Why the pane is not the target's (a refusal reason), or None when tag and pid agree.
    The tag is a space-separated list of agent ids (a Director pane can hold several fleets'
    Directors); a member's pane holds exactly its own id."""
    if target.agent_id not in facts.tag.split() or (target.pane_pid is not None and facts.pid != target.pane_pid):
        return (f"pane {target.pane_id} is not {target.who}'s (its cafleet tag or process does not match "
                "the placement); nothing was typed")
    return None


def program(target: Target, facts: Facts) -> str | None:
    """Why the agent is not the pane's foreground program (a hold reason), or None.

    A member's agent is the pane's own process (`facts.pid`): cafleet starts it with no shell,
    so the foreground process group must be that pid and its name not a shell. A Director's
    pane usually runs a shell that started the agent: the foreground program must not be a
    shell and, when `fleet create` recorded one, must be named like it."""
    if screens.is_shell(facts.foreground):
        return f"the pane shows a shell ({facts.foreground}), not the agent"
    if target.role == "member":
        if facts.foreground_pid is not None and facts.pid is not None and facts.foreground_pid != facts.pid:
            return f"another program ({facts.foreground}) has the pane's terminal, not the agent"
    elif target.agent_command and not screens.is_shell(target.agent_command) \
            and facts.foreground != target.agent_command:
        return f"the pane runs {facts.foreground!r}, not the agent ({target.agent_command})"
    return None


def decide(kind: str, target: Target, facts: Facts | None) -> Decision:
    """May a keystroke of `kind` go into the target's pane now? Pure.

    `LINE`/`EXIT` (text + Enter): the pane is the agent's (`identity`, else REFUSED), alive
    (dead: REFUSED, state `exited`), at the agent (`program`, else HELD, state `shell`) and
    shows no dialog (else HELD). `TICK`: as `LINE`, and no turn running (HELD, `working`).
    `CHOICE`/`FREETEXT`: the pane shows the validated 4-option choice frame, else REFUSED
    saying what it shows. A gone pane is REFUSED.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown keystroke kind {kind!r}")
    if facts is None:
        return Decision(REFUSED, f"pane {target.pane_id} is dead or gone")
    wrong = identity(target, facts)
    if wrong:
        return Decision(REFUSED, wrong)
    if facts.dead:
        status = "" if facts.dead_status is None else f" with status {facts.dead_status}"
        return Decision(REFUSED, f"the agent in pane {target.pane_id} has exited{status}", "exited")
    away = program(target, facts)
    if away:
        return Decision(HELD, away, "shell")
    state = screens.classify(facts.screen)
    if kind in (CHOICE, FREETEXT):
        if screens.choice_frame(facts.screen) is None:
            return Decision(REFUSED, f"pane {target.pane_id} shows no choice frame to answer; it shows "
                                     f"{screens.describe(state, facts.screen)}", state)
        return Decision(ALLOWED, state=state)
    if state == "dialog":
        return Decision(HELD, f"the pane shows a dialog ({screens.open_dialog(facts.screen)!r}); "
                              "its Enter would pick an option", state)
    if kind == TICK and state == "working":
        return Decision(HELD, "the agent is mid-turn", state)
    return Decision(ALLOWED, state=state)


def draft_visible(mark: str | None, screen: str) -> bool:
    """True when a withheld draft (its first characters, `mark`) shows in the input box."""
    if not mark:
        return False
    rows = [r for r in screen.splitlines() if r.strip()][-DRAFT_ROWS:]
    return any(mark in row for row in rows)


def draft_mark(text: str) -> str:
    """What identifies a typed text on screen: its first line's first `DRAFT_MARK_CHARS` characters."""
    return text.split("\n", 1)[0][:DRAFT_MARK_CHARS]


# ---------------------------------------------------------------- typing


def _settle_draft(broker, target: Target, facts: Facts) -> tuple[Facts | None, str | None]:
    """Take a withheld draft back if it shows and no dialog does. Returns fresh facts and a
    hold reason when the draft cannot be taken back yet."""
    from cafleet import sendkeys

    if not target.draft_chars:
        return facts, None
    if screens.open_dialog(facts.screen):
        return facts, "a dialog is open over text cafleet typed earlier"
    if draft_visible(target.draft_mark, facts.screen):
        sendkeys.send_backspaces(target.socket, target.pane_id, target.draft_chars)
        deadline = time.monotonic() + DRAFT_PATIENCE
        while True:  # Claude Code 2.1.332 takes ~0.5 s to redraw after a burst of Backspaces
            time.sleep(0.1)
            facts = observe(target)
            if facts is None or not draft_visible(target.draft_mark, facts.screen):
                break
            if time.monotonic() >= deadline:
                return facts, "text cafleet typed earlier is still in the input box"
    if broker is not None:
        broker.set_draft(target.agent_id, 0, None)
    return facts, None


def type_line(target: Target, text: str, kind: str = LINE, *, broker=None,
              enter_delay: float = ENTER_DELAY) -> Decision:
    """Type `text` + Enter into the target's pane if `decide` allows it, re-checking right
    before the Enter. Returns the `Decision`: ALLOWED when typed and submitted; HELD /
    REFUSED with nothing typed; or HELD with `draft` > 0 when a dialog (or anything else
    `decide` holds for) appeared between the text and the Enter -- no Enter was sent, and the
    draft is recorded on the placement (via `broker`) to be taken back later.
    Raises `TmuxError` when tmux fails."""
    from cafleet import sendkeys

    facts = observe(target)
    d = decide(kind, target, facts)
    if not d.allowed:
        return d
    if target.draft_chars:
        facts, waiting = _settle_draft(broker, target, facts)
        if waiting:
            return Decision(HELD, waiting, d.state)
        d = decide(kind, target, facts)  # the screen changed: decide again on what it shows now
        if not d.allowed:
            return d
    sendkeys.send_literal(target.socket, target.pane_id, text)
    if enter_delay > 0:
        time.sleep(enter_delay)
    again = decide(LINE, target, observe(target))
    if again.verdict == REFUSED:  # the pane died or changed hands meanwhile: nothing to take back
        return again
    if not again.allowed:
        if broker is not None:
            broker.set_draft(target.agent_id, len(text), draft_mark(text))
        return Decision(HELD, f"{again.reason}; it appeared after the text was typed, so no Enter was "
                              "sent and the text will be taken back", again.state, draft=len(text))
    sendkeys.send_enter(target.socket, target.pane_id)
    return Decision(ALLOWED, state=d.state)


def answer_choice(target: Target, *, choice: int | None = None, freetext: str | None = None,
                  enter_delay: float = ENTER_DELAY) -> tuple[Decision, str]:
    """Answer the choice frame on the target's screen: `choice` 1-3 types that digit;
    `freetext` types ``4``, waits, re-checks that the frame's free-text field is still the
    agent's, types the text and Enter. Returns (`Decision`, what was typed). Nothing is typed
    unless `decide(CHOICE, …)` allows it."""
    from cafleet import sendkeys

    d = decide(CHOICE if choice is not None else FREETEXT, target, observe(target))
    if not d.allowed:
        return d, ""
    if choice is not None:
        sendkeys.send_literal(target.socket, target.pane_id, str(choice))
        return d, str(choice)
    sendkeys.send_literal(target.socket, target.pane_id, "4")
    time.sleep(CHOICE_TO_TEXT_DELAY)
    facts = observe(target)  # the frame's text field is open now; the pane must still be the agent's
    if facts is None or identity(target, facts) or facts.dead:
        return decide(LINE, target, facts), "4"
    sendkeys.send_literal(target.socket, target.pane_id, freetext)
    if enter_delay > 0:
        time.sleep(enter_delay)
    sendkeys.send_enter(target.socket, target.pane_id)
    return d, "4" + freetext
