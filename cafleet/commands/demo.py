"""`cafleet demo`: a whole fleet lifecycle on a private tmux server, step by step."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--attach", is_flag=True, help="Open a tmux client on the demo's private server to watch it live.")
@click.option("--keep", is_flag=True, help="Leave the demo's tmux server and DB in place at the end.")
def demo_cmd(attach: bool, keep: bool) -> None:
    """A whole fleet lifecycle on a private tmux server with two stand-in members (no LLM,
    no network), printing each step and its time."""
    from cafleet import demo

    demo.run(attach=attach, keep=keep, report=lambda line: click.echo(line))
