"""The `cafleet` command line: the root group, its global flags and how a call ends.

Parsing and printing only: the subcommands live in `cafleet.commands` (one module per group),
and behaviour in `broker` (fleets, agents, messages), `members` (panes), `permissions`,
`doctor`, `tick`, `mcp_server` and `demo`; those that need libtmux are imported only by the
commands that use them, so `message poll` stays fast.

Global flags go before the subcommand (`cafleet --fleet-id F --json message poll …`);
`--agent-id`, `--member-id`, `--task-id` go after it. Errors: `Error: …` on stderr (with
`--json`, `{"error": {"code", "message"}}`), exit 1 at run time, 2 for usage.
"""

from __future__ import annotations

import sys

import click

from cafleet import __version__, render
from cafleet.cliargs import VALUE_FLAGS
from cafleet.commands import UUID, agent, db, demo, doctor, fleet, mcp, member, message, permissions
from cafleet.errors import CafleetError, UsageError


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


for command in (db.db, fleet.fleet, agent.agent, member.member, message.message, permissions.permissions_cmd,
                mcp.mcp_cmd, doctor.doctor_cmd, demo.demo_cmd):
    cli.add_command(command)

main = cli
