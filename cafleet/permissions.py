"""Claude Code permission rules for one fleet agent's literal `cafleet` commands.

Stdlib only: the hooks import this module with a bare `python3`.

The skills teach every `cafleet` command in exactly one literal form (ids pasted in as
literal UUIDs, never shell variables). `COMMANDS` below is the single table of those forms;
the skills, the rule generator and the tests all read it, so a command the skills teach and
the rule that pre-approves it cannot drift apart.

Claude Code rule syntax (https://code.claude.com/docs/en/permissions, "Permission rule
syntax" / "Bash"): `Bash(<command>)` matches exactly that command; `Bash(<prefix>:*)`
matches the prefix alone or followed by more words (a word boundary is required), and the
client splits compound commands (`&&`, `||`, `;`, `|`, …) so a prefix rule never approves a
chained command. Rules are checked deny → ask → allow, first match wins: an `ask` rule
prompts even when an `allow` rule would also match. Settings files (`.claude/settings.json`,
`.claude/settings.local.json`, `--settings`) hold them under `permissions.allow` /
`permissions.ask`.

PENDING CONFIRMATION: whether the prefix form is written `<prefix>:*` (legacy, documented as
still supported) or `<prefix> *` (the newer wildcard form) is being checked against the real
client (Claude Code 2.1.x) by the e2e tests. Only `PREFIX_SUFFIX` needs to change.

Known limit of prefix rules (not fixable here): click keeps the *last* value of a repeated
option, so an allowed prefix such as `… message send --agent-id D --to` also approves
`… --to X --text hi --agent-id OTHER`. The broker's only boundary is the fleet (which the
rule pins), but the CLI should reject a repeated `--agent-id`, and the PreToolUse hook can
deny it (`repeated_identity_flag`).
"""

from __future__ import annotations

import os
import re
from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence

from cafleet.errors import CafleetError, UsageError

# The one place that decides how a prefix rule is spelled. Pending confirmation against the
# real client (see module docstring); `matches` understands both spellings regardless.
PREFIX_SUFFIX = ":*"

DEFAULT_SETTINGS_PATH = os.path.join(".claude", "settings.local.json")

ALLOW = "allow"
ASK = "ask"
NONE = "none"  # taught by the skills, but no rule: bootstrap / operator-side commands

DIRECTOR = "director"
MEMBER = "member"
ROLES = (DIRECTOR, MEMBER)

# Placeholders exactly as the skills write them.
FLEET = "<fleet-id>"
DIRECTOR_ID = "<director-agent-id>"
MEMBER_ID = "<member-agent-id>"


class CommandTemplate(namedtuple("CommandTemplate", "role template kind")):
    """One literal command form the skills teach.

    `template` uses the skills' placeholders. For a role, `<fleet-id>` and the role's own id
    (`<director-agent-id>` for the Director, `<member-agent-id>` for a member) plus, for a
    member, `<director-agent-id>` are fixed; any other `<…>` placeholder is variable. The rule
    is exact when nothing variable is left, else a prefix rule that ends just before the
    first variable word. `kind` is ALLOW, ASK or NONE.
    """

    __slots__ = ()


_F, _D, _M = FLEET, DIRECTOR_ID, MEMBER_ID

COMMANDS: tuple[CommandTemplate, ...] = (
    # --- Director: routine, pre-approved -------------------------------------------------
    CommandTemplate(DIRECTOR, "cafleet doctor", ALLOW),
    CommandTemplate(DIRECTOR, "cafleet fleet list", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} member list", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} --json member list", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} message poll --agent-id {_D}", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} --json message poll --agent-id {_D}", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} message ack --agent-id {_D} --task-id <task-id>", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} message show --agent-id {_D} --task-id <task-id>", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} message cancel --agent-id {_D} --task-id <task-id>", ALLOW),
    CommandTemplate(DIRECTOR, f'cafleet --fleet-id {_F} message send --agent-id {_D} --to {_M} --text "<text>"', ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} member capture --member-id {_M}", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} member capture --member-id {_M} --lines <n>", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} member capture --member-id {_M} --changed", ALLOW),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} member ping --member-id {_M}", ALLOW),
    # --- Director: each use prompts the user ------------------------------------------------
    CommandTemplate(
        DIRECTOR,
        f'cafleet --fleet-id {_F} member create --name <name> --description "<description>"'
        f' --coding-agent <backend> -- "<prompt>"',
        ASK,
    ),
    CommandTemplate(
        DIRECTOR,
        f'cafleet --fleet-id {_F} member create --name <name> --description "<description>"'
        f' --coding-agent <backend> --worktree -- "<prompt>"',
        ASK,
    ),
    CommandTemplate(DIRECTOR, f'cafleet --fleet-id {_F} member exec --member-id {_M} "<cmd>"', ASK),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} member send-input --member-id {_M} --choice <n>", ASK),
    CommandTemplate(DIRECTOR, f'cafleet --fleet-id {_F} member send-input --member-id {_M} --freetext "<text>"', ASK),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} member delete --member-id {_M}", ASK),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} member delete --member-id {_M} --force", ASK),
    CommandTemplate(DIRECTOR, f"cafleet fleet delete {_F}", ASK),
    CommandTemplate(DIRECTOR, f"cafleet fleet delete {_F} --force", ASK),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} permissions --agent-id {_D} --write", ASK),
    # --- Director: no rule (before the fleet exists, or run by the operator outside) -------
    CommandTemplate(DIRECTOR, "cafleet fleet create --coding-agent claude", NONE),
    CommandTemplate(DIRECTOR, f"cafleet --fleet-id {_F} fleet tick --every <seconds>", NONE),
    CommandTemplate(DIRECTOR, "cafleet fleet create --coding-agent codex", NONE),
    CommandTemplate(DIRECTOR, "cafleet mcp config", NONE),
    # --- Member: its own message commands only ----------------------------------------------
    CommandTemplate(MEMBER, f"cafleet --fleet-id {_F} message poll --agent-id {_M}", ALLOW),
    CommandTemplate(MEMBER, f"cafleet --fleet-id {_F} message ack --agent-id {_M} --task-id <task-id>", ALLOW),
    CommandTemplate(MEMBER, f"cafleet --fleet-id {_F} message show --agent-id {_M} --task-id <task-id>", ALLOW),
    CommandTemplate(MEMBER, f'cafleet --fleet-id {_F} message send --agent-id {_M} --to {_D} --text "<text>"', ALLOW),
)

_PLACEHOLDER_RE = re.compile(r"<[a-z][a-z0-9-]*>")


def templates_for(role: str) -> tuple[CommandTemplate, ...]:
    """The `COMMANDS` rows of one role (UsageError for an unknown role)."""
    _check_role(role)
    return tuple(c for c in COMMANDS if c.role == role)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}: use one of {', '.join(ROLES)}", code="usage")


def _check_id(value: str, what: str) -> str:
    """Ids go into rules verbatim, so only canonical lowercase UUIDs are accepted."""
    if not isinstance(value, str) or _UUID.fullmatch(value) is None:
        raise UsageError(f"{what} must be a lowercase UUID, got {value!r}")
    return value


def rule_body(template: str, fixed: Mapping[str, str]) -> tuple[str, bool]:
    """Fill `fixed` placeholders into `template`; return `(text, is_prefix)`.

    The text ends just before the first word that still holds a placeholder (that word's
    opening quote included); `is_prefix` is False when no placeholder was left.
    """
    text = template
    for placeholder, value in fixed.items():
        text = text.replace(placeholder, value)
    found = _PLACEHOLDER_RE.search(text)
    if found is None:
        return text, False
    word_start = text.rfind(" ", 0, found.start()) + 1
    return text[:word_start].rstrip(), True


def make_rule(body: str, is_prefix: bool) -> str:
    """`Bash(<body>)` or `Bash(<body><PREFIX_SUFFIX>)`."""
    return f"Bash({body}{PREFIX_SUFFIX})" if is_prefix else f"Bash({body})"


def _build(role: str, mappings: Sequence[Mapping[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {ALLOW: [], ASK: []}
    for row in templates_for(role):
        if row.kind == NONE:
            continue
        for fixed in mappings:
            rule = make_rule(*rule_body(row.template, fixed))
            if rule not in out[row.kind]:
                out[row.kind].append(rule)
    return out


def director_rules(fleet_id: str, agent_id: str, member_ids: Iterable[str] = ()) -> dict[str, list[str]]:
    """Rules for a Director: `{"allow": [...], "ask": [...]}` (ordered, no duplicates).

    allow: doctor, fleet list, member list (plain and `--json`), message poll (plain and
    `--json`), message ack/show/cancel/send as this Director, member capture (plain, `--lines`
    or `--changed`) and member ping. ask: member create, exec, send-input, delete (graceful and
    `--force`), `fleet delete` (and `--force`), and rewriting its own permissions.

    Member-targeting rules are fleet-scoped prefixes (`… member ping --member-id:*`) by
    default. That grants nothing outside the fleet: the rule pins `--fleet-id`, and the
    broker answers "not found" for any id of another fleet. Exact per-member rules would have
    to be rewritten after every `member create` (the very moment the monitoring loop starts
    needing them), and until then the Director is prompted, or denied under `dontAsk`. So
    the prefix form is the default. Passing `member_ids` narrows those rules to the given
    members (exact `member ping`/`capture` rules, prefixes only where text varies) — safer
    still when one fleet holds several Directors' teams, at the cost of regenerating.

    Raises UsageError for an id that is not a canonical UUID.
    """
    fixed = {FLEET: _check_id(fleet_id, "fleet id"), DIRECTOR_ID: _check_id(agent_id, "agent id")}
    member_ids = [_check_id(m, "member id") for m in member_ids]
    mappings = [{**fixed, MEMBER_ID: m} for m in member_ids] or [fixed]
    return _build(DIRECTOR, mappings)


def member_rules(fleet_id: str, agent_id: str, director_id: str) -> dict[str, list[str]]:
    """Rules for a member: its own message poll/ack/show, and send to its Director only.

    Nothing of the Director's and no member/fleet command: a member asks its Director to act.
    `ask` is empty. Raises UsageError for an id that is not a canonical UUID.
    """
    fixed = {
        FLEET: _check_id(fleet_id, "fleet id"),
        MEMBER_ID: _check_id(agent_id, "agent id"),
        DIRECTOR_ID: _check_id(director_id, "director id"),
    }
    return _build(MEMBER, [fixed])


def rules_for(
    role: str,
    fleet_id: str,
    agent_id: str,
    *,
    director_id: str | None = None,
    member_ids: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Dispatch on `role` ("director" or "member"); a member needs `director_id`."""
    _check_role(role)
    if role == DIRECTOR:
        return director_rules(fleet_id, agent_id, member_ids)
    if director_id is None:
        raise UsageError("member rules need the Director's agent id")
    return member_rules(fleet_id, agent_id, director_id)


_ID_PLACEHOLDERS = (FLEET, DIRECTOR_ID, MEMBER_ID, "<task-id>")
_UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def template_pattern(template: str) -> re.Pattern:
    """A regex matching `template` written either with its placeholders or filled in.

    An id placeholder matches itself or a UUID; `"<x>"` matches any double-quoted text
    (`"..."` included); any other `<x>` matches itself or one plain word.
    """
    out, pos = [], 0
    for found in re.finditer(r'"<[a-z][a-z0-9-]*>"|<[a-z][a-z0-9-]*>', template):
        out.append(re.escape(template[pos : found.start()]))
        token = found.group()
        if token.startswith('"'):
            out.append(r'"[^"]*"')
        elif token in _ID_PLACEHOLDERS:
            out.append(f"(?:{re.escape(token)}|{_UUID_PATTERN})")
        else:
            out.append(rf"(?:{re.escape(token)}|[^\s\"'<>]+)")
        pos = found.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + r"\Z")


def find_template(command: str, role: str | None = None) -> CommandTemplate | None:
    """The `COMMANDS` row (of `role`, or any role) whose form `command` follows, else None.
    Lets tests check that the skills use only table forms, and lets a hook name the form a
    refused command should have used."""
    command = command.strip()
    for row in COMMANDS if role is None else templates_for(role):
        if template_pattern(row.template).match(command):
            return row
    return None


# --------------------------------------------------------------------------------------------
# Settings file merge


def write_settings(path: str | os.PathLike | None, rules: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Merge `rules` (`{"allow": [...], "ask": [...]}`) into a Claude Code settings file.

    `path` None means `.claude/settings.local.json` under the current directory; missing
    parent directories are created. Every other key and rule is kept, in order; a rule
    already present is not added again, nor is an allow rule the file already lists under
    `ask` or `deny`, nor an ask rule it lists under `deny` (the user's stricter choice
    stands). The file is replaced atomically (temp file in the same directory, then
    `os.replace`), keeping its mode; when nothing is added it is not touched at all.
    A symlinked path is written through to its target.

    Returns the rules actually added, `{"allow": [...], "ask": [...]}`.
    Raises CafleetError (file untouched) when the file is not a JSON object, its
    `permissions` / `permissions.<list>` has the wrong type, or it cannot be read/written.
    """
    import json  # here, not at the top: hooks import this module and never write settings
    from pathlib import Path

    target = Path(os.path.realpath(path if path is not None else DEFAULT_SETTINGS_PATH))
    data = _read_settings(target)
    perms = data.setdefault("permissions", {})
    if not isinstance(perms, dict):
        raise CafleetError(f"{target}: \"permissions\" is not a JSON object; not touching it", code="settings")
    lists: dict[str, list] = {}
    for key in ("allow", "ask", "deny"):
        value = perms.get(key, [])
        if not isinstance(value, list):
            raise CafleetError(f"{target}: \"permissions.{key}\" is not a list; not touching it", code="settings")
        lists[key] = value

    added: dict[str, list[str]] = {ALLOW: [], ASK: []}
    stricter = {ALLOW: (ASK, "deny"), ASK: ("deny",)}
    for kind in (ALLOW, ASK):
        for rule in rules.get(kind, ()):
            if rule in lists[kind] or any(rule in lists[k] for k in stricter[kind]):
                continue
            lists[kind].append(rule)
            added[kind].append(rule)
            perms[kind] = lists[kind]
    if added[ALLOW] or added[ASK]:
        _atomic_write(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return added


def _read_settings(target) -> dict:
    import json

    from cafleet.userfiles import MAX_SETTINGS_BYTES, read_text

    try:  # bounded, regular files only: `--write /dev/full` would otherwise read forever
        text = read_text(str(target), "--write", MAX_SETTINGS_BYTES)
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CafleetError(f"{target} is not valid JSON ({exc}); not touching it", code="settings") from exc
    if not isinstance(data, dict):
        raise CafleetError(f"{target} does not hold a JSON object; not touching it", code="settings")
    return data


def _atomic_write(target, text: str) -> None:
    import stat
    import tempfile

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    except OSError as exc:
        raise CafleetError(f"cannot write {target}: {exc}", code="settings") from exc


# --------------------------------------------------------------------------------------------
# Our model of Claude Code's Bash rule matching

_RULE_RE = re.compile(r"\ABash\((?P<body>.*)\)\Z", re.S)
_OPERATOR_CHARS = set(";&|<>()\n\r`")


def parse_rule(rule: str) -> tuple[str, bool] | None:
    """`Bash(x)` → `(x, False)`; `Bash(x:*)` or `Bash(x *)` → `(x, True)`; else None."""
    found = _RULE_RE.match(rule)
    if found is None:
        return None
    body = found.group("body")
    for suffix in (":*", " *"):
        if body.endswith(suffix):
            return body[: -len(suffix)].rstrip(), True
    return body, False


def shell_hazard(command: str) -> str | None:
    """The first thing in `command` that makes it more than one plain command, or None.

    Outside quotes: `&&`, `||`, `;`, `|`, `&`, `<`, `>`, `(`, `)`, a newline, a backtick,
    `$…` expansion, a `#` comment, a backslash-newline. Inside double quotes: a backtick or
    `$…` expansion (the shell still expands those). Single quotes are inert. A lone `$`
    followed by a space or the end is literal.
    """
    quote = None
    i, n = 0, len(command)
    word_start = True
    while i < n:
        ch = command[i]
        nxt = command[i + 1] if i + 1 < n else ""
        if quote == "'":
            if ch == "'":
                quote = None
            i += 1
            continue
        if ch == "\\":
            if nxt in ("\n", "\r"):
                return "line continuation"
            i += 2
            word_start = False
            continue
        if ch == "`":
            return "backtick"
        if ch == "$" and nxt and not nxt.isspace() and not (quote == '"' and nxt == '"'):
            return "$(" if nxt == "(" else "${" if nxt == "{" else "$VAR"
        if quote == '"':
            if ch == '"':
                quote = None
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
        elif ch in _OPERATOR_CHARS:
            two = command[i : i + 2]
            return two if two in ("&&", "||") else ("newline" if ch in "\n\r" else ch)
        elif ch == "#" and word_start:
            return "#"
        word_start = ch.isspace()
        i += 1
    if quote is not None:
        return "unterminated quote"
    return None


def matches(rule: str, command: str) -> bool:
    """Whether `rule` would approve `command`, by our model of Claude Code's matcher.

    Exact rule: the command (outer whitespace stripped) equals the body. Prefix rule: the
    command equals the prefix or continues it after whitespace (word boundary, so
    `… --member-id:*` never approves `… --member-idX`). A command with any shell hazard
    (see `shell_hazard`: chaining, pipes, redirection, substitution, variables) never
    matches. Non-Bash rules never match.

    The real client is the authority; the e2e tests check this model against it
    (Claude Code 2.1.x). Where they differ, fix this model.
    """
    parsed = parse_rule(rule)
    if parsed is None:
        return False
    body, is_prefix = parsed
    command = command.strip()
    if shell_hazard(command) is not None:
        return False
    if command == body:
        return True
    return is_prefix and command.startswith(body) and command[len(body)].isspace()


def matching_rule(rules: Mapping[str, Sequence[str]], command: str) -> tuple[str, str] | None:
    """`(kind, rule)` of the first rule approving `command`, checking ask before allow, or None."""
    for kind in (ASK, ALLOW):
        for rule in rules.get(kind, ()):
            if matches(rule, command):
                return kind, rule
    return None


def repeated_identity_flag(command: str) -> str | None:
    """The id flag (`--agent-id`, `--member-id`, `--task-id`, `--fleet-id`, `--to`) that a
    cafleet command gives more than once, else None — a prefix rule cannot stop an appended
    second `--agent-id` (click keeps the last), so the PreToolUse hook may deny it.
    `--task-id` may repeat on `message ack` (several tasks at once) and is only reported
    elsewhere."""
    words = command.split()
    if not words or words[0] != "cafleet":
        return None
    is_ack = "ack" in words and "message" in words
    for flag in ("--agent-id", "--member-id", "--fleet-id", "--to", "--task-id"):
        if flag == "--task-id" and is_ack:
            continue
        count = sum(1 for w in words if w == flag or w.startswith(flag + "="))
        if count > 1:
            return flag
    return None
