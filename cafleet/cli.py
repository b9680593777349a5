"""The `cafleet` command line: parsing and printing only.

Behaviour lives in `broker` (fleets, agents, messages), `members` (panes), `permissions`,
`doctor`, `tick`, `mcp_server` and `demo`; those that need libtmux are imported only by the commands that
use them, so `message poll` stays fast.

Global flags go before the subcommand (`cafleet --fleet-id F --json message poll …`);
`--agent-id`, `--member-id`, `--task-id` go after it. Errors: `Error: …` on stderr (with
`--json`, `{"error": {"code", "message"}}`), exit 1 at run time, 2 for usage.
"""

from __future__ import annotations

import os
import shlex
import sys

import click

from cafleet import __version__, render
from cafleet.broker import DEFAULT_POLL_LIMIT, MAX_BODY_BYTES, MAX_POLL_LIMIT
from cafleet.errors import CafleetError, UsageError

BACKEND_CHOICES = ("claude", "codex", "opencode")


class AgentUUID(click.ParamType):
    """A canonical lowercase UUID4 (fleet, agent, member and task ids), checked at parse
    time so a malformed id is a usage error (exit 2) naming its flag before any DB access."""

    name = "uuid"

    def convert(self, value, param, ctx):
        from cafleet.broker import is_uuid4

        if is_uuid4(value):
            return value
        self.fail(f"must be a lowercase UUID4 like 3f2b8c1e-…, got {value!r}", param, ctx)


UUID = AgentUUID()


class Seconds(click.ParamType):
    """A finite number of seconds within `[low, high]`: `nan` and `inf` parse as floats but
    would make a wait never end (`member delete --timeout nan`) or a loop spin
    (`fleet tick --every nan`), so they are usage errors (exit 2)."""

    name = "seconds"

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        import math

        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds) or not self.low <= seconds <= self.high:
            self.fail(f"must be a number of seconds from {self.low:g} to {self.high:g}, got {value!r}", param, ctx)
        return seconds


class State:
    """What the root group parsed: `fleet_id` (str | None) and `json` (bool)."""

    def __init__(self, fleet_id: str | None, as_json: bool):
        self.fleet_id = fleet_id
        self.json = as_json
        self._broker = None

    def broker(self):
        """The open broker for this call (opened on first use, closed at exit)."""
        if self._broker is None:
            from cafleet.broker import Broker

            self._broker = Broker.open()
        return self._broker

    def fleet_broker(self, command: str):
        """The broker, once `--fleet-id` is known to be given (`fleet()`); ids are checked
        before the DB is opened, so a usage error never creates or touches it."""
        self.fleet(command)
        return self.broker()

    def fleet(self, command: str) -> str:
        """The validated `--fleet-id`; exit 2 with directions when it is missing."""
        if not self.fleet_id:
            raise UsageError(
                f"{command} needs --fleet-id before the subcommand, e.g. "
                f"`cafleet --fleet-id <fleet-id> {command} …`. Get a fleet id from line 1 of "
                "`cafleet fleet create`, or from `cafleet fleet list`."
            )
        return self.fleet_id

    def close(self):
        if self._broker is not None:
            self._broker.close()


def _json_requested(args: list[str]) -> bool:
    """True if `--json` appears among the global flags (before the first subcommand)."""
    it = iter(args)
    for token in it:
        if token == "--json":
            return True
        if token == "--fleet-id":
            next(it, None)
        elif not token.startswith("-"):
            return False
    return False


SINGLE_VALUED_FLAGS = ("--fleet-id", "--agent-id", "--member-id", "--to", "--text", "--text-file", "--choice",
                       "--freetext")
VALUE_FLAGS = SINGLE_VALUED_FLAGS + ("--task-id", "--name", "--description", "--lines", "--limit", "--model",
                                     "--prompt-file", "--coding-agent", "--timeout", "--every", "--role")


def _repeated_flag(args: list[str]) -> str | None:
    """The first single-valued flag given twice, if any (before a bare `--`).

    click keeps the last value of a repeated option, so `… --agent-id A … --agent-id B` would
    act as B while a permission rule that matched the prefix approved A: refuse it instead.
    A flag's value is skipped, so `--text --text` (a body that reads "--text") is fine.
    """
    seen = set()
    it = iter(args)
    for token in it:
        if token == "--":
            break
        name, has_value = token.split("=", 1)[0], "=" in token
        if name in VALUE_FLAGS and not has_value:
            next(it, None)
        if name in SINGLE_VALUED_FLAGS:
            if name in seen:
                return name
            seen.add(name)
    return None


class RootGroup(click.Group):
    """Turns every expected fault into `Error: …` (or JSON) and the contract's exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        as_json = _json_requested(args)
        code = 0
        try:
            from cafleet.cliargs import normalize

            args, as_json = normalize(args)  # `--` before the subcommand refused, `--json` after it moved
            repeated = _repeated_flag(args)
            if repeated:
                raise UsageError(f"{repeated} was given more than once; give it once")
            result = super().main(args=args, prog_name=prog_name or "cafleet", standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except CafleetError as e:
            render.echo_error(e.message, e.code, as_json)
            code = e.exit_code
        except click.UsageError as e:
            render.echo_error(e.format_message(), "usage", as_json)
            if not as_json and e.ctx is not None:
                click.echo(f"Try '{e.ctx.command_path} --help' for help.", err=True)
            code = 2
        except click.ClickException as e:
            render.echo_error(e.format_message(), "error", as_json)
            code = e.exit_code
        except click.exceptions.Abort:
            render.echo_error("aborted", "aborted", as_json)
            code = 1
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (`| head`): nothing left to say
            code = 1
        except KeyboardInterrupt:
            code = 130
        except Exception as e:  # an unexpected fault: one line, no traceback unless asked
            code = render.echo_unexpected(e, as_json)
        if standalone_mode:
            sys.exit(code)
        return code


@click.group("cafleet", cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--fleet-id", type=UUID, metavar="UUID", help="Fleet to act on (from `cafleet fleet create`, line 1).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (and JSON errors on stderr).")
@click.version_option(__version__, "--version", prog_name="cafleet", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, fleet_id: str | None, as_json: bool) -> None:
    """cafleet: a Director and its team of coding agents in tmux panes, over a local broker.

    \b
    Typical start (inside tmux):
      cafleet doctor
      cafleet fleet create                  # line 1: fleet id, line 2: Director id
      cafleet --fleet-id <fleet-id> member create --name Alice --description "…" -- "task"
    Run any command with --help for its flags.
    """
    state = State(fleet_id, as_json)
    ctx.obj = state
    ctx.call_on_close(state.close)


main = cli


def _state() -> State:
    return click.get_current_context().find_root().obj


def _emit(data, text) -> None:
    """Print `data` as JSON under `--json`, else `text` (a string or a callable making one)."""
    if _state().json:
        render.echo_json(data)
    else:
        out = text() if callable(text) else text
        if out:
            render.echo_text(out)


def _fmt_placement(p: dict | None) -> str:
    if not p:
        return "no pane"
    return f"pane {p.get('pane_id') or 'pending'} (session {p['session_name']}, window {p['window_id']})"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers)] + [line(r) for r in rows])


# ---------------------------------------------------------------- db


@cli.group()
def db() -> None:
    """The broker's SQLite file."""


@db.command("init")
def db_init() -> None:
    """Create (or migrate) the DB file and check it; idempotent. Prints its path and schema
    version; exit 1 if SQLite finds the file damaged."""
    from cafleet.errors import DatabaseError

    broker = _state().broker()
    problems = broker.check()
    if problems:
        raise DatabaseError(f"{broker.path} is damaged: {'; '.join(problems[:5])}; move it aside to start fresh")
    _emit({"path": broker.path, "schema_version": broker.schema_version()},
          f"{broker.path}\nschema version {broker.schema_version()}")


# ---------------------------------------------------------------- fleet


@cli.group()
def fleet() -> None:
    """Create, list, show and delete fleets; drive a Director's ticks."""


@fleet.command("create")
@click.option("--name", help="Fleet name (default fleet-<id prefix>).")
@click.option("--coding-agent", type=click.Choice(BACKEND_CHOICES), default="claude", show_default=True,
              help="The coding agent the Director itself runs in.")
def fleet_create(name: str | None, coding_agent: str) -> None:
    """Create a fleet and its root Director (named Director).

    Inside tmux the Director is placed in the calling pane ($TMUX_PANE). Output: line 1
    the fleet id, line 2 the Director's agent id, then details.
    """
    placement = None
    if os.environ.get("TMUX") and os.environ.get("TMUX_PANE"):
        from cafleet import tmux

        from cafleet.members import director_placement

        pane = tmux.current_pane()
        if pane is not None:
            placement = director_placement(pane)
    f = _state().broker().create_fleet(name, coding_agent, placement)
    if placement is not None:
        from cafleet.members import tag_director_pane

        tag_director_pane(placement, f["director"]["agent_id"])
    if placement is None:
        click.echo("Warning: not inside tmux ($TMUX_PANE unset): the Director has no pane, so it "
                   "cannot spawn members. Run this inside tmux to place it.", err=True)
    d = f["director"]
    data = {"fleet_id": f["fleet_id"], "name": f["name"], "created_at": f["created_at"],
            "director": {"agent_id": d["agent_id"], "name": d["name"], "coding_agent": coding_agent,
                         "placement": d["placement"]}}
    _emit(data, "\n".join([
        f["fleet_id"], d["agent_id"],
        f"fleet {f['name']} created {f['created_at']}",
        f"Director {d['agent_id']} ({coding_agent}): {_fmt_placement(d['placement'])}",
    ]))


@fleet.command("list")
def fleet_list() -> None:
    """Active fleets: id, name, Director, member count, created_at."""
    rows = _state().broker().list_fleets()
    data = [{"fleet_id": r["fleet_id"], "name": r["name"], "director_agent_id": r["director_agent_id"],
             "member_count": r["member_count"], "created_at": r["created_at"]} for r in rows]
    _emit(data, lambda: _table(
        [[r["fleet_id"], r["name"], r["director_agent_id"], r["member_count"], r["created_at"]] for r in rows],
        ["FLEET_ID", "NAME", "DIRECTOR", "MEMBERS", "CREATED_AT"]) if rows else "No active fleets.")


@fleet.command("show")
@click.argument("fleet_id", type=UUID)
def fleet_show(fleet_id: str) -> None:
    """One fleet with its agents."""
    fleet_id
    broker = _state().broker()
    f = broker.get_fleet(fleet_id)
    agents = broker.list_agents(fleet_id)
    _emit({**f, "agents": agents}, lambda: "\n".join(
        [f"fleet {f['fleet_id']} ({f['name']}) created {f['created_at']}"]
        + [f"  {a['agent_id']}  {a['role']:<8} {a['name']}  {_fmt_placement(a['placement'])}" for a in agents]))


@fleet.command("delete")
@click.argument("fleet_id", type=UUID)
@click.option("--force", is_flag=True, help="Kill members' live panes first.")
def fleet_delete(fleet_id: str, force: bool) -> None:
    """Soft-delete a fleet and deregister its agents. Refuses while members have live panes
    (exit 1, listing them) unless --force, which kills those panes first. Idempotent.

    Members' worktrees: clean ones are removed, dirty ones kept and listed (run it again
    once they are committed); then every member branch not merged into its base is listed."""
    fleet_id
    broker = _state().broker()
    fleet_row = broker.get_fleet(fleet_id, include_deleted=True)
    killed: list[str] = []
    if not fleet_row["deleted_at"] and any(m["placement"] for m in broker.list_members(fleet_id)):
        from cafleet import members

        killed = members.clear_panes_for_fleet_delete(broker, fleet_id, force=force)
    result = broker.delete_fleet(fleet_id)
    result["killed_panes"] = killed
    from cafleet import worktrees

    result.update(worktrees.after_fleet_delete(broker, fleet_id))
    from cafleet import looks

    for agent_id in result["deregistered"]:
        looks.forget(broker.path, agent_id)  # the last looks at its members' screens
    text = (f"fleet {fleet_id} was already deleted" if result["already_deleted"]
            else f"fleet {fleet_id} deleted; {len(result['deregistered'])} agent(s) deregistered"
            + (f"; killed panes {' '.join(killed)}" if killed else ""))
    lines = [text] + [f"worktree {w['path']} removed; branch {w['branch']} kept" if w["removed"]
                      else worktrees.kept_text(w) for w in result["worktrees"]]
    lines += [f"branch {u['branch']} (member {u['name']}, {u['ahead']} commit(s) ahead) is not merged into "
              f"{u['base']} in {u['repo']}" for u in result["unmerged"]]
    _emit(result, "\n".join(lines))


@fleet.command("tick")
@click.option("--every", type=Seconds(1, 86400), metavar="SECONDS",
              help="Repeat every SECONDS until the fleet is deleted (default: once).")
@click.option("--agent-id", type=UUID, help="Director to tick (default: the root Director).")
def fleet_tick(every: float | None, agent_id: str | None) -> None:
    """Type the supervision-tick prompt into the Director's pane (out-of-band driver for
    codex/opencode Directors, which have no in-session scheduler). Skips a tick while the
    Director's screen is still changing."""
    state = _state()
    from cafleet import tick

    fleet_id = state.fleet("fleet tick")
    tick.run(state.broker(), fleet_id, director_id=agent_id, every=every,
             report=lambda line: click.echo(line))


# ---------------------------------------------------------------- agent


@cli.group()
def agent() -> None:
    """Register, list, show and deregister agents (members are agents with a pane)."""


def _agent_text(a: dict) -> str:
    return "\n".join([
        a["agent_id"],
        f"name: {a['name']}", f"role: {a['role']}", f"status: {a['status']}",
        f"description: {a['description']}", f"placement: {_fmt_placement(a['placement'])}",
        f"created_at: {a['created_at']}", f"last_seen: {a['last_seen'] or '-'}",
    ])


@agent.command("register")
@click.option("--name", required=True)
@click.option("--description", required=True)
def agent_register(name: str, description: str) -> None:
    """Register an agent without a pane. Prints its agent id."""
    state = _state()
    a = state.fleet_broker("agent register").register_agent(state.fleet_id, name, description)
    _emit(a, a["agent_id"])


@agent.command("list")
def agent_list() -> None:
    """Active agents of the fleet."""
    state = _state()
    rows = state.fleet_broker("agent list").list_agents(state.fleet_id)
    _emit(rows, lambda: _table(
        [[a["agent_id"], a["role"], a["name"], (a["placement"] or {}).get("pane_id") or "-", a["last_seen"] or "-"]
         for a in rows], ["AGENT_ID", "ROLE", "NAME", "PANE", "LAST_SEEN"]))


@agent.command("show")
@click.option("--agent-id", type=UUID, required=True)
def agent_show(agent_id: str) -> None:
    """One agent (deregistered ones too)."""
    state = _state()
    a = state.fleet_broker("agent show").get_agent(state.fleet_id, agent_id, active=False)
    _emit(a, _agent_text(a))


@agent.command("deregister")
@click.option("--agent-id", type=UUID, required=True)
def agent_deregister(agent_id: str) -> None:
    """Deregister an agent. The root Director cannot be (use `fleet delete`)."""
    state = _state()
    a = state.fleet_broker("agent deregister").deregister_agent(state.fleet_id, agent_id)
    _emit(a, f"agent {a['agent_id']} deregistered")


# ---------------------------------------------------------------- member


@cli.group()
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
    state = _state()
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
    text = f"{m['agent_id']}\nmember {m['name']} ({coding_agent}) in {_fmt_placement(m['placement'])}"
    if worktree:
        data["worktree"] = m["worktree"]
        text += f"\n{_fmt_worktree(m['worktree'])}"
    _emit(data, text)


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
    state = _state()
    from cafleet import members

    rows = members.list_members(state.fleet_broker("member list"), state.fleet_id, agent_id)
    from cafleet import worktrees

    worktrees.annotate(state.broker(), state.fleet_id, rows)
    data = [{"agent_id": r["agent_id"], "name": r["name"], "coding_agent": r["coding_agent"],
             "pane_id": (r["placement"] or {}).get("pane_id"), "pane_status": r["pane_status"],
             "state": r["state"], "quiet_s": r["quiet_s"], "unread": r["unread"], "held": r["held"],
             "exit_status": r["exit_status"], "last_line": r["last_line"], "last_seen": r["last_seen"],
             "last_report_at": r["last_report_at"], "unacked_reports": r["unacked_reports"],
             "created_at": r["created_at"], "worktree": r["worktree"]} for r in rows]
    branches = any(d["worktree"] for d in data)  # the BRANCH column only once someone has one
    _emit(data, lambda: _table(
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
    state = _state()
    from cafleet import members, worktrees
    from cafleet.errors import NotFound

    broker = state.fleet_broker("member show")
    m = broker.get_agent(state.fleet_id, member_id, active=False, flag="--member-id")
    if m["role"] != "member":
        raise NotFound(f"member {member_id} not found in fleet {state.fleet_id} (that agent is not a member)")
    m["pane_status"] = members.pane_status(m) if m["status"] == "active" else "dead"
    worktrees.annotate(broker, state.fleet_id, [m], detail=True)
    changes = (m["worktree"] or {}).get("changes") or []
    _emit(m, lambda: "\n".join([_agent_text(m), f"pane status: {m['pane_status']}", _fmt_worktree(m["worktree"])]
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
    state = _state()
    from cafleet import members

    r = members.capture(state.fleet_broker("member capture"), state.fleet_id, member_id, lines, changed=changed)
    if not changed:
        _emit(r, r["content"])
    elif r["unchanged"]:
        _emit(r, f"(unchanged since your last look {render.age(r['previous_look_age_s'])} ago: "
                 f"{r['view_lines']} lines)")
    elif r["previous_look_at"] is None:
        _emit(r, r["content"])
    else:
        _emit(r, f"(changed since your last look {render.age(r['previous_look_age_s'])} ago; "
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
    state = _state()
    from cafleet import members

    r = members.send_input(state.fleet_broker("member send-input"), state.fleet_id, member_id,
                           choice=choice, freetext=freetext)
    _emit(r, f"sent {r['sent']!r} to pane {r['pane_id']}")


@member.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--member-id", type=UUID, required=True)
@click.option("--wait", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
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
    state = _state()
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
    _emit(r, text)


@member.command("ping")
@click.option("--member-id", type=UUID, required=True)
def member_ping(member_id: str) -> None:
    """Type the member's own `message poll` command into its pane (a manual inbox nudge)."""
    state = _state()
    from cafleet import members

    r = members.ping(state.fleet_broker("member ping"), state.fleet_id, member_id)
    _emit(r, f"typed {r['sent']!r} into pane {r['pane_id']}")


@member.command("exited", hidden=True)
@click.option("--member-id", type=UUID, required=True)
def member_exited(member_id: str) -> None:
    """Run by tmux's pane-died hook on a member's pane: record the exit and send the
    Director a notice (once)."""
    state = _state()
    from cafleet import delivery

    task = delivery.member_exited(state.fleet_broker("member exited"), state.fleet_id, member_id)
    _emit({"task_id": task and task["task_id"]}, task["task_id"] if task else "nothing to report")


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
    state = _state()
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
    _emit(r, text)


# ---------------------------------------------------------------- message


@cli.group()
def message() -> None:
    """Tasks between agents: send, broadcast, poll, ack, cancel, show."""


def _push(task: dict) -> dict:
    from cafleet import delivery

    broker = _state().broker()
    delivery.deliver_quietly(broker, task["fleet_id"], task["recipient_agent_id"])  # older held ones first
    return delivery.push_preview(task, broker)


def _body(text: str | None, text_file: str | None) -> str:
    """The message body from `--text` or `--text-file PATH` (`-`: stdin), exactly one of them."""
    if (text is None) == (text_file is None):
        raise UsageError("give the body with exactly one of --text or --text-file PATH (`-` reads stdin)")
    if text is not None:
        return text
    from cafleet.userfiles import read_text

    try:
        return read_text(text_file, "--text-file", MAX_BODY_BYTES, allow_stdin=True)
    except FileNotFoundError:
        raise UsageError(f"--text-file {text_file} does not exist") from None


@message.command("send")
@click.option("--agent-id", type=UUID, required=True, help="Sender.")
@click.option("--to", "to", type=UUID, required=True, help="Recipient agent id.")
@click.option("--text", help="Body (any Unicode, at most 64 KiB of UTF-8).")
@click.option("--text-file", metavar="PATH", help="Read the body from this file (`-`: stdin) instead of --text.")
def message_send(agent_id: str, to: str, text: str | None, text_file: str | None) -> None:
    """Store a task for the recipient, then push a 2-line preview into its pane.
    Prints the task id and whether a pane was notified. The body comes from --text or,
    for a large one that would not fit the shell's argument limit, --text-file."""
    state = _state()
    text = _body(text, text_file)
    task = state.fleet_broker("message send").send(state.fleet_id, agent_id, to, text)
    push = _push(task)
    _emit({**render.task_json(task), "push": push}, render.send_text(task, push))


@message.command("broadcast")
@click.option("--agent-id", type=UUID, required=True, help="Sender.")
@click.option("--text", help="Body (any Unicode, at most 64 KiB of UTF-8).")
@click.option("--text-file", metavar="PATH", help="Read the body from this file (`-`: stdin) instead of --text.")
def message_broadcast(agent_id: str, text: str | None, text_file: str | None) -> None:
    """One task for every other active agent of the fleet, each pushed like `send`."""
    state = _state()
    text = _body(text, text_file)
    tasks = state.fleet_broker("message broadcast").broadcast(state.fleet_id, agent_id, text)
    out = [{**render.task_json(t), "push": _push(t)} for t in tasks]
    _emit(out, lambda: "\n".join(f"{t['task_id']} to {t['recipient_name']}: {render.push_text(t['push'])}" for t in out)
          or "No other agents in the fleet; nothing sent.")


@message.command("poll")
@click.option("--agent-id", type=UUID, required=True)
@click.option("--limit", type=click.IntRange(1, MAX_POLL_LIMIT), metavar="N",
              help=f"Up to N tasks (1-{MAX_POLL_LIMIT}); default a page of {DEFAULT_POLL_LIMIT}.")
def message_poll(agent_id: str, limit: int | None) -> None:
    """Un-acked tasks addressed to the agent, newest first, with full bodies: a page of
    the newest ones, saying how many older ones wait (ack these, then poll again).
    `--json`: `{"tasks": [...], "more": N}`."""
    state = _state()
    broker = state.fleet_broker("message poll")
    page = broker.poll_page(state.fleet_id, agent_id, limit)
    if broker.has_held(state.fleet_id):
        from cafleet import delivery

        delivery.deliver_quietly(broker, state.fleet_id)

    _emit(render.poll_json(page), lambda: render.poll_text(page["tasks"], page["more"]))


@message.command("ack")
@click.option("--agent-id", type=UUID, required=True, help="Recipient.")
@click.option("--task-id", "task_ids", type=UUID, required=True, multiple=True, help="Repeatable.")
def message_ack(agent_id: str, task_ids: tuple[str, ...]) -> None:
    """Mark tasks addressed to you completed. Acking twice is harmless."""
    state = _state()
    results = state.fleet_broker("message ack").ack(state.fleet_id, agent_id, list(task_ids))
    _emit(results, lambda: render.ack_text(results))


@message.command("cancel")
@click.option("--agent-id", type=UUID, required=True, help="Sender.")
@click.option("--task-id", type=UUID, required=True)
def message_cancel(agent_id: str, task_id: str) -> None:
    """Retract a task you sent, before its recipient acks it."""
    state = _state()
    t = state.fleet_broker("message cancel").cancel(state.fleet_id, agent_id, task_id)
    _emit(render.task_json(t), f"canceled {t['task_id']}")


@message.command("show")
@click.option("--agent-id", type=UUID, required=True, help="Sender or recipient.")
@click.option("--task-id", type=UUID, required=True)
def message_show(agent_id: str, task_id: str) -> None:
    """One task, for its sender or recipient."""
    state = _state()
    t = state.fleet_broker("message show").show_task(state.fleet_id, agent_id, task_id)
    _emit({**render.task_json(t), "held_reason": t["held_reason"]}, lambda: "\n".join([
        f"task {t['task_id']} ({t['state']})" + (f"; preview held: {t['held_reason']}" if t["held_reason"] else ""),
        f"from {t['sender_name']} ({t['sender_agent_id']}) to {t['recipient_name']} ({t['recipient_agent_id']})",
        f"created {t['created_at']}, updated {t['updated_at']}", "", t["body"]]))


# ---------------------------------------------------------------- permissions, doctor, demo

DEFAULT_SETTINGS = os.path.join(".claude", "settings.local.json")


@cli.command("permissions")
@click.option("--agent-id", type=UUID, required=True)
@click.option("--role", type=click.Choice(["director", "member"]),
              help="Default: director for the fleet's root Director or an agent with members, else member.")
@click.option("--per-member", is_flag=True,
              help="Director rules naming each current member exactly, instead of fleet-wide prefixes "
                   "(members spawned later are then not covered).")
@click.option("--write", "write_path", is_flag=False, flag_value=DEFAULT_SETTINGS, default=None, metavar="[PATH]",
              help=f"Merge the rules into a Claude Code settings file (default {DEFAULT_SETTINGS}).")
def permissions_cmd(agent_id: str, role: str | None, per_member: bool, write_path: str | None) -> None:
    """Claude Code permission rules for this agent's literal cafleet commands:
    routine ones in `allow`, pane-acting ones in `ask`."""
    state = _state()
    from cafleet import permissions

    fleet_id = state.fleet("permissions")
    broker = state.broker()
    a = broker.get_agent(fleet_id, agent_id)
    members_of = broker.list_members(fleet_id, a["agent_id"])
    if role is None:
        role = "director" if a["role"] == "director" or members_of else "member"
    if role == "director":
        member_ids = [m["agent_id"] for m in members_of] if per_member else ()
        rules = permissions.director_rules(fleet_id, a["agent_id"], member_ids)
    else:
        director_id = a["parent_agent_id"] or broker.get_fleet(fleet_id)["director_agent_id"]
        rules = permissions.member_rules(fleet_id, a["agent_id"], director_id)
    data = {"permissions": rules}
    if write_path:
        added = permissions.write_settings(write_path, rules)
        data = {"path": os.path.abspath(write_path), "added": added, "permissions": rules}
        _emit(data, f"{os.path.abspath(write_path)}: added {sum(len(v) for v in added.values())} rules")
        return
    render.echo_json(data)


@cli.group("mcp", invoke_without_command=True)
@click.option("--agent-id", type=UUID, help="Default Director for the wait tool.")
@click.pass_context
def mcp_cmd(ctx: click.Context, agent_id: str | None) -> None:
    """Serve the MCP wake-up tool `wait_for_news` on stdin/stdout (for a codex Director;
    register it with `mcp config`). `--fleet-id` / `--agent-id` become the tool's defaults."""
    if ctx.invoked_subcommand is None:
        from cafleet import mcp_server

        mcp_server.serve(_state().fleet_id, agent_id)


@mcp_cmd.command("config")
@click.option("--agent-id", type=UUID, help="The codex Director the tool waits for.")
@click.option("--flags", is_flag=True, help="Print the whole `codex …` command line (with `-c` flags) instead.")
def mcp_config(agent_id: str | None, flags: bool) -> None:
    """Print the `~/.codex/config.toml` block (or `codex -c` flags) that registers
    `cafleet mcp` with its tool timeout. codex only: an opencode pane must load no MCP server."""
    state = _state()
    from cafleet import store as _b
    from cafleet import mcp_server

    if agent_id and not state.fleet_id:
        state.fleet("mcp config")
    if state.fleet_id:
        a = state.broker().get_agent(state.fleet_id, agent_id) if agent_id else None
        if a and (a.get("coding_agent") or (a.get("placement") or {}).get("coding_agent")) == "opencode":
            raise UsageError("the MCP wake-up server is for codex Directors only: the config an "
                             "opencode pane loads must have no MCP servers (their tools bypass "
                             "its deny-list floor); use `fleet tick` for an opencode Director")
    cmd, db = mcp_server.cafleet_command(), os.path.abspath(_b.db_path())
    toml = mcp_server.codex_config(cmd, db, state.fleet_id, agent_id)
    argv = [*mcp_server.director_argv(db), *mcp_server.codex_flags(cmd, db, state.fleet_id, agent_id)]
    _emit({"toml": toml, "codex_argv": argv},
          lambda: " ".join(shlex.quote(a) for a in argv) if flags else toml.rstrip("\n"))


@cli.command("doctor")
def doctor_cmd() -> None:
    """This pane's tmux session/window/pane, the DB path and schema, the backends on PATH.
    Exits 1 outside tmux."""
    from cafleet import doctor

    report = doctor.report()
    _emit(report, doctor.format_report(report))
    if not report["ok"]:
        raise CafleetError(report["problem"])


@cli.command("demo")
@click.option("--attach", is_flag=True, help="Open a tmux client on the demo's private server to watch it live.")
@click.option("--keep", is_flag=True, help="Leave the demo's tmux server and DB in place at the end.")
def demo_cmd(attach: bool, keep: bool) -> None:
    """A whole fleet lifecycle on a private tmux server with two stand-in members (no LLM,
    no network), printing each step and its time."""
    from cafleet import demo

    demo.run(attach=attach, keep=keep, report=lambda line: click.echo(line))
