"""The PreToolUse(Bash) hook: a guard rail that turns a fleet agent's common wrong moves into
an immediate, instructive deny (docs/ARCHITECTURE.md "What the hook is").

- `nothing_to_deny` / `mentions_tmux_or_cafleet`: the cheap pre-check on the raw hook input,
  before `json` is imported or the command is lexed -- the path of nearly every Bash call.
- `pre_tool_use`: deny (1) raw tmux commands that act on panes/windows/sessions (read-only
  queries such as `tmux display-message -p` / `list-panes` pass), wherever they sit in the
  command line; (2) `cafleet` commands whose ids come from shell variables or substitutions,
  ones that give an id flag twice, and a `--` before the subcommand; (3) for a claude agent:
  `member create` with no recorded /loop, and `fleet delete` of its own fleet while one of
  its loops is still recorded as running (the monitoring skill's lifecycle rule). Each deny
  reason names the literal cafleet command to use instead.
- `member_guard`: a claude member runs only its own cafleet commands and read-only commands
  (`cafleet.readonly`); anything else is denied with the literal `message send` that asks
  its Director to run it.

Anything else: no output. A deny is the PreToolUse output of `cafleet.hooks`' contract.
Standard library and stdlib-only cafleet modules only: what a command line does comes from
`cafleet.bashcheck` (no `re`), imported only for a command the cheap pre-check cannot clear;
`readonly` and `permissions` are imported only for a member.
"""

from __future__ import annotations

from cafleet.hooks import coding_agent, open_agent, pane_of, poll_command


# ================================================================ the cheap pre-check


def mentions_tmux_or_cafleet(text) -> bool:
    """Cheap pre-check: could this command involve tmux or cafleet at all? `text` is the raw
    hook input (bytes: only its `"command"` string is looked at, still JSON-escaped) or the
    command itself (str).

    True when `tmux` or `cafleet` appears once quotes are dropped, and whenever the lexer is
    needed to know the words: a backslash (escapes, `$'\\x74mux'`, line continuations
    `tm\\⏎ux`, a JSON `\\u` escape), an unquoted-looking glob (`tmu?`) or a brace list
    (`{t,}mux`). False means no command word can be tmux or cafleet, so the hook ends without
    parsing JSON or lexing.
    """
    if isinstance(text, bytes):
        command = _json_command(text)
        return command is None or _escaped_mentions(command)
    if "\\" in text:
        return True
    plain = text.replace("'", "").replace('"', "")
    if "tmux" in plain or "cafleet" in plain:
        return True
    return any(c in plain for c in "*?[") or ("{" in plain and ("," in plain or ".." in plain))


def _escaped_mentions(command: bytes) -> bool:
    """`mentions_tmux_or_cafleet` for a command still JSON-escaped (`_json_command`'s value)."""
    if b"\\\\" in command or b"\\u" in command:
        return True
    plain = command.replace(b'\\"', b"").replace(b"'", b"")
    if b"tmux" in plain or b"cafleet" in plain:
        return True
    return any(c in plain for c in (b"*", b"?", b"[")) or (b"{" in plain and (b"," in plain or b".." in plain))


def nothing_to_deny(raw: bytes) -> bool:
    """True when the raw PreToolUse input's command surely holds nothing the hook denies for a
    Director: no tmux or cafleet at all (`mentions_tmux_or_cafleet`), or, once lexed, no
    finding (`bashcheck.analyze`). Decodes the JSON string itself, so the common case never
    imports `json` (which imports `re`) nor the lexer. False whenever in doubt."""
    command = _json_command(raw)
    if command is not None and not _escaped_mentions(command):
        return True
    text = _json_unescape(command) if command is not None else None
    if text is None:
        return False
    from cafleet.bashcheck import analyze  # the lexer, only for a command that may need it

    return not analyze(text)


_JSON_ESCAPES = {"\"": "\"", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_unescape(value: bytes) -> str | None:
    """The text of a JSON string body (RFC 8259 section 7: the two-character escapes and
    `\\uXXXX`, surrogate pairs joined), or None when it is malformed."""
    try:
        s = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\\" not in s:
        return s
    out, i, n = [], 0, len(s)
    while i < n:
        k = s.find("\\", i)
        if k < 0:
            out.append(s[i:])
            break
        out.append(s[i:k])
        c = s[k + 1 : k + 2]
        if c in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[c])
            i = k + 2
            continue
        if c != "u" or len(s) < k + 6:
            return None
        try:
            code = int(s[k + 2 : k + 6], 16)
        except ValueError:
            return None
        i = k + 6
        if 0xD800 <= code < 0xDC00 and s[i : i + 2] == "\\u":
            try:
                low = int(s[i + 2 : i + 6], 16)
            except ValueError:
                return None
            if 0xDC00 <= low < 0xE000:
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                i += 6
        out.append(chr(code))
    return "".join(out)


def _json_command(raw: bytes) -> bytes | None:
    """The JSON-escaped value of the first `"command"` string in `raw`, or None when there is
    none or it is not a plain string (then the caller parses the JSON properly)."""
    k = raw.find(b'"command":')
    if k < 0:
        return None
    k = raw.find(b'"', k + 10)
    if k < 0:
        return None
    start = end = k + 1
    while True:
        end = raw.find(b'"', end)
        if end < 0:
            return None
        slashes = 0
        while raw[end - 1 - slashes] == 0x5C:
            slashes += 1
        if slashes % 2 == 0:
            return raw[start:end]
        end += 1


# ================================================================ reasons


_TMUX_KEYS = {"send-keys", "send-prefix", "paste-buffer", "set-buffer", "load-buffer", "-c", "run-shell",
              "if-shell", "respawn-pane", "respawn-window"}
_TMUX_READ = {"capture-pane", "pipe-pane", "save-buffer", "copy-mode"}
_TMUX_KILL = {"kill-pane", "kill-window", "kill-session", "kill-server", "respawn-pane", "respawn-window",
              "unlink-window"}
_TMUX_SPAWN = {"split-window", "new-window", "new-session", "break-pane", "join-pane", "move-pane"}


def tmux_reason(subcommands: list[str], agent: dict) -> str:
    """Deny reason for raw tmux: the cafleet primitive(s) that do the job, with literal ids."""
    from cafleet.bashcheck import FORMAT_SHELL

    fleet_id, agent_id = agent["fleet_id"], agent["agent_id"]
    base = f"cafleet --fleet-id {fleet_id}"
    m = "<member-agent-id>"
    shown = ", ".join(f"`{s}`" for s in subcommands)
    head = (f"cafleet: raw tmux ({shown}) is not allowed for a fleet agent: panes are driven only through "
            "cafleet primitives, which keep the broker's records, the layout and the permission rules right.")
    if agent.get("role") == "member":
        director = agent.get("parent_agent_id") or (agent.get("fleet") or {}).get("director_agent_id") or "<director-agent-id>"
        return (head + " You are a member: never touch panes yourself; ask your Director instead: "
                f'`{base} message send --agent-id {agent_id} --to {director} --text "<what you need>"`.')
    subs = set(subcommands)
    if any(sub.endswith(FORMAT_SHELL) for sub in subs):
        head += (f" A tmux format with `{FORMAT_SHELL}` (or an `E:`/`T:` modifier, or a variable) runs a shell "
                 "command even in a read-only query such as `display-message -p` or `list-panes -F`; write the "
                 "format literally, e.g. `tmux display-message -p '#{pane_id}'`.")
    lines = [head, "Use instead:"]
    if subs & _TMUX_READ:
        lines.append(f"- read a member's screen: `{base} member capture --member-id {m} --changed`")
    if subs & _TMUX_KEYS:
        lines.append(f'- tell a member something: `{base} message send --agent-id {agent_id} --to {m} --text "<text>"`')
        lines.append(f"- make a member read its inbox now: `{base} member ping --member-id {m}`")
        lines.append(f"- answer a member's 4-option prompt (after asking the user): `{base} member send-input "
                     f'--member-id {m} --choice <1-3>` (or `--freetext "<text>"`)')
        lines.append(f'- run a shell command in a member\'s pane: `{base} member exec --member-id {m} "<cmd>"`')
    if subs & _TMUX_KILL:
        lines.append(f"- stop a member: `{base} member delete --member-id {m}`; if it is stuck: "
                     f"`{base} member delete --member-id {m} --force` (never kill-pane)")
    if subs & _TMUX_SPAWN:
        lines.append(f'- start a member: `{base} member create --name <name> --description "<role>" -- "<prompt>"` '
                     "(it splits the pane and rebalances the layout itself)")
    if len(lines) == 2:  # layout, selection, options…: nothing for an agent to do by hand
        lines.append(f"- see members and their panes: `{base} member list`; read one: "
                     f"`{base} member capture --member-id {m}` (cafleet manages layout and focus itself)")
    return "\n".join(lines)


def variable_reason(found: list[tuple[str, str]], agent: dict) -> str:
    shown = ", ".join(f"{flag} {raw}" if flag != "FLEET_ID" else f"fleet id {raw}" for flag, raw in found[:4])
    return (f"cafleet: write ids as literal UUIDs, not shell variables or substitutions ({shown}). "
            "Permission rules match the literal command string, so a command with `$VAR`, `${VAR}`, "
            "`$(…)` or backticks in it never matches an allow rule, and it hides which agent it acts as. "
            f"Your ids: fleet {agent['fleet_id']}, agent {agent['agent_id']}; e.g. "
            f"`{poll_command(agent['fleet_id'], agent['agent_id'])}`. Paste the other ids the same way "
            "(from `member list` / `message poll` output).")


def repeated_reason(flags: list[str], agent: dict) -> str:
    return (f"cafleet: `{flags[0]}` appears more than once in this command; give each id flag once "
            f"(the CLI would silently use the last one). Your agent id is {agent['agent_id']}.")


def dashdash_reason(agent: dict) -> str:
    return ("cafleet: a `--` before the subcommand's own arguments is refused (the CLI refuses it too: "
            "click would drop it and keep reading flags, so the command would not mean what it looks like). "
            "Write the command as the skills do, e.g. "
            f"`{poll_command(agent['fleet_id'], agent['agent_id'])}`; a `--` belongs only after the "
            "subcommand's flags, before a `member create` prompt.")


def create_reason(agent: dict) -> str:
    return ("cafleet: no monitoring /loop is running for you (Director "
            f"{agent['agent_id']}), and the cafleet-agent-team-monitoring skill requires it BEFORE the "
            "first `member create`: start the /loop now (CronCreate, every minute, with the skill's "
            "/loop Prompt Template and your literal ids: fleet "
            f"{agent['fleet_id']}, Director {agent['agent_id']}), then run this `member create` again. "
            "If a loop is already running, call CronList once so cafleet sees it.")


def delete_reason(agent: dict, loops: list[dict]) -> str:
    shown = "; ".join(
        f"id {lp['loop_id']}" + (f" (cron `{lp['cron']}`)" if lp.get("cron") else "") for lp in loops[:5]
    )
    return ("cafleet: your monitoring loop is still running (" + shown + "). Teardown order "
            "(Shutdown Protocol): stop every /loop first with CronDelete, then `member delete` each "
            "member, check `member list` is empty, then `cafleet fleet delete "
            f"{agent['fleet_id']}`. If CronList no longer shows the loop, call CronList once so "
            "cafleet forgets it.")


# ================================================================ handlers


def _deny(reason: str) -> dict:
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                   "permissionDecisionReason": reason}}


def member_guard(command: str, environ) -> dict | None:
    """PreToolUse(Bash) for a claude *member* (a session with `$CAFLEET_AGENT_ID`, placed as
    a member): deny any command that is not one of its own cafleet commands or plainly
    read-only, and tell it to ask its Director, who runs it in the member's pane with
    `member exec` (the routing of the cafleet skill, "Routing Bash via the Director"). So a
    member never stalls on a permission prompt in its own pane. Silent for everyone else.
    """
    if not environ.get("CAFLEET_AGENT_ID") or pane_of(environ) is None:
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    br.close()
    if agent["role"] != "member" or agent["agent_id"] != environ.get("CAFLEET_AGENT_ID"):
        return None
    from cafleet import permissions

    fleet_id, me = agent["fleet_id"], agent["agent_id"]
    director = agent.get("parent_agent_id") or agent["fleet"]["director_agent_id"]
    own = permissions.member_rules(fleet_id, me, director)["allow"]
    if any(permissions.matches(rule, command.strip()) for rule in own):
        return None  # one of its own cafleet commands, exactly as its rules allow
    from cafleet.bashcheck import split_commands
    from cafleet.readonly import is_read_only

    simple = split_commands(command)
    if ">" not in command and simple and all(is_read_only(words) for words in simple):
        return None
    quoted = command.replace("'", "'\\''")
    return _deny(
        "cafleet: as a fleet member you run only your own cafleet commands and read-only commands "
        "yourself; this command needs your Director. Ask for it, then wait for your next turn: "
        f"`cafleet --fleet-id {fleet_id} message send --agent-id {me} --to {director} --text "
        f"'please run: {quoted}'`. The Director runs it in your pane (`member exec`) after any approval it "
        "needs, and pings you; the output arrives as your next input."
    )


def pre_tool_use(data: dict, environ) -> dict | None:
    """PreToolUse(Bash): deny raw tmux, variable ids, repeated id flags, and the lifecycle
    mistakes of a claude Director. Silent otherwise.

    Reads `tool_name` and `tool_input.command`; answers with `hookSpecificOutput`
    `{hookEventName: "PreToolUse", permissionDecision: "deny", permissionDecisionReason}`
    (https://code.claude.com/docs/en/hooks, "PreToolUse" → "PreToolUse decision control";
    a deny reason is shown to Claude, and hooks run before the permission rules are checked,
    so allowed and read-only commands are seen too — REAL-CLIENT.md "Hooks").
    """
    if data.get("tool_name", "Bash") != "Bash":
        return None
    tool_input = data.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if not isinstance(command, str):
        return None
    specific = _specific_denial(command, environ)
    if specific is not None:
        return specific
    return member_guard(command, environ)  # members only ($CAFLEET_AGENT_ID): one DB read


def _specific_denial(command: str, environ) -> dict | None:
    """Raw tmux, variable ids, repeated id flags, and a claude Director's lifecycle mistakes."""
    if not mentions_tmux_or_cafleet(command):
        return None  # the common case: nothing to look at, no DB touched
    if pane_of(environ) is None:
        return None
    from cafleet.bashcheck import analyze

    found = analyze(command)
    if not found:
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    try:
        reasons = []
        if found.tmux:
            reasons.append(tmux_reason(found.tmux, agent))
        if found.variable_ids:
            reasons.append(variable_reason(found.variable_ids, agent))
        if found.repeated:
            reasons.append(repeated_reason(found.repeated, agent))
        if found.dashdash:
            reasons.append(dashdash_reason(agent))
        if not reasons and coding_agent(agent) == "claude":
            own = agent["fleet_id"]
            if any(t in (None, own) for t in found.member_create) and not br.active_loops(agent["agent_id"]):
                reasons.append(create_reason(agent))
            if any(t in (None, own) for t in found.fleet_delete):
                loops = br.active_loops(agent["agent_id"])
                if loops:
                    reasons.append(delete_reason(agent, loops))
    finally:
        br.close()
    return _deny("\n\n".join(reasons)) if reasons else None
