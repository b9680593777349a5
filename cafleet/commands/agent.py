"""`cafleet agent`: register, list, show and deregister agents, and how one agent row prints
(also used by `member show`)."""

from __future__ import annotations

import click

from cafleet.commands import UUID, current_state, emit, fmt_placement, table


@click.group()
def agent() -> None:
    """Register, list, show and deregister agents (members are agents with a pane)."""


def agent_text(a: dict) -> str:
    return "\n".join([
        a["agent_id"],
        f"name: {a['name']}", f"role: {a['role']}", f"status: {a['status']}",
        f"description: {a['description']}", f"placement: {fmt_placement(a['placement'])}",
        f"created_at: {a['created_at']}", f"last_seen: {a['last_seen'] or '-'}",
    ])


@agent.command("register")
@click.option("--name", required=True)
@click.option("--description", required=True)
def agent_register(name: str, description: str) -> None:
    """Register an agent without a pane. Prints its agent id."""
    state = current_state()
    a = state.fleet_broker("agent register").register_agent(state.fleet_id, name, description)
    emit(a, a["agent_id"])


@agent.command("list")
def agent_list() -> None:
    """Active agents of the fleet."""
    state = current_state()
    rows = state.fleet_broker("agent list").list_agents(state.fleet_id)
    emit(rows, lambda: table(
        [[a["agent_id"], a["role"], a["name"], (a["placement"] or {}).get("pane_id") or "-", a["last_seen"] or "-"]
         for a in rows], ["AGENT_ID", "ROLE", "NAME", "PANE", "LAST_SEEN"]))


@agent.command("show")
@click.option("--agent-id", type=UUID, required=True)
def agent_show(agent_id: str) -> None:
    """One agent (deregistered ones too)."""
    state = current_state()
    a = state.fleet_broker("agent show").get_agent(state.fleet_id, agent_id, active=False)
    emit(a, agent_text(a))


@agent.command("deregister")
@click.option("--agent-id", type=UUID, required=True)
def agent_deregister(agent_id: str) -> None:
    """Deregister an agent. The root Director cannot be (use `fleet delete`)."""
    state = current_state()
    a = state.fleet_broker("agent deregister").deregister_agent(state.fleet_id, agent_id)
    emit(a, f"agent {a['agent_id']} deregistered")
