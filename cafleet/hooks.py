"""The entry of cafleet's Claude Code hooks -- PreToolUse(Bash), PostToolUse(Cron*), SessionStart,
Stop: which fleet agent is calling, and the handler of its event.

Run by `hooks/hooks.json` as `python3 -I -S "${CLAUDE_PLUGIN_ROOT}/hooks/cafleet-hook" <EventName>`
(`${CLAUDE_PLUGIN_ROOT}` is the installed plugin's directory, set by Claude Code for plugin
hooks: https://code.claude.com/docs/en/plugins-reference, "Hooks" / "Environment variables").
It needs a bare interpreter and nothing installed: this module imports only the stdlib, and
the handler modules it loads for an event from a tmux pane (`pretooluse`, `sessionhooks`)
only stdlib-only cafleet modules — `bashcheck` (what a command line does, on the lexer in
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

What each event does for a fleet agent: PreToolUse (matcher `Bash`) is the guard rail of
`cafleet.pretooluse` (raw tmux, ids in variables, a claude Director's lifecycle mistakes, a
claude member's commands routed to its Director); PostToolUse (matcher
`CronCreate|CronDelete|CronList`), SessionStart and Stop keep the session in step with the
broker in `cafleet.sessionhooks` (its loops, its identity, its un-acked messages).
"""

from __future__ import annotations

import os
import sys

HOOK_BUSY_TIMEOUT_MS = "2000"
"""SQLite busy timeout for hook processes unless `$CAFLEET_BUSY_TIMEOUT_MS` says otherwise:
short, because a hook holds up the session while it waits."""


# ================================================================ entry point


def main(argv=None) -> int:
    """Handle one hook event: `argv[0]` is the event name (else the input's `hook_event_name`).

    Always returns 0; writes at most one JSON object to stdout, and only for a fleet agent.
    Fast paths (no `json`, no DB): outside tmux every event ends right after reading stdin;
    a PreToolUse with nothing to deny (`pretooluse.nothing_to_deny`) ends there too, unless
    the session is a member (`$CAFLEET_AGENT_ID`), whose every Bash call
    `pretooluse.member_guard` checks.
    """
    try:
        args = sys.argv[1:] if argv is None else list(argv)
        raw = sys.stdin.buffer.read()  # always drain the pipe Claude Code writes to
        if pane_of(os.environ) is None:
            return 0
        event = args[0] if args else None
        if event == "PreToolUse" and not os.environ.get("CAFLEET_AGENT_ID"):
            from cafleet.pretooluse import nothing_to_deny

            if nothing_to_deny(raw):
                return 0
        import json  # imports `re`: a few ms the common PreToolUse above never pays

        data = json.loads(raw.decode("utf-8", "replace"))
        if not isinstance(data, dict):
            return 0
        event = event or data.get("hook_event_name")
        handle = handler(event)
        if handle is None:
            return 0
        out = handle(data, os.environ)
        if out:
            # ASCII JSON (\u escapes) as bytes: no dependence on the locale's stdout encoding
            sys.stdout.buffer.write(json.dumps(out).encode("ascii"))
            sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - a hook must never break the session
        return 0
    return 0


HANDLERS = {
    "PreToolUse": "cafleet.pretooluse:pre_tool_use",
    "PostToolUse": "cafleet.sessionhooks:post_tool_use",
    "SessionStart": "cafleet.sessionhooks:session_start",
    "Stop": "cafleet.sessionhooks:stop",
}
"""Each hook event's handler, as `module:function`: `handler(data, environ) -> dict | None`."""


def handler(event: str | None):
    """The handler of `event` (`HANDLERS`), or None for another event. Its module is imported
    only now, so a call that ends earlier (outside tmux, nothing to deny) never loads it."""
    spec = HANDLERS.get(event)
    if spec is None:
        return None
    module, name = spec.split(":")
    return getattr(__import__(module, fromlist=[name]), name)


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
        agent = placed_in(br, where)
        if agent is None:
            agent = _await_placement(br, environ, where)
    except BaseException:
        br.close()
        raise
    if agent is None:
        br.close()
        return None, None
    return br, agent


def placed_in(br, where: tuple[str, str]) -> dict | None:
    """The live agent placed in pane `where` = (socket path, pane id): the socket path as given,
    then resolved; a placement whose recorded pane process is gone is skipped
    (`placement_is_live`). The agent every hook acts on; None when there is none."""
    socket_path, pane_id = where
    agent = br.find_agent_by_pane(socket_path, pane_id, placement_is_live)
    if agent is None:
        real = os.path.realpath(socket_path)
        if real != socket_path:
            agent = br.find_agent_by_pane(real, pane_id, placement_is_live)
    return agent


PLACEMENT_WAIT_S = 3.0
"""How long a new member's hook waits for `member create` to record its pane, in seconds.
tmux starts the agent as it makes the pane, and `member create` learns the pane id (and
writes it into the member's placement) only when `split-window` returns: a SessionStart hook
that fires at once (a fast Claude Code start, or any start on a loaded machine; seen in CI)
can run in between and find no agent in its pane."""


def _await_placement(br, environ, where: tuple[str, str]) -> dict | None:
    """For a pane no placement names yet: when `$CAFLEET_FLEET_ID` / `$CAFLEET_AGENT_ID` (set in
    a member's pane by `member create`, `backends.identity_env`) name a member whose placement
    is still pending (registered, no pane id yet), wait up to `PLACEMENT_WAIT_S` for the pane id
    and look the pane up again; the pane lookup decides, so a placement that names another
    pane still gives None. Any other case returns None at once, with no wait: a session that
    is not a member being created pays one indexed read at most."""
    fleet_id, agent_id = environ.get("CAFLEET_FLEET_ID"), environ.get("CAFLEET_AGENT_ID")
    if not fleet_id or not agent_id:
        return None
    import time

    from cafleet.errors import CafleetError

    deadline = time.monotonic() + PLACEMENT_WAIT_S
    while True:
        try:
            placement = br.get_agent(fleet_id, agent_id).get("placement")
        except CafleetError:
            return None
        if not placement:
            return None
        if placement.get("pane_id"):
            return placed_in(br, where)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


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


def coding_agent(agent: dict) -> str | None:
    """The agent's coding agent (`claude`, `codex`, `opencode`), from its row or its placement."""
    return agent.get("coding_agent") or (agent.get("placement") or {}).get("coding_agent")


def poll_command(fleet_id: str, agent_id: str) -> str:
    """The literal poll command (same text as `cafleet.members.poll_command`, which imports
    more than a hook should)."""
    return f"cafleet --fleet-id {fleet_id} message poll --agent-id {agent_id}"

