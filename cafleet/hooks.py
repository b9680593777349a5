"""Claude Code hook handlers for cafleet: PreToolUse(Bash), PostToolUse(Cron*), SessionStart, Stop.

Run by `hooks/hooks.json` as `python3 -I -S "${CLAUDE_PLUGIN_ROOT}/hooks/cafleet-hook" <EventName>`
(`${CLAUDE_PLUGIN_ROOT}` is the installed plugin's directory, set by Claude Code for plugin
hooks: https://code.claude.com/docs/en/plugins-reference, "Hooks" / "Environment variables").
It needs a bare interpreter and nothing installed: this module imports only the stdlib and
stdlib-only cafleet modules — `bashcheck` (what a command line does, on the lexer in
`shellwords` / `shellcommands`), `readonly` (a member's read-only commands, lazily) and
`broker` (lazily, after the cheap checks). `-I -S`
(isolated, no `site`) keeps the user's PYTHONPATH and site-packages out and skips every
`.pth` file: on a machine with an editable install that alone is ~40 ms per hook call, and
PreToolUse runs before every Bash command (bench/hook_latency.py). The hook works without
the flags too.

Contract (docs/ARCHITECTURE.md, CONTRACT.md "Hooks"):

- The hook input is one JSON object on stdin. Common fields (Claude Code hooks reference,
  https://code.claude.com/docs/en/hooks, "Hook input"): `session_id`, `transcript_path`,
  `cwd`, `hook_event_name`; per event: PreToolUse/PostToolUse `tool_name`, `tool_input`
  (PostToolUse also `tool_response`), SessionStart `source` (`startup`, `resume`, `clear`,
  `compact`), Stop `stop_hook_active`.
- Who is calling: the pane. `$TMUX` is `<socket path>,<server pid>,<session>` and
  `$TMUX_PANE` is `%N` (Claude Code runs hooks with the session's environment, so a claude
  started in a fleet pane has both); `(socket path, pane id)` → the placement row → the agent,
  skipping a placement whose recorded pane process is gone (a tmux server restart reuses `%N`).
- A session that is not a fleet agent (no `$TMUX`, no DB file, no placement for the pane) gets
  exit 0 and no output. So does every internal fault: a hook must never break a session.
  The DB is opened with `create=False`, so a machine that never ran cafleet stays untouched.
- Output (same reference, "JSON output" / "Decision control"), always exit 0:
  - PreToolUse deny: `{"hookSpecificOutput": {"hookEventName": "PreToolUse",
    "permissionDecision": "deny", "permissionDecisionReason": <reason>}}`. Claude Code
    2.1.330 and 2.1.332 give the reason to the model as an error `tool_result`
    (`PreToolUse:Bash hook error: <reason>`, REAL-CLIENT.md "Hooks").
  - SessionStart: `{"hookSpecificOutput": {"hookEventName": "SessionStart",
    "additionalContext": <text>}}`; the model sees `SessionStart hook additional context: <text>`.
  - Stop: `{"decision": "block", "reason": <text>}` keeps the agent going with <text> as its
    next instruction; when `stop_hook_active` is true (a Stop hook already continued this
    turn) we never block, so no loop is possible.
  - PostToolUse: no output; it only records state.
- CronCreate / CronDelete / CronList shapes (checked against Claude Code 2.1.330's and 2.1.332's
  `sdk-tools.d.ts` and REAL-CLIENT.md): CronCreate `tool_input` `{cron, prompt, recurring?,
  durable?}`, `tool_response` `{id, humanSchedule, recurring, durable?, nextFireAt?,
  maxAgeMs?}`; CronDelete `tool_input` `{id}`, `tool_response` `{id}`; CronList
  `tool_response` `{jobs: [{id, cron, humanSchedule, prompt, recurring?, durable?}]}`.
  We read them leniently (`id`, `jobId`, `job_id`; a JSON string response is parsed).

What each event does for a fleet agent:

- PreToolUse (matcher `Bash`): deny (1) raw tmux commands that act on panes/windows/sessions
  (read-only queries such as `tmux display-message -p` / `list-panes` pass), wherever they
  sit in the command line; (2) `cafleet` commands whose ids come from shell variables or
  substitutions, and ones that give an id flag twice; (3) for a claude agent: `member create`
  with no recorded /loop, and `fleet delete` of its own fleet while one of its loops is still
  recorded as running (the monitoring skill's lifecycle rule). Anything else: no output.
- PostToolUse (matcher `CronCreate|CronDelete|CronList`): record a recurring CronCreate job
  as a loop of the agent; end it on CronDelete; on CronList reconcile (jobs no longer listed
  end, listed recurring jobs not yet known are recorded) — the way out of a stale record.
- SessionStart (`startup|resume|clear|compact`): the agent's identity, ids, poll command,
  members (for a Director) and skills, as additional context. On `startup` the non-durable
  loops recorded by earlier sessions are ended (session-only crons die with their session).
- Stop: un-acked messages waiting → block once (per newest un-acked task) with the poll
  command.
"""

from __future__ import annotations

import os
import sys

HOOK_BUSY_TIMEOUT_MS = "2000"
"""SQLite busy timeout for hook processes unless `$CAFLEET_BUSY_TIMEOUT_MS` says otherwise:
short, because a hook holds up the session while it waits."""

SKILLS_DIRECTOR = ("cafleet:cafleet", "cafleet:cafleet-agent-team-monitoring", "cafleet:cafleet-agent-team-supervision")
SKILLS_MEMBER = ("cafleet:cafleet",)
MAX_MEMBERS_LISTED = 40
_SOURCE_WORDS = {"resume": "resumed", "compact": "compacted", "clear": "cleared (/clear)"}


# ================================================================ entry point


def main(argv=None) -> int:
    """Handle one hook event: `argv[0]` is the event name (else the input's `hook_event_name`).

    Always returns 0; writes at most one JSON object to stdout, and only for a fleet agent.
    Fast paths (no `json`, no DB): outside tmux every event ends right after reading stdin;
    a PreToolUse with nothing to deny (`nothing_to_deny`) ends there too, unless the session
    is a member (`$CAFLEET_AGENT_ID`), whose every Bash call `member_guard` checks.
    """
    try:
        args = sys.argv[1:] if argv is None else list(argv)
        raw = sys.stdin.buffer.read()  # always drain the pipe Claude Code writes to
        if pane_of(os.environ) is None:
            return 0
        event = args[0] if args else None
        if event == "PreToolUse" and not os.environ.get("CAFLEET_AGENT_ID") and nothing_to_deny(raw):
            return 0
        import json  # imports `re`: a few ms the common PreToolUse above never pays

        data = json.loads(raw.decode("utf-8", "replace"))
        if not isinstance(data, dict):
            return 0
        event = event or data.get("hook_event_name")
        handler = HANDLERS.get(event)
        if handler is None:
            return 0
        out = handler(data, os.environ)
        if out:
            # ASCII JSON (\u escapes) as bytes: no dependence on the locale's stdout encoding
            sys.stdout.buffer.write(json.dumps(out).encode("ascii"))
            sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - a hook must never break the session
        return 0
    return 0


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
        if command is None:
            return True
        if b"\\\\" in command or b"\\u" in command:
            return True
        plain = command.replace(b'\\"', b"").replace(b"'", b"")
        if b"tmux" in plain or b"cafleet" in plain:
            return True
        return any(c in plain for c in (b"*", b"?", b"[")) or (b"{" in plain and (b"," in plain or b".." in plain))
    if "\\" in text:
        return True
    plain = text.replace("'", "").replace('"', "")
    if "tmux" in plain or "cafleet" in plain:
        return True
    return any(c in plain for c in "*?[") or ("{" in plain and ("," in plain or ".." in plain))


def nothing_to_deny(raw: bytes) -> bool:
    """True when the raw PreToolUse input's command surely holds nothing the hook denies for a
    Director: no tmux or cafleet at all (`mentions_tmux_or_cafleet`), or, once lexed, no
    finding (`bashcheck.analyze`). Decodes the JSON string itself, so the common case never
    imports `json` (which imports `re`). False whenever in doubt."""
    command = _json_command(raw)
    if command is not None and not mentions_tmux_or_cafleet(command):
        return True
    text = _json_unescape(command) if command is not None else None
    return text is not None and not analyze(text)


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
        k = raw.find(b'"command": ')
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


# ================================================================ who is calling


def pane_of(environ) -> tuple[str, str] | None:
    """`(tmux socket path, pane id)` from `$TMUX` / `$TMUX_PANE`, or None outside tmux."""
    socket_path = (environ.get("TMUX") or "").split(",", 1)[0].strip()
    pane_id = (environ.get("TMUX_PANE") or "").strip()
    if not socket_path or not pane_id:
        return None
    return socket_path, pane_id


def open_agent(environ):
    """`(broker, agent row)` for the fleet agent placed in the calling pane, or `(None, None)`.

    Never creates the DB file. The caller closes the broker.
    """
    where = pane_of(environ)
    if where is None:
        return None, None
    from cafleet import broker as _broker
    from cafleet.store import db_path

    path = db_path(environ)
    if not os.path.isfile(path):
        return None, None
    os.environ.setdefault("CAFLEET_BUSY_TIMEOUT_MS", HOOK_BUSY_TIMEOUT_MS)
    br = _broker.Broker.open(path, create=False)
    try:
        socket_path, pane_id = where
        agent = br.find_agent_by_pane(socket_path, pane_id, placement_is_live)
        if agent is None:
            real = os.path.realpath(socket_path)
            if real != socket_path:
                agent = br.find_agent_by_pane(real, pane_id, placement_is_live)
    except BaseException:
        br.close()
        raise
    if agent is None:
        br.close()
        return None, None
    return br, agent


def placement_is_live(placement: dict) -> bool:
    """False when the placement recorded its pane's process id and no such process exists:
    the tmux server was restarted and `%N` now names a stranger's pane. The hook cannot afford
    a tmux call (members.pane_state compares with `#{pane_pid}`), so it asks the kernel with
    signal 0 (kill(2): ESRCH = no such process, EPERM = it exists). A placement without a
    recorded pid is taken as live."""
    pid = placement.get("pane_pid")
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _coding_agent(agent: dict) -> str | None:
    return agent.get("coding_agent") or (agent.get("placement") or {}).get("coding_agent")


def poll_command(fleet_id: str, agent_id: str) -> str:
    """The literal poll command (same text as `cafleet.members.poll_command`, which imports
    more than a hook should)."""
    return f"cafleet --fleet-id {fleet_id} message poll --agent-id {agent_id}"


# ================================================================ what the command does

from cafleet.bashcheck import FORMAT_SHELL, analyze, split_commands  # noqa: E402  (stdlib-only, no re)


# ================================================================ reasons


_TMUX_KEYS = {"send-keys", "send-prefix", "paste-buffer", "set-buffer", "load-buffer", "-c", "run-shell",
              "if-shell", "respawn-pane", "respawn-window"}
_TMUX_READ = {"capture-pane", "pipe-pane", "save-buffer", "copy-mode"}
_TMUX_KILL = {"kill-pane", "kill-window", "kill-session", "kill-server", "respawn-pane", "respawn-window",
              "unlink-window"}
_TMUX_SPAWN = {"split-window", "new-window", "new-session", "break-pane", "join-pane", "move-pane"}


def tmux_reason(subcommands: list[str], agent: dict) -> str:
    """Deny reason for raw tmux: the cafleet primitive(s) that do the job, with literal ids."""
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
        if not reasons and _coding_agent(agent) == "claude":
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


def _as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        import json

        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        import re

        m = re.search(r"""\b(?:id|job ?id)\b["']?\s*[:=]?\s*["']?([A-Za-z0-9_-]{4,})""", value, re.I)
        if m:
            return {"id": m.group(1)}
    return {}


def _job_id(*dicts) -> str | None:
    for d in dicts:
        for key in ("id", "jobId", "job_id"):
            v = d.get(key)
            if isinstance(v, (str, int)) and str(v):
                return str(v)
    return None


def post_tool_use(data: dict, environ) -> None:
    """PostToolUse(CronCreate|CronDelete|CronList): keep the broker's loop records true.

    Reads `tool_name`, `tool_input`, `tool_response` and `session_id`
    (https://code.claude.com/docs/en/hooks, "PostToolUse input"; the Cron* shapes are in the
    module docstring). PostToolUse runs only after a tool succeeded, so a failed CronDelete
    changes nothing. No output.
    """
    tool = data.get("tool_name")
    if tool not in ("CronCreate", "CronDelete", "CronList"):
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    agent_id = agent["agent_id"]
    tool_input = _as_dict(data.get("tool_input"))
    response = _as_dict(data.get("tool_response"))
    session_id = data.get("session_id") if isinstance(data.get("session_id"), str) else None
    try:
        if tool == "CronCreate":
            loop_id = _job_id(response)
            recurring = response.get("recurring", tool_input.get("recurring", True))
            if loop_id and recurring is not False:
                durable = response.get("durable", tool_input.get("durable", False))
                br.add_loop(agent_id, loop_id, session_id=session_id, cron=_str(tool_input.get("cron")),
                            prompt=_str(tool_input.get("prompt")), durable=bool(durable))
        elif tool == "CronDelete":
            loop_id = _job_id(tool_input, response)
            if loop_id:
                br.end_loop(agent_id, loop_id)
        else:
            jobs = response.get("jobs")
            if isinstance(jobs, list):
                listed = {}
                for job in jobs:
                    if isinstance(job, dict) and _job_id(job):
                        listed[_job_id(job)] = job
                known = {lp["loop_id"] for lp in br.active_loops(agent_id)}
                for loop_id in known - set(listed):
                    br.end_loop(agent_id, loop_id)
                for loop_id, job in listed.items():
                    if loop_id not in known and job.get("recurring", True) is not False:
                        br.add_loop(agent_id, loop_id, session_id=session_id, cron=_str(job.get("cron")),
                                    prompt=_str(job.get("prompt")), durable=bool(job.get("durable", False)))
    finally:
        br.close()
    return None


def _str(value) -> str | None:
    return value if isinstance(value, str) else None


def identity_context(br, agent: dict, source: str | None) -> str:
    """The SessionStart text: who the agent is, its ids, commands, team and skills."""
    fleet = agent.get("fleet") or {}
    fleet_id, agent_id = agent["fleet_id"], agent["agent_id"]
    base = f"cafleet --fleet-id {fleet_id}"
    role = agent.get("role")
    backend = _coding_agent(agent) or "unknown"
    unread = br.unread_count(agent_id)
    is_root = fleet.get("director_agent_id") == agent_id
    members = br.list_members(fleet_id, None if is_root else agent_id)
    is_director = role == "director" or bool(members)
    lines = [f"cafleet identity (restored by the cafleet plugin at session {source or 'start'}):"]
    fleet_name = fleet.get("name")
    if is_director:
        kind = "the root Director" if is_root else "a Director"
        lines.append(f'You are "{agent["name"]}", {kind} of the cafleet fleet "{fleet_name}" (coding agent: {backend}).')
    else:
        lines.append(f'You are "{agent["name"]}", a {role or "member"} of the cafleet fleet "{fleet_name}" '
                     f"(coding agent: {backend}).")
        if agent.get("description"):
            lines.append(f"Your role: {agent['description']}")
    lines.append(f"- fleet id: {fleet_id}")
    lines.append(f"- your agent id: {agent_id}")
    director_id = agent.get("parent_agent_id") or (None if is_root else fleet.get("director_agent_id"))
    if director_id and not is_root:
        director_name = None
        try:
            director_name = br.get_agent(fleet_id, director_id)["name"]
        except Exception:  # noqa: BLE001 - a gone Director still has an id worth showing
            pass
        lines.append(f"- your Director's agent id: {director_id}" + (f' ("{director_name}")' if director_name else ""))
    lines.append(f"- read your inbox: `{poll_command(fleet_id, agent_id)}` ({unread} un-acked message(s) waiting)")
    lines.append(f"- ack a task once handled: `{base} message ack --agent-id {agent_id} --task-id <task-id>`")
    if director_id and not is_root:
        lines.append(f'- report to your Director: `{base} message send --agent-id {agent_id} --to {director_id} --text "<text>"`')
    if is_director:
        lines.append(f"Your members ({len(members)}):" if members else "You have no members yet.")
        for m in members[:MAX_MEMBERS_LISTED]:
            lines.append(f'- "{m["name"]}": agent id {m["agent_id"]} (coding agent {m.get("coding_agent") or "?"}, '
                         f"{m.get('unread', 0)} un-acked)")
        if len(members) > MAX_MEMBERS_LISTED:
            lines.append(f"- … {len(members) - MAX_MEMBERS_LISTED} more: `{base} member list`")
        if backend == "claude":
            loops = br.active_loops(agent_id)
            if loops:
                shown = ", ".join(f"{lp['loop_id']}" + (f" (`{lp['cron']}`)" if lp.get("cron") else "") for lp in loops)
                lines.append(f"Monitoring /loop recorded as running: {shown}."
                             + (f" This session was {_SOURCE_WORDS[source]}: check with CronList that it still runs."
                                if source in _SOURCE_WORDS else ""))
            else:
                lines.append("No monitoring /loop is recorded: start it (CronCreate) before the next `member create`, "
                             "and keep it running until teardown.")
    lines.append("Write every id literally as above, never as shell variables: permission rules match the literal "
                 "command. Never run tmux yourself; use the cafleet commands.")
    if not is_director and role == "member":
        lines.append("If you need a shell command you may not run, ask your Director to run it for you "
                     "(it uses `cafleet member exec`).")
        for w in br.worktrees(fleet_id, agent_id):  # `member create --worktree` (cafleet/worktrees.py)
            if w["removed_at"] is None:
                lines.append(f"You work in your own git worktree {w['path']} on branch {w['branch']} (made from "
                             f"{w['base']}): stay in it, commit your work there (ask your Director if git commit is "
                             "refused), never switch branches, merge or push.")
    skills = SKILLS_DIRECTOR if is_director else SKILLS_MEMBER
    lines.append("Load the cafleet skill(s): " + ", ".join(skills) + ".")
    return "\n".join(lines)


def session_start(data: dict, environ) -> dict | None:
    """SessionStart: restore the agent's identity; on `startup`, end the session-only loops
    of earlier sessions (they died with their claude process). An input without `source` is
    not a SessionStart input: silent.

    Reads `source` (`startup`, `resume`, `clear`, `compact`) and `session_id`; answers with
    `hookSpecificOutput` `{hookEventName: "SessionStart", additionalContext}`
    (https://code.claude.com/docs/en/hooks, "SessionStart" → "SessionStart decision control").
    """
    source = data.get("source")
    if not isinstance(source, str):
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    try:
        session_id = data.get("session_id") if isinstance(data.get("session_id"), str) else None
        if source == "startup" and session_id:
            stale = {lp["session_id"] for lp in br.active_loops(agent["agent_id"])
                     if lp.get("session_id") and lp["session_id"] != session_id}
            for old in stale:
                br.end_loop(agent["agent_id"], session_id=old)
        text = identity_context(br, agent, source)
    finally:
        br.close()
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}


def stop(data: dict, environ) -> dict | None:
    """Stop: un-acked messages → block once per newest un-acked task, naming the poll command.

    Reads `stop_hook_active` (true when a Stop hook already made Claude continue this turn:
    then never block); answers with top-level `{decision: "block", reason}`, the reason being
    Claude's next instruction (https://code.claude.com/docs/en/hooks, "Stop" → "Stop decision
    control"). "Once" is `note_once(agent, "stop", <newest un-acked task id>)`: the same
    backlog does not block twice, a new message can block again.
    """
    if data.get("stop_hook_active"):
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    try:
        agent_id, fleet_id = agent["agent_id"], agent["fleet_id"]
        unread = br.unread_count(agent_id)
        if not unread:
            return None
        row = br.conn.execute(
            "SELECT task_id FROM tasks WHERE recipient_agent_id = ? AND state = 'input_required'"
            " ORDER BY seq DESC LIMIT 1", (agent_id,)).fetchone()
        if row is None or not br.note_once(agent_id, "stop", row[0]):
            return None
    finally:
        br.close()
    return {"decision": "block", "reason": (
        f"You have {unread} un-acked cafleet message(s): run `{poll_command(fleet_id, agent_id)}` before you stop, "
        f"handle each task, ack it with `cafleet --fleet-id {fleet_id} message ack --agent-id {agent_id} "
        "--task-id <task-id>`, and reply to the sender if it asks for something.")}


HANDLERS = {
    "PreToolUse": pre_tool_use,
    "PostToolUse": post_tool_use,
    "SessionStart": session_start,
    "Stop": stop,
}
