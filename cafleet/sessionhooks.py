"""The hook events that keep a fleet agent's session in step with the broker: PostToolUse
(Cron*), SessionStart and Stop.

- PostToolUse (matcher `CronCreate|CronDelete|CronList`): record a recurring CronCreate job
  as a loop of the agent; end it on CronDelete; on CronList reconcile (jobs no longer listed
  end, listed recurring jobs not yet known are recorded) -- the way out of a stale record.
- SessionStart (`startup|resume|clear|compact`): the agent's identity, ids, poll command,
  members (for a Director) and skills, as additional context. On `startup` the non-durable
  loops recorded by earlier sessions are ended (session-only crons die with their session).
- Stop: un-acked messages waiting -> block once (per newest un-acked task) with the poll
  command.

The output shapes are in `cafleet.hooks`' contract.

CronCreate / CronDelete / CronList shapes (checked against Claude Code 2.1.330's and 2.1.332's
`sdk-tools.d.ts` and REAL-CLIENT.md): CronCreate `tool_input` `{cron, prompt, recurring?,
durable?}`, `tool_response` `{id, humanSchedule, recurring, durable?, nextFireAt?,
maxAgeMs?}`; CronDelete `tool_input` `{id}`, `tool_response` `{id}`; CronList
`tool_response` `{jobs: [{id, cron, humanSchedule, prompt, recurring?, durable?}]}`.
We read them leniently (`id`, `jobId`, `job_id`; a JSON string response is parsed).

Standard library only (`json` and `re` lazily, for a response given as a string).
"""

from __future__ import annotations

from cafleet.hooks import coding_agent, open_agent, poll_command

SKILLS_DIRECTOR = ("cafleet:cafleet", "cafleet:cafleet-agent-team-monitoring", "cafleet:cafleet-agent-team-supervision")
SKILLS_MEMBER = ("cafleet:cafleet",)
MAX_MEMBERS_LISTED = 40
_SOURCE_WORDS = {"resume": "resumed", "compact": "compacted", "clear": "cleared (/clear)"}


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
    backend = coding_agent(agent) or "unknown"
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
