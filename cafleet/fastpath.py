"""The click-free fast path for the commands agents run on every tick.

`message poll`, `message ack` and `message send` are what a Director and its members run
over and over; importing click costs 10–25 ms of each call on a 2-core machine, more than
the work itself. This module recognises exactly the canonical forms the skills teach:

    cafleet [--fleet-id F] [--json] message poll --agent-id A [--limit N]
    cafleet [--fleet-id F] [--json] message ack --agent-id A --task-id T [--task-id T2 …]
    cafleet [--fleet-id F] [--json] message send --agent-id A --to B --text T

(global flags in either order, per-command flags in any order, `--flag=value` accepted, `--json`
also after the subcommand) and
runs them with the broker directly. Anything else — `--help`, an unknown or repeated flag, a
missing value, a malformed id, no `--fleet-id` — is declined (`None`), and the click CLI
handles it, so every usage error looks the same whichever path would have run. Output comes
from `cafleet.render`, shared with the click CLI; tests check both paths print the same.
"""

from __future__ import annotations

from cafleet import render
from cafleet.errors import CafleetError

_COMMANDS = {
    "poll": ({"--agent-id"}, {"--limit"}),
    "ack": ({"--agent-id", "--task-id"}, set()),
    "send": ({"--agent-id", "--to", "--text"}, set()),
}
_ID_FLAGS = ("--agent-id", "--to", "--task-id")


def _parse(argv: list[str]) -> tuple[str, str, bool, dict[str, list[str]]] | None:
    """`(command, fleet_id, as_json, {flag: [values]})`, or None if not a canonical form."""
    fleet_id, as_json, i = None, False, 0
    while i < len(argv) and argv[i].startswith("--"):
        flag, eq, value = argv[i].partition("=")
        if flag == "--json" and not eq and not as_json:
            as_json, i = True, i + 1
        elif flag == "--fleet-id" and fleet_id is None:
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value, i = argv[i + 1], i + 1
            fleet_id, i = value, i + 1
        else:
            return None
    if argv[i:i + 1] != ["message"] or i + 1 >= len(argv) or argv[i + 1] not in _COMMANDS:
        return None
    from cafleet.broker import MAX_POLL_LIMIT, is_uuid4  # sqlite3: only for a `message` command

    command = argv[i + 1]
    required, optional = _COMMANDS[command]
    opts: dict[str, list[str]] = {}
    rest = argv[i + 2:]
    j = 0
    while j < len(rest):
        flag, eq, value = rest[j].partition("=")
        if rest[j] == "--json":  # also accepted after the subcommand (cafleet.cliargs)
            as_json, j = True, j + 1
            continue
        if flag not in required and flag not in optional:
            return None
        if not eq:
            if j + 1 >= len(rest):
                return None
            value, j = rest[j + 1], j + 1
        j += 1
        if flag in opts and flag != "--task-id":
            return None  # repeated single-valued flag: click path refuses it
        opts.setdefault(flag, []).append(value)
    if not required <= set(opts) or fleet_id is None or not is_uuid4(fleet_id):
        return None
    if any(not is_uuid4(v) for f in _ID_FLAGS for v in opts.get(f, ())):
        return None
    if "--limit" in opts:
        value = opts["--limit"][0]  # ASCII digits only: str.isdigit() also takes "²", which int() refuses
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_POLL_LIMIT):
            return None
    return command, fleet_id, as_json, opts


def hot_command(argv: list[str]) -> str | None:
    """`"poll"`, `"ack"` or `"send"` when `run(argv)` would run it, else None. Only
    `send` may touch tmux (its preview push), which needs libtmux."""
    parsed = _parse(argv)
    return parsed[0] if parsed else None


def run(argv: list[str]) -> int | None:
    """Run `argv` (without the program name) if it is a canonical hot command; return its
    exit code, or None to let the click CLI handle it. Expected faults print as the click
    CLI prints them (`Error: …` or a JSON error) with the same exit codes."""
    parsed = _parse(argv)
    if parsed is None:
        return None
    command, fleet_id, as_json, opts = parsed
    from cafleet.broker import Broker

    try:
        with Broker.open() as broker:
            agent = opts["--agent-id"][0]
            if command == "poll":
                limit = int(opts["--limit"][0]) if "--limit" in opts else None
                page = broker.poll_page(fleet_id, agent, limit)
                _out(as_json, render.poll_json(page), lambda: render.poll_text(page["tasks"], page["more"]))
                if broker.has_held(fleet_id):  # one indexed lookup; tmux code only when something is held
                    from cafleet import delivery

                    delivery.deliver_quietly(broker, fleet_id)
            elif command == "ack":
                results = broker.ack(fleet_id, agent, opts["--task-id"])
                _out(as_json, results, lambda: render.ack_text(results))
            else:
                task = broker.send(fleet_id, agent, opts["--to"][0], opts["--text"][0])
                from cafleet import delivery

                if broker.has_held(fleet_id):
                    delivery.deliver_quietly(broker, fleet_id, task["recipient_agent_id"])
                push = delivery.push_preview(task, broker)
                _out(as_json, {**render.task_json(task), "push": push}, lambda: render.send_text(task, push))
    except CafleetError as e:
        render.echo_error(e.message, e.code, as_json)
        return e.exit_code
    except BrokenPipeError:
        return 1
    except Exception as e:  # unexpected: reported exactly as the click CLI reports it
        return render.echo_unexpected(e, as_json)
    return 0


def _out(as_json: bool, data, text) -> None:
    if as_json:
        render.echo_json(data)
    else:
        render.echo_text(text())
