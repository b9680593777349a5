"""`cafleet mcp`: serve the MCP wake-up tool to a codex Director over stdio, and `mcp config`,
the codex config that registers it."""

from __future__ import annotations

import os
import shlex

import click

from cafleet.commands import UUID, current_state, emit
from cafleet.errors import UsageError


@click.group("mcp", invoke_without_command=True)
@click.option("--agent-id", type=UUID, help="Default Director for the wait tool.")
@click.pass_context
def mcp_cmd(ctx: click.Context, agent_id: str | None) -> None:
    """Serve the MCP wake-up tool `wait_for_news` on stdin/stdout (for a codex Director;
    register it with `mcp config`). `--fleet-id` / `--agent-id` become the tool's defaults."""
    if ctx.invoked_subcommand is None:
        from cafleet import mcp_server

        mcp_server.serve(current_state().fleet_id, agent_id)


@mcp_cmd.command("config")
@click.option("--agent-id", type=UUID, help="The codex Director the tool waits for.")
@click.option("--flags", is_flag=True, help="Print the whole `codex …` command line (with `-c` flags) instead.")
def mcp_config(agent_id: str | None, flags: bool) -> None:
    """Print the `~/.codex/config.toml` block (or `codex -c` flags) that registers
    `cafleet mcp` with its tool timeout. codex only: an opencode pane must load no MCP server."""
    state = current_state()
    from cafleet import mcp_server
    from cafleet import store as _b
    from cafleet.hooks import coding_agent

    if agent_id and not state.fleet_id:
        state.fleet("mcp config")
    if state.fleet_id:
        a = state.broker().get_agent(state.fleet_id, agent_id) if agent_id else None
        if a and coding_agent(a) == "opencode":
            raise UsageError("the MCP wake-up server is for codex Directors only: the config an "
                             "opencode pane loads must have no MCP servers (their tools bypass "
                             "its deny-list floor); use `fleet tick` for an opencode Director")
    cmd, db = mcp_server.cafleet_command(), os.path.abspath(_b.db_path())
    toml = mcp_server.codex_config(cmd, db, state.fleet_id, agent_id)
    argv = [*mcp_server.director_argv(db), *mcp_server.codex_flags(cmd, db, state.fleet_id, agent_id)]
    emit({"toml": toml, "codex_argv": argv},
         lambda: " ".join(shlex.quote(a) for a in argv) if flags else toml.rstrip("\n"))
