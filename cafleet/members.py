"""Member lifecycle: spawn a coding agent in a pane, type into it, stop it. (Looking at
members -- their member states, a capture of a pane -- is `cafleet.memberstate`.)

A member is an agent with `role = 'member'`, a `parent_agent_id` (the Director that spawned
it) and a placement in a pane split from the Director's window. The broker holds the rows;
`cafleet.tmux` touches panes; `cafleet.backends` knows each coding agent's argv; the text
rules for keystrokes live in `cafleet.keystrokes`. Every keystroke is sent literally
(`send-keys -l`), never through a shell.

Errors: `NotFound` (member not in this fleet — the only boundary is fleet isolation),
`Conflict` (no pane to act on), `CafleetError` (backend binary missing), `Timeout` (a
graceful delete that did not close the pane), `TmuxError`.
"""

from __future__ import annotations

import os
import time

from cafleet import keystrokes
from cafleet.broker import Broker
from cafleet.errors import CafleetError, Conflict, NotFound, Timeout

PANE_STATUSES = ("alive", "dead", "pending")


# ---------------------------------------------------------------- prompts


def poll_command(fleet_id: str, agent_id: str) -> str:
    """The literal poll command of an agent (what `member ping` types)."""
    return f"cafleet --fleet-id {fleet_id} message poll --agent-id {agent_id}"


def identity_prompt(fleet_id: str, agent_id: str, director_id: str, name: str, description: str) -> str:
    """The part of every member's first prompt that says who it is and how to talk.

    Commands are written out with literal ids so the member's permission rules match them.
    """
    base = f"cafleet --fleet-id {fleet_id} message"
    return "\n".join([
        f"You are {name}, a member of a cafleet team run by a Director agent. Your role: {description}",
        f"Your fleet id: {fleet_id}. Your agent id: {agent_id}. Your Director's agent id: {director_id}.",
        "Talk to the Director only with these commands, ids written out literally (never shell variables):",
        f"- read your inbox: {base} poll --agent-id {agent_id}",
        f"- ack a task once read: {base} ack --agent-id {agent_id} --task-id <task-id>",
        f'- report or ask: {base} send --agent-id {agent_id} --to {director_id} --text "<text>"',
        "A line starting `[cafleet]` in your input means a task arrived: poll, do it, ack it, report back.",
        "Never run tmux yourself. If you need a shell command you are not allowed to run, ask the Director "
        "to run it for you (it uses `cafleet member exec`).",
        'First send the Director the text "ready", then wait for tasks.',
    ])


PROMPT_HEADING = "\n\nFrom the Director (your role and background; tasks come by message):\n"
"""Put between the identity part and the Director's own prompt text (`member create -- PROMPT`)."""


# ---------------------------------------------------------------- helpers


def _director(broker: Broker, fleet_id: str, director_id: str | None) -> dict:
    if director_id is None:
        director_id = broker.get_fleet(fleet_id)["director_agent_id"]
    director = broker.get_agent(fleet_id, director_id)
    placement = director["placement"]
    if not placement or not placement.get("pane_id"):
        raise Conflict(
            f"agent {director_id} has no tmux pane, so it cannot spawn members; run `cafleet fleet create` "
            "inside tmux (or pass --agent-id of an agent that has a pane)"
        )
    return director


def _member(broker: Broker, fleet_id: str, member_id: str) -> dict:
    m = broker.get_agent(fleet_id, member_id, flag="--member-id")
    if m["role"] != "member":
        raise NotFound(f"member {member_id} not found in fleet {fleet_id} (that agent is not a member)")
    return m


def _pane(m: dict) -> tuple[str, str]:
    """(socket, pane_id) of a member, or `Conflict` if it has none yet."""
    p = m["placement"]
    if not p or not p.get("pane_id"):
        raise Conflict(f"member {m['agent_id']} has no pane yet (pending)")
    return p["tmux_socket"], p["pane_id"]


def pane_state(placement: dict | None) -> str:
    """Where an agent's pane stands: `pending` (no pane id yet), `alive`, `dead` (kept by
    remain-on-exit, its process ended) or `gone` (no such pane — or a pane with that id whose
    process is not the one recorded: after a tmux server restart `%N` names a stranger's pane).
    Raises `TmuxError` only when tmux itself is missing or failing."""
    from cafleet import tmux

    if not placement or not placement.get("pane_id"):
        return "pending"
    info = tmux.pane_info(placement["tmux_socket"], placement["pane_id"])
    if info is None:
        return "gone"
    recorded = placement.get("pane_pid")
    if recorded is not None and info.pid != recorded:
        return "gone"
    return "dead" if info.dead else "alive"


def placement_of(pane) -> dict:
    """The placement row for a `tmux.PaneRef`, with the pid of the pane's process."""
    from cafleet import tmux

    return {"tmux_socket": pane.socket_path, "session_name": pane.session_name, "window_id": pane.window_id,
            "pane_id": pane.pane_id, "pane_pid": tmux.pane_pid(pane.socket_path, pane.pane_id)}


def _through_gate(m: dict, text: str, what: str, kind: str = "line", broker: Broker | None = None) -> dict:
    """Type `text` + Enter into member `m`'s pane through the gate; `Conflict` (exit 1,
    nothing submitted) when the gate does not allow it, saying what the pane shows."""
    from cafleet import gate

    target = gate.Target.of(m)
    if target is None:
        raise Conflict(f"member {m['agent_id']} has no pane yet (pending)")
    d = gate.type_line(target, text, kind, broker=broker)
    if not d.allowed:
        hint = ""
        if d.state == "dialog":
            hint = (" Look with `member capture`, get the user's answer, and answer it with "
                    "`member send-input` first (a permission prompt is the user's to answer in the pane).")
        raise Conflict(f"{what} not sent to member {m['agent_id']}: {d.reason}.{hint}")
    return {"member_agent_id": m["agent_id"], "pane_id": target.pane_id, "sent": text}


def pane_status(m: dict) -> str:
    """`alive`, `dead` or `pending` for an agent row (a pane that is gone counts as dead)."""
    state = pane_state(m["placement"])
    return "dead" if state == "gone" else state


TAG_KEEP = 8
"""A Director's pane may hold several fleets' Directors (one `fleet create` each); its tag
keeps the last this many agent ids."""


def director_placement(pane) -> dict:
    """The placement of a Director in `pane` (a `tmux.PaneRef`) at `fleet create`: with
    `agent_command`, the pane's foreground program when it is an agent -- not a shell, and not
    this very process (run from a shell, cafleet itself is the foreground job) -- else None."""
    import os

    from cafleet import gate, screens, tmux

    placement = placement_of(pane)
    view = tmux.pane_view(pane.socket_path, pane.pane_id)
    command = None
    if view is not None and not screens.is_shell(view.current_command):
        fg = gate.foreground_pgid(view.pid)
        if view.current_command in AGENT_COMMANDS or (fg is not None and fg != os.getpgrp()):
            command = view.current_command or None
    placement["agent_command"] = command
    return placement


AGENT_COMMANDS = frozenset({"claude", "codex", "opencode", "node"})
"""Foreground process names of the coding agents (``#{pane_current_command}``): Claude Code
2.1.332 and opencode 1.18.33 name themselves; codex 0.171.0 runs under its node launcher."""


def tag_director_pane(placement: dict, director_id: str) -> None:
    """Add `director_id` to the pane's cafleet tag (`tmux.TAG_OPTION`), keeping `TAG_KEEP`."""
    from cafleet import tmux

    view = tmux.pane_view(placement["tmux_socket"], placement["pane_id"])
    ids = [i for i in (view.tag.split() if view else []) if i != director_id][-(TAG_KEEP - 1):]
    tmux.set_pane_tag(placement["tmux_socket"], placement["pane_id"], " ".join([*ids, director_id]))


def _rebalance(placement: dict | None) -> None:
    from cafleet import tmux

    if placement:
        try:
            tmux.rebalance(placement["tmux_socket"], placement["window_id"])
        except CafleetError:
            pass  # the window may be gone with its last pane; nothing to balance


# ---------------------------------------------------------------- commands


def create(
    broker: Broker,
    fleet_id: str,
    *,
    name: str,
    description: str,
    coding_agent: str = "claude",
    model: str | None = None,
    prompt: str | None = None,
    director_id: str | None = None,
    cwd: str | None = None,
    workspace: str | None = None,
    on_registered=None,
) -> dict:
    """Register a member and start its coding agent in a new pane of the Director's window.

    `cwd`: the pane's working directory (default: ours); `workspace`: a paragraph added to
    the identity prompt about where it works (`cafleet.worktrees.member_note`);
    `on_registered(row)`: called once the row exists, before the pane starts (what it
    records is there for the member's first hook; if it raises, the create rolls back).

    The pane is split without taking focus; the process gets the member's identity in its
    prompt (see `identity_prompt`) and in `CAFLEET_*` environment variables, and the
    backend's permission posture. Returns the member's agent row with its placement.

    Raises `CafleetError` (exit 1) with nothing registered when the backend binary is not on
    PATH; any failure after registration removes the row and the pane before re-raising.
    """
    from cafleet import backends, tmux

    backend = backends.get(coding_agent)
    backend.check_model(model)
    if backends.which(coding_agent) is None:
        raise CafleetError(f"`{backend.binary}` (the {coding_agent} backend) is not on PATH; install it, "
                           "or choose another --coding-agent")
    director = _director(broker, fleet_id, director_id)
    if pane_state(director["placement"]) != "alive":
        raise Conflict(f"the Director's pane {director['placement']['pane_id']} is dead or gone; "
                       "members are split from it, so run cafleet from a live Director pane")
    dp = director["placement"]
    pending = {"tmux_socket": dp["tmux_socket"], "session_name": dp["session_name"],
               "window_id": dp["window_id"], "pane_id": None}
    m = broker.register_agent(fleet_id, name, description, role="member", parent_agent_id=director["agent_id"],
                              coding_agent=coding_agent, placement=pending)
    pane = None
    try:
        if on_registered is not None:
            on_registered(m)
        identity = backends.MemberIdentity(fleet_id=fleet_id, agent_id=m["agent_id"],
                                           director_id=director["agent_id"], name=name, db_path=broker.path)
        text = identity_prompt(fleet_id, m["agent_id"], director["agent_id"], name, description)
        if workspace:
            text += "\n" + workspace
        if prompt and prompt.strip():
            text += PROMPT_HEADING + prompt
        argv = backend.spawn_argv(prompt=text, model=model, name=name, identity=identity)
        # A new pane's environment is the tmux server's plus what we pass: give the member
        # the caller's PATH with the running `cafleet`'s directory first, so it runs the same
        # `cafleet` (and finds the same backends) as the Director.
        from cafleet.bootstrap import member_path

        env = {"PATH": member_path(), **backend.spawn_env(identity)}
        director_pane = tmux.PaneRef(socket_path=dp["tmux_socket"], session_name=dp["session_name"],
                                     window_id=dp["window_id"], pane_id=dp["pane_id"])
        pane = tmux.split_window(director_pane, argv, env, cwd or os.getcwd(), keep_on_exit=True)
        placement = placement_of(pane)
        # recorded before the start check: the member's own SessionStart hook looks itself up
        # by pane within milliseconds; a failed check rolls the row back all the same
        broker.set_placement(fleet_id, m["agent_id"], placement, coding_agent)
        tmux.set_pane_tag(pane.socket_path, pane.pane_id, m["agent_id"])  # before anything types into it
        _check_started(placement, backend.binary)
        tmux.set_exit_hook(pane.socket_path, pane.pane_id, exit_hook_command(broker.path, fleet_id, m["agent_id"]))
        if pane_state(placement) != "alive":  # it died before the hook was set: report it now
            from cafleet import delivery

            delivery.member_exited(broker, fleet_id, m["agent_id"])
        _rebalance(dp)
        return broker.get_agent(fleet_id, m["agent_id"])
    except BaseException as failure:
        if pane is not None:
            try:
                tmux.kill_pane(pane.socket_path, pane.pane_id)
            except CafleetError:
                pass
        _remove_registration(broker, fleet_id, m["agent_id"], failure)
        raise


ROLLBACK_PATIENCE = 10.0
"""Seconds a failed `member create` keeps trying to remove its own row."""


def _remove_registration(broker: Broker, fleet_id: str, agent_id: str, failure: BaseException) -> None:
    """Roll back a member row after a failed create. The DB may be locked by the very fault
    that failed the create, so retry for `ROLLBACK_PATIENCE` seconds (or three busy timeouts,
    if longer); if the row still cannot go, say so and how to remove it, instead of claiming
    nothing was written."""
    from cafleet.store import busy_timeout_ms

    deadline = time.monotonic() + max(ROLLBACK_PATIENCE, 3 * busy_timeout_ms() / 1000)
    while True:
        try:
            broker.delete_agent_row(fleet_id, agent_id)
            return
        except CafleetError as cleanup:
            if time.monotonic() >= deadline:
                reason = failure.message if isinstance(failure, CafleetError) else repr(failure)
                raise CafleetError(
                    f"member create failed ({reason}); its registration {agent_id} could not be removed "
                    f"({cleanup.message}); remove it with `cafleet --fleet-id {fleet_id} member delete "
                    f"--member-id {agent_id} --force`"
                ) from None
            time.sleep(0.1)


SPAWN_GRACE = 0.5
"""Seconds a new member's process must stay up for its spawn to count as started. A
backend that rejects its argv or cannot start exits well within this."""


def exit_hook_command(db_path: str, fleet_id: str, member_id: str) -> str:
    """The shell command tmux's ``pane-died`` hook runs for a member's pane: this same
    Python (`sys.executable`) running ``cafleet --fleet-id F member exited --member-id M``
    with ``CAFLEET_DB`` set to this broker's file; output discarded."""
    import shlex
    import sys

    argv = [sys.executable, "-m", "cafleet", "--fleet-id", fleet_id, "member", "exited", "--member-id", member_id]
    return f"CAFLEET_DB={shlex.quote(db_path)} {shlex.join(argv)} >/dev/null 2>&1"


def _check_started(placement: dict, binary: str) -> None:
    """Raise `CafleetError` (with the process's last output) if the member's process exits
    within `SPAWN_GRACE`. The pane was split with remain-on-exit on, so that output can be
    read; it stays on afterwards (`tmux.set_exit_hook`): a member's pane is kept, dead, with
    its last screen when its agent exits, until `member delete`."""
    socket, pane_id = placement["tmux_socket"], placement["pane_id"]
    deadline = time.monotonic() + SPAWN_GRACE
    while time.monotonic() < deadline and pane_state(placement) == "alive":
        time.sleep(0.05)
    state = pane_state(placement)
    if state == "gone":
        raise CafleetError(f"`{binary}` exited right after it started, so the member was not created "
                           "(its pane is gone, so its output is lost).")
    if state != "alive":
        status = _dead_status(socket, pane_id)
        output = _tail(socket, pane_id)
        if output:
            detail = f"Its last output:\n{output}"
        else:
            # tmux discards output it has not read when the process exits (tmux/tmux#506).
            detail = ("tmux kept none of its output (tmux drops what a process prints in its last "
                      f"moments when it exits within milliseconds); run `{binary}` in a shell to see why.")
        raise CafleetError(f"`{binary}` exited{status} right after it started, so the member was not "
                           f"created. {detail}")


def _dead_status(socket: str, pane_id: str, patience: float = 0.2) -> str:
    """" with status N" for a dead pane (`#{pane_dead_status}`), or "" when tmux has none.
    tmux marks a pane dead when its pty closes and records the exit status when it reaps the
    process, a moment later, so this waits up to `patience` seconds. Best effort: tmux 3.3a
    sometimes never records it (7 of 20 tries here), and has none after a signal."""
    from cafleet import tmux

    deadline = time.monotonic() + patience
    while True:
        info = tmux.pane_info(socket, pane_id)
        if info is not None and info.dead_status is not None:
            return f" with status {info.dead_status}"
        if info is None or time.monotonic() >= deadline:
            return ""
        time.sleep(0.02)


def send_input(broker: Broker, fleet_id: str, member_id: str, *, choice: int | None = None,
               freetext: str | None = None) -> dict:
    """Answer a 4-option choice frame (Claude Code's AskUserQuestion: options 1–3, `4. Type
    something.`). `choice` 1–3 types that digit; `freetext` types `4`, the text, then Enter.
    Only into the validated frame (`gate.answer_choice`), else `Conflict` (exit 1) saying what
    the pane shows. Once the frame has closed, previews held for the member are delivered.
    Raises `UsageError` for text with a newline, a control character or a leading `!`."""
    from cafleet import delivery, gate

    m = _member(broker, fleet_id, member_id)
    if freetext is not None:
        keystrokes.validate_freetext(freetext)
    target = gate.Target.of(m)
    if target is None:
        raise Conflict(f"member {member_id} has no pane yet (pending)")
    d, sent = gate.answer_choice(target, choice=choice, freetext=freetext)
    if not d.allowed:
        raise Conflict(f"nothing answered for member {member_id}: {d.reason}")
    # the frame just closed: previews held while it was open can go in now
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        facts = gate.observe(target)
        if facts is None or gate.decide(gate.LINE, target, facts).allowed:
            break
        time.sleep(0.1)
    delivery.deliver_quietly(broker, fleet_id, member_id)
    return {"member_agent_id": member_id, "pane_id": target.pane_id, "sent": sent}


def exec_command(broker: Broker, fleet_id: str, member_id: str, command: str, *, wait: float = 0.0) -> dict:
    """Type `! COMMAND` + Enter into the member's pane (claude's and codex's shell shortcut)
    through the gate, then, if `wait` > 0, wait up to `wait` seconds for the command to
    finish (`cafleet.execwait`). Returns `{member_agent_id, pane_id, sent}` plus, when
    waiting, `waited_s`, `dialog` (what the pane shows now, or None) and `pane_gone`.
    Raises `UsageError` for an empty command, a newline or a control character, `Conflict`
    when the gate refuses, and `Timeout` (exit 2) when the command still runs after `wait` s."""
    keystrokes.validate_exec_command(command)
    m = _member(broker, fleet_id, member_id)
    _pane(m)
    out = _through_gate(m, "! " + command, "`member exec`", broker=broker)
    if wait > 0:
        out.update(_wait_exec(m, m["placement"]["tmux_socket"], out["pane_id"], out["sent"], wait))
    return out


def _wait_exec(m: dict, socket: str, pane_id: str, sent: str, wait: float) -> dict:
    from cafleet import execwait, screens, tmux
    from cafleet.tmux import TargetGone

    def read() -> str | None:
        try:
            return tmux.screen(socket, pane_id)
        except TargetGone:
            return None

    r = execwait.wait_finished(read, wait, dialog=screens.open_dialog)
    if not r["finished"]:
        raise Timeout(
            f"typed {sent!r} into member {m['agent_id']}'s pane {pane_id}; it is still running after "
            f"{wait:g} s. Do not ping yet: the ping would be typed into its output. Check on a later tick "
            "(member list, member capture) and ping once the member is idle."
        )
    return {"waited_s": r["waited_s"], "dialog": r["dialog"], "pane_gone": r["pane_gone"]}


def ping(broker: Broker, fleet_id: str, member_id: str) -> dict:
    """Type the member's own poll command + Enter into its pane. Any failure is exit 1."""
    m = _member(broker, fleet_id, member_id)
    _pane(m)
    return _through_gate(m, poll_command(fleet_id, member_id), "`member ping`", broker=broker)


DELETE_POLL_INTERVAL = 0.1


def delete(broker: Broker, fleet_id: str, member_id: str, *, force: bool = False, timeout: float = 15.0) -> dict:
    """Stop a member and deregister it; rebalance the Director's window.

    Graceful (default): type the backend's exit command and wait up to `timeout` seconds for
    the pane to close; on timeout raise `Timeout` (exit 2) carrying the pane's last lines, with
    nothing deregistered. A pane already dead or gone is simply cleaned up.
    `force`: kill the pane (already gone is fine).
    Returns `{agent_id, pane_id, how}` with `how` in `exited`, `killed`, `already gone`.
    """
    from cafleet import backends, tmux

    m = _member(broker, fleet_id, member_id)
    placement = m["placement"]
    pane_id = (placement or {}).get("pane_id")
    state = pane_state(placement)
    how = "already gone"
    if state in ("alive", "dead"):
        socket = placement["tmux_socket"]
        if state == "alive" and not force:
            backend = backends.get(m["coding_agent"] or "claude")
            broker.expect_exit(member_id)  # asked for: no exit notice to the Director
            try:
                _through_gate(m, backend.exit_command, f"the exit command `{backend.exit_command}`", "exit",
                              broker=broker)
            except Conflict as e:
                broker.expect_exit(member_id, False)
                raise Conflict(f"{e.message} Nothing was deregistered; `member delete --force` kills the pane.") \
                    from None
            deadline = time.monotonic() + timeout
            while (state := pane_state(placement)) == "alive":
                if time.monotonic() >= deadline:
                    broker.expect_exit(member_id, False)
                    tail = _tail(socket, pane_id) or "(the pane is blank)"
                    raise Timeout(
                        f"member {member_id}'s pane {pane_id} did not close within {timeout:g} s of "
                        f"`{backend.exit_command}`; nothing was deregistered. Its last lines:\n{tail}\n"
                        "Unblock it (capture, send-input) or use `member delete --force`."
                    )
                time.sleep(DELETE_POLL_INTERVAL)
            how = "exited"
            if state == "dead":
                tmux.kill_pane(socket, pane_id)  # a pane kept by remain-on-exit
        elif tmux.kill_pane(socket, pane_id) and state == "alive":
            how = "killed"
    broker.deregister_agent(fleet_id, member_id)
    _rebalance(placement)
    from cafleet import looks

    looks.forget(broker.path, member_id)
    return {"agent_id": member_id, "pane_id": pane_id, "how": how}


def _tail(socket: str, pane_id: str, lines: int = 15) -> str:
    """The last `lines` non-blank lines of a pane and its history, without tmux's `Pane is
    dead …` notice (a pane kept by remain-on-exit pads the screen with blank rows below the
    output, and the notice can push the output into history); "" when nothing is left."""
    from cafleet import tmux
    from cafleet.delivery import last_lines

    try:
        text = tmux.capture(socket, pane_id, 500)
    except CafleetError as e:
        return f"(could not capture the pane: {e.message})"
    return last_lines(text, lines)


def clear_panes_for_fleet_delete(broker: Broker, fleet_id: str, *, force: bool) -> list[str]:
    """Before `fleet delete`: refuse (`Conflict`, listing them) while members have live panes,
    or with `force` kill those panes. Returns the pane ids killed."""
    from cafleet import tmux
    from cafleet.memberstate import list_members

    rows = list_members(broker, fleet_id)
    live = [m for m in rows if m["pane_status"] == "alive"]
    if live and not force:
        listing = "\n".join(f"  {m['agent_id']}  {m['name']}  pane {m['placement']['pane_id']}" for m in live)
        raise Conflict(
            f"fleet {fleet_id} still has {len(live)} member(s) with live panes:\n{listing}\n"
            "Delete them first (`member delete`), or pass --force to kill their panes."
        )
    killed = []
    kept = [m for m in rows if m["pane_status"] == "dead" and m["placement"]]  # exited, kept by remain-on-exit
    for m in live + kept:
        p = m["placement"]
        if tmux.kill_pane(p["tmux_socket"], p["pane_id"]):
            killed.append(p["pane_id"])
    return killed


# ---------------------------------------------------------------- push


def push_preview(task: dict, broker: Broker | None = None) -> dict:
    """Type `task`'s preview into its recipient's pane through the gate; see
    `cafleet.delivery.push_preview` (held for later delivery when `broker` is given)."""
    from cafleet import delivery

    return delivery.push_preview(task, broker)
