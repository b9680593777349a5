"""`cafleet member`: a Director's members in their own tmux panes -- create (optionally in
a git worktree), list with their states, show, capture, send-input, exec, ping, delete, and
the hidden `member exited` run by tmux's pane-died hook."""

from __future__ import annotations

import os

import click

from cafleet import render
from cafleet.commands import BACKEND_CHOICES, UUID, Seconds, current_state, emit, fmt_placement, table
from cafleet.commands.agent import agent_text
from cafleet.errors import UsageError


@click.group()
def member() -> None:
    """Members: agents in their own tmux pane, spawned and driven by a Director."""


@member.command("create", context_settings={"ignore_unknown_options": False})
@click.option("--name", required=True)
@click.option("--description", required=True)
@click.option("--coding-agent", type=click.Choice(BACKEND_CHOICES), default="claude", show_default=True)
@click.option("--model", help="Model name passed to the backend's --model.")
@click.option("--prompt-file", type=click.Path(dir_okay=False), help="Absolute path of a file holding the prompt.")
@click.option("--agent-id", type=UUID, help="Director that spawns it (default: the fleet's root Director).")
@click.option("--worktree", is_flag=True, help="Give it its own git worktree on a new branch (see --branch, --base).")
@click.option("--branch", metavar="NAME", help="With --worktree: the new branch (default cafleet/<name>).")
@click.option("--base", metavar="REF", help="With --worktree: where the branch starts (default: the checked-out branch).")
@click.option("--repo", metavar="PATH", help="With --worktree: the repository (default: the current directory).")
@click.argument("prompt", nargs=-1)
def member_create(name, description, coding_agent, model, prompt_file, agent_id, worktree, branch, base, repo,
                  prompt) -> None:
    """Spawn a member in a new pane of the Director's window.

    The prompt comes from --prompt-file ABS or after `--` (`… -- "Do X"`); without either,
    a default prompt tells the member who it is and to send `ready`. Output: line 1 the
    member's agent id.

    --worktree: the member works in its own git worktree, next to the repository in
    <repo>.cafleet-worktrees/, on a new branch it is told about; you merge that branch.
    Refused outside a git repository, for a repository with no commits, and for a --branch
    that exists.
    """
    state = current_state()
    fleet_id = state.fleet("member create")
    given = [flag for flag, v in (("--branch", branch), ("--base", base), ("--repo", repo)) if v is not None]
    if given and not worktree:
        raise UsageError(f"{', '.join(given)} only make sense with --worktree")
    if prompt_file and prompt:
        raise UsageError("give the prompt either with --prompt-file or after --, not both")
    text = None
    if prompt_file:
        if not os.path.isabs(prompt_file):
            raise UsageError("--prompt-file must be an absolute path")
        from cafleet.userfiles import MAX_PROMPT_BYTES, read_text

        try:
            text = read_text(prompt_file, "--prompt-file", MAX_PROMPT_BYTES)
        except FileNotFoundError:
            raise UsageError(f"--prompt-file {prompt_file} does not exist") from None
    elif prompt:
        text = " ".join(prompt)
    from cafleet import members

    args = dict(description=description, coding_agent=coding_agent, model=model, prompt=text, director_id=agent_id)
    if worktree:
        from cafleet import worktrees

        m = worktrees.create_member(state.broker(), fleet_id, name=name, repo=repo, branch=branch, base=base, **args)
    else:
        m = members.create(state.broker(), fleet_id, name=name, **args)
    data = {"agent_id": m["agent_id"], "name": m["name"], "coding_agent": coding_agent, "placement": m["placement"]}
    text = f"{m['agent_id']}\nmember {m['name']} ({coding_agent}) in {fmt_placement(m['placement'])}"
    if worktree:
        data["worktree"] = m["worktree"]
        text += f"\n{_fmt_worktree(m['worktree'])}"
    emit(data, text)


def _fmt_worktree(w: dict | None) -> str:
    if not w:
        return "no worktree"
    return f"worktree {w['path']} on branch {w['branch']} (from {w['base']}): {_worktree_state(w)}"


def _worktree_state(w: dict) -> str:
    """`+N` commits ahead of base, then `dirty`/`clean`/`removed` (`member list`'s BRANCH)."""
    ahead = "?" if w["ahead"] is None else f"+{w['ahead']}"
    where = "removed" if not w["present"] else ("dirty" if w["dirty"] else "clean")
    return f"{ahead} {where}"


@member.command("list")
@click.option("--agent-id", type=UUID, help="Only members spawned by this Director.")
def member_list(agent_id: str | None) -> None:
    """Every member, one short line each: id, name, backend, STATE (working/idle/dialog/
    exited/shell, from its screen), QUIET (how long its screen has been unchanged), SEEN (its
    last cafleet call), REPORTED (its last message to its Director), TO_YOU (those messages
    the Director has not acked), UNREAD (messages to it not acked), HELD (previews not typed
    yet), and BRANCH for --worktree members (branch, commits ahead of base, dirty or not); an
    exited member's status and last line below. --json adds pane_id, pane_status, the times as
    UTC ISO strings, created_at and `worktree` (null without one). Delivers held previews that
    can go in now."""
    state = current_state()
    from cafleet import memberstate

    rows = memberstate.list_members(state.fleet_broker("member list"), state.fleet_id, agent_id)
    from cafleet import worktrees

    worktrees.annotate(state.broker(), state.fleet_id, rows)
    data = [{"agent_id": r["agent_id"], "name": r["name"], "coding_agent": r["coding_agent"],
             "pane_id": (r["placement"] or {}).get("pane_id"), "pane_status": r["pane_status"],
             "state": r["state"], "quiet_s": r["quiet_s"], "unread": r["unread"], "held": r["held"],
             "exit_status": r["exit_status"], "last_line": r["last_line"], "last_seen": r["last_seen"],
             "last_report_at": r["last_report_at"], "unacked_reports": r["unacked_reports"],
             "created_at": r["created_at"], "worktree": r["worktree"]} for r in rows]
    branches = any(d["worktree"] for d in data)  # the BRANCH column only once someone has one
    emit(data, lambda: table(
        [[d["agent_id"], d["name"], d["coding_agent"], _state_text(d), render.age(d["quiet_s"]),
          render.age_of(d["last_seen"]), render.age_of(d["last_report_at"]), d["unacked_reports"], d["unread"],
          d["held"]]
         + ([f"{d['worktree']['branch']} {_worktree_state(d['worktree'])}" if d["worktree"] else "-"]
            if branches else []) for d in data],
        ["AGENT_ID", "NAME", "BACKEND", "STATE", "QUIET", "SEEN", "REPORTED", "TO_YOU", "UNREAD", "HELD"]
        + (["BRANCH"] if branches else []))
        + "".join(f"\n{d['name']} exited: {d['last_line']}" for d in data
                  if d["state"] == "exited" and d["last_line"]) if data
        else "No members.")


def _state_text(d: dict) -> str:
    if d["state"] == "exited" and d["exit_status"] is not None:
        return f"exited({d['exit_status']})"
    return d["state"] or ("pending" if d["pane_status"] == "pending" else "-")


@member.command("show")
@click.option("--member-id", type=UUID, required=True)
def member_show(member_id: str) -> None:
    """One member: its agent row, pane status and worktree (path, branch, base, uncommitted
    changes, commits ahead of base), deregistered members too."""
    state = current_state()
    from cafleet import members, worktrees
    from cafleet.errors import NotFound

    broker = state.fleet_broker("member show")
    m = broker.get_agent(state.fleet_id, member_id, active=False, flag="--member-id")
    if m["role"] != "member":
        raise NotFound(f"member {member_id} not found in fleet {state.fleet_id} (that agent is not a member)")
    m["pane_status"] = members.pane_status(m) if m["status"] == "active" else "dead"
    worktrees.annotate(broker, state.fleet_id, [m], detail=True)
    changes = (m["worktree"] or {}).get("changes") or []
    emit(m, lambda: "\n".join([agent_text(m), f"pane status: {m['pane_status']}", _fmt_worktree(m["worktree"])]
                              + [f"  {c}" for c in changes]))


@member.command("capture")
@click.option("--member-id", type=UUID, required=True)
@click.option("--lines", type=click.IntRange(1, 10000), default=30, show_default=True)
@click.option("--changed", is_flag=True,
              help="Compact view (blank runs, long rules and padding squeezed), and of it only what "
                   "changed since your last --changed capture of this member; one line if nothing did.")
def member_capture(member_id: str, lines: int, changed: bool) -> None:
    """The last N lines of the member's pane (wrapped lines joined). With --changed: only
    what changed since the last look, in a compact view (the cheap form for a supervision tick)."""
    state = current_state()
    from cafleet import memberstate

    r = memberstate.capture(state.fleet_broker("member capture"), state.fleet_id, member_id, lines, changed=changed)
    if not changed:
        emit(r, r["content"])
    elif r["unchanged"]:
        emit(r, f"(unchanged since your last look {render.age(r['previous_look_age_s'])} ago: "
                f"{r['view_lines']} lines)")
    elif r["previous_look_at"] is None:
        emit(r, r["content"])
    else:
        emit(r, f"(changed since your last look {render.age(r['previous_look_age_s'])} ago; "
                f"⋯ marks unchanged lines)\n{r['content']}")


@member.command("send-input")
@click.option("--member-id", type=UUID, required=True)
@click.option("--choice", type=click.IntRange(1, 3), help="Pick option 1-3 of a 4-option choice frame.")
@click.option("--freetext", help="Answer with option 4 (Type something) and this text.")
def member_send_input(member_id: str, choice: int | None, freetext: str | None) -> None:
    """Answer a member's 4-option choice frame: --choice N types N; --freetext types 4,
    the text, then Enter. Exactly one of the two."""
    if (choice is None) == (freetext is None):
        raise UsageError("give exactly one of --choice or --freetext")
    state = current_state()
    from cafleet import members

    r = members.send_input(state.fleet_broker("member send-input"), state.fleet_id, member_id,
                           choice=choice, freetext=freetext)
    emit(r, f"sent {r['sent']!r} to pane {r['pane_id']}")


@member.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--member-id", type=UUID, required=True)
@click.option("--wait", type=Seconds(0, 86400), default=None, metavar="SECONDS",
              help="How long to wait for the command to finish (default 90; 0: do not wait).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def member_exec(member_id: str, wait: float | None, command: tuple[str, ...]) -> None:
    """Type `! COMMAND` + Enter into the member's pane (the coding agent's shell shortcut)
    and wait until it has finished (exit 2 if it still runs after --wait seconds). COMMAND is
    one quoted argument. Follow it with `member ping` so the member reads the result."""
    if len(command) != 1:
        shown = " ".join(command) or "ls -la"
        raise UsageError(f"member exec takes the command as one quoted argument, e.g. "
                         f"`cafleet --fleet-id <fleet-id> member exec --member-id <member-id> \"{shown}\"`")
    command = command[0]
    state = current_state()
    from cafleet import execwait, members

    r = members.exec_command(state.fleet_broker("member exec"), state.fleet_id, member_id, command,
                             wait=execwait.DEFAULT_WAIT if wait is None else wait)
    text = f"typed {r['sent']!r} into pane {r['pane_id']}"
    if r.get("pane_gone"):
        text += "; the pane is gone now (see member list)"
    elif r.get("dialog"):
        text += f"; finished after {r['waited_s']:g} s, and the pane now shows a dialog ({r['dialog']!r})"
    elif "waited_s" in r:
        text += f"; finished after {r['waited_s']:g} s"
    emit(r, text)


@member.command("ping")
@click.option("--member-id", type=UUID, required=True)
def member_ping(member_id: str) -> None:
    """Type the member's own `message poll` command into its pane (a manual inbox nudge)."""
    state = current_state()
    from cafleet import members

    r = members.ping(state.fleet_broker("member ping"), state.fleet_id, member_id)
    emit(r, f"typed {r['sent']!r} into pane {r['pane_id']}")


@member.command("exited", hidden=True)
@click.option("--member-id", type=UUID, required=True)
def member_exited(member_id: str) -> None:
    """Run by tmux's pane-died hook on a member's pane: record the exit and send the
    Director a notice (once)."""
    state = current_state()
    from cafleet import delivery

    task = delivery.member_exited(state.fleet_broker("member exited"), state.fleet_id, member_id)
    emit({"task_id": task and task["task_id"]}, task["task_id"] if task else "nothing to report")


@member.command("delete")
@click.option("--member-id", type=UUID, required=True)
@click.option("--force", is_flag=True, help="Kill the pane instead of asking the agent to exit.")
@click.option("--timeout", type=Seconds(0, 86400), default=15.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the pane to close after the exit command.")
def member_delete(member_id: str, force: bool, timeout: float) -> None:
    """Stop a member: type its backend's exit command and wait for the pane to close, then
    deregister. On timeout: the pane's tail on stderr, nothing deregistered, exit 2.
    --force kills the pane (gone already is fine). A --worktree member's worktree is removed
    when clean, else kept and its uncommitted changes listed; its branch always stays."""
    state = current_state()
    from cafleet import members

    r = members.delete(state.fleet_broker("member delete"), state.fleet_id, member_id,
                       force=force, timeout=timeout)
    from cafleet import worktrees

    r["worktree"] = worktrees.after_member_delete(state.broker(), state.fleet_id, member_id)
    text = f"member {r['agent_id']} deleted ({r['how']})"
    w = r["worktree"]
    if w:
        text += ("\n" + (f"worktree {w['path']} removed; branch {w['branch']} kept" if w["removed"]
                         else worktrees.kept_text(w)))
    emit(r, text)
