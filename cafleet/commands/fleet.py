"""`cafleet fleet`: create, list, show and delete fleets, and `fleet tick`, the
out-of-band supervision driver for Directors without an in-session scheduler."""

from __future__ import annotations

import os

import click

from cafleet.commands import BACKEND_CHOICES, UUID, Seconds, current_state, emit, fmt_placement, table


@click.group()
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
    f = current_state().broker().create_fleet(name, coding_agent, placement)
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
    emit(data, "\n".join([
        f["fleet_id"], d["agent_id"],
        f"fleet {f['name']} created {f['created_at']}",
        f"Director {d['agent_id']} ({coding_agent}): {fmt_placement(d['placement'])}",
    ]))


@fleet.command("list")
def fleet_list() -> None:
    """Active fleets: id, name, Director, member count, created_at."""
    rows = current_state().broker().list_fleets()
    data = [{"fleet_id": r["fleet_id"], "name": r["name"], "director_agent_id": r["director_agent_id"],
             "member_count": r["member_count"], "created_at": r["created_at"]} for r in rows]
    emit(data, lambda: table(
        [[r["fleet_id"], r["name"], r["director_agent_id"], r["member_count"], r["created_at"]] for r in rows],
        ["FLEET_ID", "NAME", "DIRECTOR", "MEMBERS", "CREATED_AT"]) if rows else "No active fleets.")


@fleet.command("show")
@click.argument("fleet_id", type=UUID)
def fleet_show(fleet_id: str) -> None:
    """One fleet with its agents."""
    broker = current_state().broker()
    f = broker.get_fleet(fleet_id)
    agents = broker.list_agents(fleet_id)
    emit({**f, "agents": agents}, lambda: "\n".join(
        [f"fleet {f['fleet_id']} ({f['name']}) created {f['created_at']}"]
        + [f"  {a['agent_id']}  {a['role']:<8} {a['name']}  {fmt_placement(a['placement'])}" for a in agents]))


@fleet.command("delete")
@click.argument("fleet_id", type=UUID)
@click.option("--force", is_flag=True, help="Kill members' live panes first.")
def fleet_delete(fleet_id: str, force: bool) -> None:
    """Soft-delete a fleet and deregister its agents. Refuses while members have live panes
    (exit 1, listing them) unless --force, which kills those panes first. Idempotent.

    Members' worktrees: clean ones are removed, dirty ones kept and listed (run it again
    once they are committed); then every member branch not merged into its base is listed."""
    broker = current_state().broker()
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
    emit(result, "\n".join(lines))


@fleet.command("tick")
@click.option("--every", type=Seconds(1, 86400), metavar="SECONDS",
              help="Repeat every SECONDS until the fleet is deleted (default: once).")
@click.option("--agent-id", type=UUID, help="Director to tick (default: the root Director).")
def fleet_tick(every: float | None, agent_id: str | None) -> None:
    """Type the supervision-tick prompt into the Director's pane (out-of-band driver for
    codex/opencode Directors, which have no in-session scheduler). Skips a tick while the
    Director's screen is still changing."""
    state = current_state()
    from cafleet import tick

    fleet_id = state.fleet("fleet tick")
    tick.run(state.broker(), fleet_id, director_id=agent_id, every=every,
             report=lambda line: click.echo(line))
