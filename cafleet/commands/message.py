"""`cafleet message`: tasks between agents -- send and broadcast (each pushed as a preview
into the recipient's pane), poll, ack, cancel, show. The per-tick forms of poll, ack and send
usually run click-free (`cafleet.fastpath`); these are the same commands for every other form."""

from __future__ import annotations

import click

from cafleet import render
from cafleet.broker import DEFAULT_POLL_LIMIT, MAX_BODY_BYTES, MAX_POLL_LIMIT
from cafleet.commands import UUID, current_state, emit
from cafleet.errors import UsageError


@click.group()
def message() -> None:
    """Tasks between agents: send, broadcast, poll, ack, cancel, show."""


def _push(task: dict) -> dict:
    from cafleet import delivery

    broker = current_state().broker()
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
    state = current_state()
    text = _body(text, text_file)
    task = state.fleet_broker("message send").send(state.fleet_id, agent_id, to, text)
    push = _push(task)
    emit({**render.task_json(task), "push": push}, render.send_text(task, push))


@message.command("broadcast")
@click.option("--agent-id", type=UUID, required=True, help="Sender.")
@click.option("--text", help="Body (any Unicode, at most 64 KiB of UTF-8).")
@click.option("--text-file", metavar="PATH", help="Read the body from this file (`-`: stdin) instead of --text.")
def message_broadcast(agent_id: str, text: str | None, text_file: str | None) -> None:
    """One task for every other active agent of the fleet, each pushed like `send`."""
    state = current_state()
    text = _body(text, text_file)
    tasks = state.fleet_broker("message broadcast").broadcast(state.fleet_id, agent_id, text)
    out = [{**render.task_json(t), "push": _push(t)} for t in tasks]
    emit(out, lambda: "\n".join(f"{t['task_id']} to {t['recipient_name']}: {render.push_text(t['push'])}" for t in out)
         or "No other agents in the fleet; nothing sent.")


@message.command("poll")
@click.option("--agent-id", type=UUID, required=True)
@click.option("--limit", type=click.IntRange(1, MAX_POLL_LIMIT), metavar="N",
              help=f"Up to N tasks (1-{MAX_POLL_LIMIT}); default a page of {DEFAULT_POLL_LIMIT}.")
def message_poll(agent_id: str, limit: int | None) -> None:
    """Un-acked tasks addressed to the agent, newest first, with full bodies: a page of
    the newest ones, saying how many older ones wait (ack these, then poll again).
    `--json`: `{"tasks": [...], "more": N}`."""
    state = current_state()
    broker = state.fleet_broker("message poll")
    page = broker.poll_page(state.fleet_id, agent_id, limit)
    if broker.has_held(state.fleet_id):
        from cafleet import delivery

        delivery.deliver_quietly(broker, state.fleet_id)

    emit(render.poll_json(page), lambda: render.poll_text(page["tasks"], page["more"]))


@message.command("ack")
@click.option("--agent-id", type=UUID, required=True, help="Recipient.")
@click.option("--task-id", "task_ids", type=UUID, required=True, multiple=True, help="Repeatable.")
def message_ack(agent_id: str, task_ids: tuple[str, ...]) -> None:
    """Mark tasks addressed to you completed. Acking twice is harmless."""
    state = current_state()
    results = state.fleet_broker("message ack").ack(state.fleet_id, agent_id, list(task_ids))
    emit(results, lambda: render.ack_text(results))


@message.command("cancel")
@click.option("--agent-id", type=UUID, required=True, help="Sender.")
@click.option("--task-id", type=UUID, required=True)
def message_cancel(agent_id: str, task_id: str) -> None:
    """Retract a task you sent, before its recipient acks it."""
    state = current_state()
    t = state.fleet_broker("message cancel").cancel(state.fleet_id, agent_id, task_id)
    emit(render.task_json(t), f"canceled {t['task_id']}")


@message.command("show")
@click.option("--agent-id", type=UUID, required=True, help="Sender or recipient.")
@click.option("--task-id", type=UUID, required=True)
def message_show(agent_id: str, task_id: str) -> None:
    """One task, for its sender or recipient."""
    state = current_state()
    t = state.fleet_broker("message show").show_task(state.fleet_id, agent_id, task_id)
    emit({**render.task_json(t), "held_reason": t["held_reason"]}, lambda: "\n".join([
        f"task {t['task_id']} ({t['state']})" + (f"; preview held: {t['held_reason']}" if t["held_reason"] else ""),
        f"from {t['sender_name']} ({t['sender_agent_id']}) to {t['recipient_name']} ({t['recipient_agent_id']})",
        f"created {t['created_at']}, updated {t['updated_at']}", "", t["body"]]))
