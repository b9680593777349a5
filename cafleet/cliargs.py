"""What the command line means before click reads it: global flags, `--`, misplaced flags.

click parses `cafleet [GLOBAL…] GROUP [SUB] [ARGS…]` level by level, which leaves three traps
that `normalize` closes before click runs (the click-free fast path declines a `--` and a
misplaced `--fleet-id`, and takes `--json` after the subcommand the same way, so both
paths agree; tests/test_fastpath.py):

- a `--` before the subcommand's own arguments (`cafleet --fleet-id F -- message send …`):
  click drops it at the group level and goes on reading flags, while a permission rule, the
  repeated-flag check and the hook all read everything after `--` as arguments. Refused
  (exit 2). A `--` among the subcommand's own arguments (before a `member create` prompt)
  is click's as usual.
- `--json` after the subcommand (`cafleet fleet create --json`, the upstream CLI's spelling)
  is moved before it, so both spellings behave the same.
- `--fleet-id` after the subcommand: click would say "No such option" (or suggest
  `--agent-id`); the error says it goes before the subcommand.

A flag's value is skipped, so `--text --json` is a body that reads "--json".
"""

from __future__ import annotations

from cafleet.errors import UsageError

GROUPS = frozenset({"db", "fleet", "agent", "member", "message"})
"""Command groups: their subcommand's arguments start after the subcommand."""

GLOBAL_VALUE_FLAGS = frozenset({"--fleet-id"})

VALUE_FLAGS = frozenset({
    "--fleet-id", "--agent-id", "--member-id", "--to", "--text", "--text-file", "--choice", "--freetext",
    "--task-id", "--name", "--description", "--lines", "--limit", "--model", "--prompt-file", "--coding-agent",
    "--timeout", "--every", "--role", "--wait", "--branch", "--base", "--repo",
})
"""Flags that take a value (the next word, unless written `--flag=value`): every value option
of the commands in `cafleet.commands`, one table for the CLI's argv checks (`cafleet.cli`) and
the hook's reading of a cafleet command line (`cafleet.bashcheck`). `permissions --write`
takes an optional value and is not here."""


def normalize(args: list[str]) -> tuple[list[str], bool]:
    """`(args for click, as_json)`: `--json` given after the subcommand moved to the front.

    Raises `UsageError` for a `--` before the subcommand's own arguments and for `--fleet-id`
    after the subcommand. Stops looking at the first `--` among the subcommand's arguments.
    """
    out: list[str] = []
    as_json = False
    i, n = 0, len(args)
    command = sub = None
    while i < n:  # global flags, then the command (and, for a group, its subcommand)
        t = args[i]
        if t == "--":
            where = "the command" if command is None else f"the `{command}` subcommand"
            raise UsageError(
                f"a `--` before {where} is refused: cafleet would keep reading flags after it, so the command "
                "would not mean what it looks like. Write it without the `--` (one belongs only after the "
                "subcommand's flags, before a `member create` prompt)")
        if t.startswith("-") and len(t) > 1:
            if t == "--json":
                as_json = True
            out.append(t)
            i += 1
            if command is None and t in GLOBAL_VALUE_FLAGS and i < n:
                out.append(args[i])
                i += 1
            continue
        out.append(t)
        i += 1
        if command is None:
            command = t
            if command not in GROUPS:
                break
        else:
            sub = t
            break
    moved = 0
    while i < n:  # the subcommand's own arguments
        t = args[i]
        i += 1
        if t == "--":
            out.append(t)
            out.extend(args[i:])
            break
        name, has_value = t.split("=", 1)[0], "=" in t
        if name == "--fleet-id":
            shown = " ".join(x for x in (command, sub) if x)
            raise UsageError(f"--fleet-id goes before the subcommand: `cafleet --fleet-id <fleet-id> {shown} …`")
        if t == "--json":
            as_json = True
            out.insert(moved, t)
            moved += 1
            continue
        out.append(t)
        if name in VALUE_FLAGS and not has_value and i < n:
            out.append(args[i])
            i += 1
    return out, as_json
