"""`cafleet permissions`: the Claude Code permission rules for an agent's literal cafleet
commands, printed as JSON or merged into a settings file."""

from __future__ import annotations

import os

import click

from cafleet import render
from cafleet.commands import UUID, current_state, emit


DEFAULT_SETTINGS = os.path.join(".claude", "settings.local.json")


@click.command("permissions")
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
    state = current_state()
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
        emit(data, f"{os.path.abspath(write_path)}: added {sum(len(v) for v in added.values())} rules")
        return
    render.echo_json(data)
