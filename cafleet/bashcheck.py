"""What in a Bash command line the PreToolUse hook cares about (`analyze`): raw tmux
commands that act on panes, `cafleet` invocations with ids from shell variables, an id flag
given twice or a `--` before the subcommand, and the `member create` / `fleet delete` calls
the lifecycle guards look at. Pure: no DB, no tmux, no I/O.

The command line is read with `cafleet.shellcommands` (every simple command, nested ones
included). tmux commands are resolved as tmux does (exact name, alias, unique prefix;
tmux(1) "COMMANDS"), and a read-only query (`display-message`, `list-panes -F`) counts as
acting when an argument is a format that can run a shell command (`#(…)`, `E:`/`T:`).
Standard library only: the hook imports it on every Bash call that could involve tmux or cafleet.
"""

from __future__ import annotations

from cafleet.cliargs import GROUPS, VALUE_FLAGS
from cafleet.shellcommands import command_index, split_commands
from cafleet.shellcommands import command_name as _base
from cafleet.shellwords import Word


# ================================================================ tmux commands

# tmux 3.x command table: name -> alias (tmux resolves an exact name or alias, else a unique
# prefix of a name; see tmux(1) "COMMANDS").
TMUX_COMMANDS = {
    "attach-session": "attach", "bind-key": "bind", "break-pane": "breakp", "capture-pane": "capturep",
    "choose-buffer": None, "choose-client": None, "choose-tree": None, "clear-history": "clearhist",
    "clear-prompt-history": "clearphist", "clock-mode": None, "command-prompt": None,
    "confirm-before": "confirm", "copy-mode": None, "customize-mode": None, "delete-buffer": "deleteb",
    "detach-client": "detach", "display-menu": "menu", "display-message": "display",
    "display-popup": "popup", "display-panes": "displayp", "find-window": "findw", "has-session": "has",
    "if-shell": "if", "join-pane": "joinp", "kill-pane": "killp", "kill-server": None,
    "kill-session": None, "kill-window": "killw", "last-pane": "lastp", "last-window": "last",
    "link-window": "linkw", "list-buffers": "lsb", "list-clients": "lsc", "list-commands": "lscm",
    "list-keys": "lsk", "list-panes": "lsp", "list-sessions": "ls", "list-windows": "lsw",
    "load-buffer": "loadb", "lock-client": "lockc", "lock-server": "lock", "lock-session": "locks",
    "move-pane": "movep", "move-window": "movew", "new-session": "new", "new-window": "neww",
    "next-layout": "nextl", "next-window": "next", "paste-buffer": "pasteb", "pipe-pane": "pipep",
    "previous-layout": "prevl", "previous-window": "prev", "refresh-client": "refresh",
    "rename-session": "rename", "rename-window": "renamew", "resize-pane": "resizep",
    "resize-window": "resizew", "respawn-pane": "respawnp", "respawn-window": "respawnw",
    "rotate-window": "rotatew", "run-shell": "run", "save-buffer": "saveb", "select-layout": "selectl",
    "select-pane": "selectp", "select-window": "selectw", "send-keys": "send", "send-prefix": None,
    "server-access": None, "set-buffer": "setb", "set-environment": "setenv", "set-hook": None,
    "set-option": "set", "set-window-option": "setw", "show-buffer": "showb",
    "show-environment": "showenv", "show-hooks": None, "show-messages": "showmsgs",
    "show-options": "show", "show-prompt-history": "showphist", "show-window-options": "showw",
    "source-file": "source", "split-window": "splitw", "start-server": "start",
    "suspend-client": "suspendc", "swap-pane": "swapp", "swap-window": "swapw",
    "switch-client": "switchc", "unbind-key": "unbind", "unlink-window": "unlinkw", "wait-for": "wait",
}
_TMUX_ALIASES = {alias: name for name, alias in TMUX_COMMANDS.items() if alias}

TMUX_READ_ONLY = frozenset({
    "display-message", "has-session", "list-buffers", "list-clients", "list-commands", "list-keys",
    "list-panes", "list-sessions", "list-windows", "show-buffer", "show-environment", "show-hooks",
    "show-messages", "show-options", "show-window-options", "server-access-list",
})
"""tmux commands that only read state; a fleet agent may run them (`display-message -p` to
see its own pane id, `list-panes`, …)."""

_TMUX_GLOBAL_WITH_VALUE = set("cfLST")


def resolve_tmux_command(name: str, *, allow_prefix: bool = True) -> str | None:
    """The full tmux command name for `name` (exact, alias, or unique prefix), else None."""
    if name in TMUX_COMMANDS:
        return name
    if name in _TMUX_ALIASES:
        return _TMUX_ALIASES[name]
    if not allow_prefix or not name:
        return None
    found = [c for c in TMUX_COMMANDS if c.startswith(name)]
    return found[0] if len(found) == 1 else None


def tmux_subcommands(args: list[Word], *, in_command_position: bool) -> list[str]:
    """tmux commands one `tmux ARGS…` invocation would run that are not read-only.

    Global options are skipped (`-L name`, `-S path`, `-f file`, `-2uv`…); `-c CMD` (run a
    shell command) counts as `-c`. Commands chained with `;` / `\\;` are all checked. Outside
    command position (`xargs tmux …`, `find -exec tmux …`) only exact names and aliases count,
    so `grep tmux notes.txt` is not a tmux call. Bare `tmux` is `new-session`.
    """
    k, n = 0, len(args)
    while k < n:
        t = args[k].text
        if t == "--":
            k += 1
            break
        if len(t) > 1 and t.startswith("-") and not args[k].dynamic:
            flags = t[1:]
            k += 1
            for pos, c in enumerate(flags):
                if c == "V":
                    return []
                if c in _TMUX_GLOBAL_WITH_VALUE:
                    if c == "c":
                        return ["-c"]
                    if pos == len(flags) - 1:
                        k += 1
                    break
            continue
        break
    if k >= n:
        return ["new-session"] if in_command_position else []
    found, expect, current = [], True, None
    for w in args[k:]:
        t = w.text
        if expect:
            name = t[:-1] if t.endswith(";") else t
            if name:
                full = resolve_tmux_command(name, allow_prefix=in_command_position)
                current = full
                if full is None:
                    if in_command_position:
                        found.append(name)
                    elif not found:
                        return []
                elif full not in TMUX_READ_ONLY:
                    found.append(full)
                expect = t.endswith(";")
            continue
        if current in TMUX_READ_ONLY and (w.dynamic or runs_shell_in_format(t)):
            shown = f"{current} {FORMAT_SHELL}"
            if shown not in found:
                found.append(shown)
        if t.endswith(";"):
            expect = True
    return found


FORMAT_SHELL = "#(…)"


def runs_shell_in_format(text: str) -> bool:
    """Whether a tmux argument could run a shell command when tmux expands it as a format:
    `#(cmd)` runs cmd, and the `E:` / `T:` modifiers expand an option's value (which may hold
    `#(…)`) as a format (tmux(1) "FORMATS"). `display-message` and `list-* -F` expand their
    arguments, so a read-only command with such an argument is not read-only."""
    return "#(" in text or ("#{" in text and ("E:" in text or "T:" in text))


# ================================================================ cafleet commands

ID_FLAGS = ("--fleet-id", "--agent-id", "--member-id", "--task-id", "--to")
# the CLI's own table, plus `permissions --write`, whose optional value the hook takes to be
# the next word
_VALUE_FLAGS = VALUE_FLAGS | {"--write"}


class CafleetCall:
    """One `cafleet …` invocation as the hook sees it. `dashdash`: a `--` came before the
    subcommand's own arguments (click would drop it and keep parsing options)."""

    __slots__ = ("group", "sub", "positionals", "options", "variable_ids", "repeated", "dashdash")

    def __init__(self):
        self.dashdash = False
        self.group = self.sub = None
        self.positionals: list[Word] = []
        self.options: dict[str, list[Word]] = {}
        self.variable_ids: list[tuple[str, str]] = []  # (flag or FLEET_ID, raw text)
        self.repeated: str | None = None

    def literal(self, flag: str) -> str | None:
        values = self.options.get(flag)
        if values and not values[-1].dynamic:
            return values[-1].text
        return None


def parse_cafleet(args: list[Word]) -> CafleetCall:
    """Parse the words after `cafleet` (global options, group, subcommand, options)."""
    call = CafleetCall()
    k, n, rest_positional = 0, len(args), False
    while k < n:
        w = args[k]
        t = w.text
        k += 1
        if not rest_positional and t == "--":
            if call.group is None or (call.group in GROUPS and call.sub is None):
                call.dashdash = True  # the CLI refuses it; parse on as click would
            else:
                rest_positional = True
            continue
        if not rest_positional and t.startswith("--") and not w.dynamic:
            flag, eq, value = t.partition("=")
            if flag in _VALUE_FLAGS:
                if eq:
                    val = Word(value, w.dynamic)
                elif k < n:
                    val = args[k]
                    k += 1
                else:
                    continue
                call.options.setdefault(flag, []).append(val)
            continue
        if not rest_positional and t.startswith("--") and w.dynamic:
            flag, eq, value = t.partition("=")
            if eq and flag in ID_FLAGS:
                call.options.setdefault(flag, []).append(Word(value, True))
            continue
        if call.group is None and not rest_positional:
            call.group = t
        elif call.sub is None and not rest_positional:
            call.sub = t
        else:
            call.positionals.append(w)
    for flag in ID_FLAGS:
        values = call.options.get(flag, [])
        for v in values:
            if v.dynamic:
                call.variable_ids.append((flag, v.text))
        is_ack = call.group == "message" and call.sub == "ack"
        if len(values) > 1 and not (flag == "--task-id" and is_ack) and call.repeated is None:
            call.repeated = flag
    if call.group == "fleet" and call.sub in ("delete", "show") and call.positionals:
        if call.positionals[0].dynamic:
            call.variable_ids.append(("FLEET_ID", call.positionals[0].text))
    return call


def _cafleet_args(words: list[Word]):
    """Yield the argument words of every `cafleet` invocation in one simple command
    (`cafleet …`, `/path/to/cafleet …`, `python -m cafleet …`, `uv run cafleet …`)."""
    for k, w in enumerate(words):
        b = _base(w)
        if b == "cafleet":
            yield words[k + 1 :]
        elif b.startswith("python") and k + 2 < len(words) and words[k + 1].text == "-m" \
                and words[k + 2].text == "cafleet.cli":  # `-m cafleet` is caught by the word itself
            yield words[k + 3 :]


# ================================================================ analysis


class Findings:
    __slots__ = ("tmux", "variable_ids", "repeated", "member_create", "fleet_delete", "dashdash")

    def __init__(self):
        self.dashdash = False
        self.tmux: list[str] = []
        self.variable_ids: list[tuple[str, str]] = []
        self.repeated: list[str] = []
        self.member_create: list[str | None] = []  # target fleet id (None: not given literally)
        self.fleet_delete: list[str | None] = []

    def __bool__(self) -> bool:
        return bool(self.tmux or self.variable_ids or self.repeated or self.member_create or self.fleet_delete
                    or self.dashdash)


_INERT = {"echo", "printf", "man", "info", "which", "type", "whatis", "whereis", "apropos", "grep", "egrep",
          "fgrep", "rg", "ag", "ack", "locate"}
"""Commands that only print or search their arguments: `echo tmux kill-server` runs no tmux."""


def analyze(command: str) -> Findings:
    """What in a Bash command line the PreToolUse hook cares about (pure; no DB)."""
    f = Findings()
    for words in split_commands(command):
        ci = command_index(words)
        inert = ci is not None and _base(words[ci]) in _INERT
        for k, w in enumerate(words):
            if _base(w) == "tmux" and not (inert and k != ci):
                for sub in tmux_subcommands(words[k + 1 :], in_command_position=(k == ci)):
                    if sub not in f.tmux:
                        f.tmux.append(sub)
        for args in _cafleet_args(words):
            call = parse_cafleet(args)
            f.dashdash = f.dashdash or call.dashdash
            f.variable_ids.extend(call.variable_ids)
            if call.repeated:
                f.repeated.append(call.repeated)
            if call.group == "member" and call.sub == "create":
                f.member_create.append(call.literal("--fleet-id"))
            if call.group == "fleet" and call.sub == "delete":
                target = call.positionals[0] if call.positionals else None
                f.fleet_delete.append(target.text if target is not None and not target.dynamic
                                      else call.literal("--fleet-id"))
    return f
