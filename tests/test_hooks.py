"""The hook handler as Claude Code runs it: `python3 -I -S hooks/cafleet-hook <Event>`, the hook
input JSON on stdin, a clean environment (PATH, HOME, CAFLEET_DB, TMUX, TMUX_PANE only).

Fleet state is built with the broker API directly; placements carry a fake socket path and
pane ids, since the hook only reads rows and never talks to tmux.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cafleet.broker import Broker

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "hooks" / "cafleet-hook"
SOCKET = "/tmp/cafleet-test-fake/tmux-0/default"
DIRECTOR_PANE, MEMBER_PANE, CODEX_PANE = "%1", "%2", "%7"
LOOP_ID = "a1b2c3d4"


# ------------------------------------------------------------------ helpers


def hook_env(db: Path | str | None, pane: str | None = DIRECTOR_PANE, socket: str = SOCKET, **extra) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path(str(db or "/tmp")).parent)}
    if db is not None:
        env["CAFLEET_DB"] = str(db)
    if pane is not None:
        env["TMUX"] = f"{socket},4242,0"
        env["TMUX_PANE"] = pane
    env.update(extra)
    return env


def run_hook(event: str, payload, env: dict, *, flags=("-I", "-S"), hook: Path = HOOK, cwd=None):
    """Run the handler; return (exit code, parsed stdout or None, stderr)."""
    stdin = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    if isinstance(stdin, str):
        stdin = stdin.encode()
    proc = subprocess.run([sys.executable, *flags, str(hook), event], input=stdin, env=env,
                          capture_output=True, timeout=30, cwd=cwd)
    out = proc.stdout.decode()
    return proc.returncode, (json.loads(out) if out.strip() else None), proc.stderr.decode()


def bash(command: str, session: str = "sess-1") -> dict:
    return {"session_id": session, "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
            "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_input": {"command": command, "description": "x"}, "tool_use_id": "toolu_1"}


def cron_create(loop_id=LOOP_ID, *, session="sess-1", recurring=True, durable=False, response=None) -> dict:
    resp = response if response is not None else {
        "id": loop_id, "humanSchedule": "every minute", "recurring": recurring, "durable": durable,
        "nextFireAt": 1795290000000, "maxAgeMs": 2592000000}
    return {"session_id": session, "hook_event_name": "PostToolUse", "tool_name": "CronCreate",
            "tool_input": {"cron": "* * * * *", "prompt": "Monitor team health", "recurring": recurring},
            "tool_response": resp, "tool_use_id": "toolu_2"}


def cron_delete(loop_id=LOOP_ID, key="id") -> dict:
    return {"session_id": "sess-1", "hook_event_name": "PostToolUse", "tool_name": "CronDelete",
            "tool_input": {key: loop_id}, "tool_response": {"id": loop_id}}


def cron_list(jobs) -> dict:
    return {"session_id": "sess-1", "hook_event_name": "PostToolUse", "tool_name": "CronList",
            "tool_input": {}, "tool_response": {"jobs": jobs} if jobs is not None else {"other": 1}}


def reason(out) -> str:
    assert out is not None, "expected a deny"
    hso = out["hookSpecificOutput"]
    assert hso["hookEventName"] == "PreToolUse"
    assert hso["permissionDecision"] == "deny"
    assert set(hso) == {"hookEventName", "permissionDecision", "permissionDecisionReason"}
    return hso["permissionDecisionReason"]


class Fleet:
    def __init__(self, db: Path):
        self.db = db
        with Broker.open(str(db)) as b:
            f = b.create_fleet("alpha", coding_agent="claude", placement=self._pl(DIRECTOR_PANE))
            self.fleet_id, self.director = f["fleet_id"], f["director"]["agent_id"]
            self.member = b.register_agent(self.fleet_id, "coder", "writes the parser", role="member",
                                           parent_agent_id=self.director, coding_agent="claude",
                                           placement=self._pl(MEMBER_PANE))["agent_id"]
            self.reviewer = b.register_agent(self.fleet_id, "reviewer", "reviews", role="member",
                                             parent_agent_id=self.director, coding_agent="codex",
                                             placement=self._pl("%3"))["agent_id"]
            g = b.create_fleet("beta", coding_agent="codex", placement=self._pl(CODEX_PANE))
            self.codex_fleet, self.codex_director = g["fleet_id"], g["director"]["agent_id"]

    @staticmethod
    def _pl(pane):
        return {"tmux_socket": SOCKET, "session_name": "main", "window_id": "@1", "pane_id": pane}

    def broker(self) -> Broker:
        return Broker.open(str(self.db), create=False)

    def send(self, sender, recipient, body="do the thing") -> str:
        with self.broker() as b:
            return b.send(self.fleet_id, sender, recipient, body)["task_id"]

    def active_loops(self, agent=None):
        with self.broker() as b:
            return b.active_loops(agent or self.director)

    def poll(self, agent=None):
        return f"cafleet --fleet-id {self.fleet_id} message poll --agent-id {agent or self.director}"


@pytest.fixture
def fleet(tmp_path) -> Fleet:
    return Fleet(tmp_path / "data" / "cafleet.db")


@pytest.fixture
def denv(fleet):
    """Environment of the Director's pane."""
    return hook_env(fleet.db, DIRECTOR_PANE)


# ------------------------------------------------------------------ not a fleet agent: silent

ALL_EVENTS = [
    ("PreToolUse", bash("tmux send-keys -t %2 hi Enter")),
    ("PostToolUse", cron_create()),
    ("SessionStart", {"session_id": "s", "hook_event_name": "SessionStart", "source": "startup"}),
    ("Stop", {"session_id": "s", "hook_event_name": "Stop", "stop_hook_active": False}),
]


@pytest.mark.parametrize("event,payload", ALL_EVENTS)
def test_no_tmux_is_silent(fleet, event, payload):
    fleet.send(fleet.member, fleet.director)
    assert run_hook(event, payload, hook_env(fleet.db, pane=None)) == (0, None, "")


@pytest.mark.parametrize("event,payload", ALL_EVENTS)
def test_no_db_file_is_silent_and_creates_nothing(tmp_path, event, payload):
    db = tmp_path / "nowhere" / "cafleet.db"
    assert run_hook(event, payload, hook_env(db)) == (0, None, "")
    assert not db.parent.exists()


def test_default_db_location_is_not_created(tmp_path):
    env = hook_env(None)
    env["HOME"] = str(tmp_path / "home")
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    for event, payload in ALL_EVENTS:
        assert run_hook(event, payload, env) == (0, None, "")
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()


@pytest.mark.parametrize("event,payload", ALL_EVENTS)
def test_unknown_pane_is_silent(fleet, event, payload):
    fleet.send(fleet.member, fleet.director)
    assert run_hook(event, payload, hook_env(fleet.db, "%99")) == (0, None, "")
    assert run_hook(event, payload, hook_env(fleet.db, DIRECTOR_PANE, socket="/tmp/other/sock")) == (0, None, "")
    assert fleet.active_loops() == []


def test_deregistered_member_and_deleted_fleet_are_silent(fleet, menv, denv):
    with fleet.broker() as b:
        b.deregister_agent(fleet.fleet_id, fleet.member)
    assert run_hook("PreToolUse", bash("tmux kill-server"), menv) == (0, None, "")
    assert run_hook("PreToolUse", bash("tmux kill-server"), denv)[1] is not None
    with fleet.broker() as b:
        b.delete_fleet(fleet.fleet_id)
    assert run_hook("PreToolUse", bash("tmux kill-server"), denv) == (0, None, "")


# ------------------------------------------------------------------ PreToolUse: raw tmux

RAW_TMUX = [
    ("tmux send-keys -t %2 'hello' Enter", "send-keys"),
    ("tmux capture-pane -p -t %2", "capture-pane"),
    ("tmux kill-pane -t %2", "kill-pane"),
    ("tmux split-window -h", "split-window"),
    ("tmux kill-server", "kill-server"),
    ("tmux respawn-pane -k -t %2", "respawn-pane"),
    ("tmux pipe-pane -t %2 'cat >> /tmp/log'", "pipe-pane"),
    ("tmux select-pane -t %2", "select-pane"),
    ("tmux resize-pane -Z", "resize-pane"),
    ("tmux new-window", "new-window"),
    ("tmux", "new-session"),
    ("tmux send -t %2 x", "send-keys"),
    ("tmux capturep -p", "capture-pane"),
    ("tmux killp", "kill-pane"),
    ("tmux send-k x", "send-keys"),
    ("tmux -L work -f /dev/null kill-server", "kill-server"),
    ("tmux -S /tmp/sock send-keys x", "send-keys"),
    ("tmux list-panes \\; send-keys -t %2 x", "send-keys"),
    ("tmux -c 'ls'", "-c"),
    ("ls && tmux send-keys -t %2 x", "send-keys"),
    ("true || tmux kill-pane", "kill-pane"),
    ("echo hi; tmux kill-pane -t %2", "kill-pane"),
    ("echo hi | tmux load-buffer -", "load-buffer"),
    ("echo $(tmux capture-pane -p -t %2)", "capture-pane"),
    ("echo \"$(tmux capture-pane -p)\"", "capture-pane"),
    ("echo `tmux capture-pane -p`", "capture-pane"),
    ("diff <(tmux capture-pane -p) expected.txt", "capture-pane"),
    ("sudo tmux kill-server", "kill-server"),
    ("sudo -u bob -- tmux kill-server", "kill-server"),
    ("env X=1 tmux send-keys x", "send-keys"),
    ("env -i PATH=/usr/bin tmux send-keys x", "send-keys"),
    ("X=1 tmux send-keys x", "send-keys"),
    ("/usr/bin/tmux kill-pane -t %2", "kill-pane"),
    ("command tmux send-keys x", "send-keys"),
    ("exec tmux kill-pane", "kill-pane"),
    ("timeout 5 tmux capture-pane -p", "capture-pane"),
    ("nohup tmux kill-server &", "kill-server"),
    ("(cd /tmp && tmux kill-pane)", "kill-pane"),
    ("{ tmux kill-pane; }", "kill-pane"),
    ("if true; then tmux kill-pane; fi", "kill-pane"),
    ("bash -c 'tmux send-keys -t %2 x'", "send-keys"),
    ("sh -lc \"tmux kill-server\"", "kill-server"),
    ("eval 'tmux kill-server'", "kill-server"),
    ("xargs -n1 tmux kill-pane -t < panes.txt", "kill-pane"),
    ("find . -exec tmux kill-pane \\;", "kill-pane"),
    ("watch -n 1 tmux capture-pane -p", "capture-pane"),
    ("t\\mux kill-server", "kill-server"),
    ("'tmux' kill-server", "kill-server"),
    ("cat <<EOF\n$(tmux kill-server)\nEOF", "kill-server"),
    ("echo ok\ntmux kill-server", "kill-server"),
    ("ls \\\n && tmux kill-server", "kill-server"),
    ("echo $((1+2)); tmux kill-server", "kill-server"),
    ("echo ${X:-$(tmux kill-server)}", "kill-server"),
    ("echo $(($(tmux kill-server)+1))", "kill-server"),
    ("cat <<< \"$(tmux capture-pane -p)\"", "capture-pane"),
    ("sh -e -c 'tmux kill-server'", "kill-server"),
    ("/usr/*/tmux kill-server", "kill-server"),
]


@pytest.mark.parametrize("command,sub", RAW_TMUX)
def test_raw_tmux_is_denied(fleet, denv, command, sub):
    rc, out, err = run_hook("PreToolUse", bash(command), denv)
    assert rc == 0 and err == ""
    text = reason(out)
    assert f"`{sub}`" in text
    assert fleet.fleet_id in text


@pytest.mark.parametrize("command,primitives", [
    ("tmux send-keys -t %2 '1' Enter", ["member send-input", "member exec", "member ping", "message send"]),
    ("tmux capture-pane -p -t %2", ["member capture"]),
    ("tmux kill-pane -t %2", ["member delete", "--force"]),
    ("tmux respawn-pane -k", ["member delete", "--force"]),
    ("tmux split-window", ["member create"]),
    ("tmux select-pane -t %2", ["member list", "member capture"]),
])
def test_tmux_reason_names_the_cafleet_primitive(fleet, denv, command, primitives):
    text = reason(run_hook("PreToolUse", bash(command), denv)[1])
    for p in primitives:
        assert p in text
    assert f"cafleet --fleet-id {fleet.fleet_id} " in text


def test_tmux_reason_for_a_member_points_at_the_director(fleet, menv):
    text = reason(run_hook("PreToolUse", bash("tmux capture-pane -p -t %1"), menv)[1])
    assert "member" in text and "Director" in text
    assert f"--agent-id {fleet.member} --to {fleet.director}" in text


ALLOWED = [
    "ls -la",
    "git status && git diff",
    "tmux display-message -p '#{pane_id}'",
    "tmux display -p '#S'",
    "tmux list-panes -a -F '#{pane_id}'",
    "tmux ls",
    "tmux -L work list-sessions",
    "tmux -V",
    "tmux has-session -t main",
    "which tmux",
    "command -v tmux",
    "type tmux",
    "man tmux",
    "echo tmux kill-server",
    "grep -rn 'tmux send-keys' skills/",
    "git commit -m 'never use tmux send-keys here'",
    "cat <<'EOF'\ntmux kill-server $(tmux kill-server)\nEOF",
    "cat <<EOF > notes.md\nuse tmux send-keys? no\nEOF",
    "pip install tmux-helper",
    "echo 'cafleet --fleet-id $F member list'",
    "# tmux kill-server",
]


@pytest.mark.parametrize("command", ALLOWED)
def test_harmless_commands_are_silent(denv, command):
    assert run_hook("PreToolUse", bash(command), denv) == (0, None, "")


# ------------------------------------------------------------------ PreToolUse: the bypass list (issue 10)

# Each of these ran on bash 5.2 and got past the hook before issue 10. `{f}`, `{d}`, `{m}`: the fleet,
# Director and member ids; the last column is a piece of the deny reason.
BYPASSES = [
    # a line continuation inside the command word (the cheap pre-check did not see it)
    ("tm\\\nux kill-server", "`kill-server`"),
    ("caf\\\nleet --fleet-id {f} -- message poll --agent-id {d}", "`--` before the subcommand"),
    ('caf\\\nleet --fleet-id "$F" member list', "--fleet-id $F"),
    # ANSI-C quoting
    ("$'\\x74mux' kill-server", "`kill-server`"),
    ("$'tm\\165x' kill-pane -t %2", "`kill-pane`"),
    ("$'\\u0074mux' send-keys -t %2 y Enter", "`send-keys`"),
    # a shell given options before (or after) -c
    ("bash --norc -c 'tmux kill-server'", "`kill-server`"),
    ("bash -o errexit -c 'tmux kill-server'", "`kill-server`"),
    ("bash -c -- 'tmux kill-server'", "`kill-server`"),
    ("bash --rcfile /dev/null -ec 'tmux kill-server'", "`kill-server`"),
    # env -S in its attached and long forms
    ("env -S'tmux kill-server'", "`kill-server`"),
    ("env --split-string='tmux kill-server'", "`kill-server`"),
    ("env -iS'tmux kill-server'", "`kill-server`"),
    # a shell reading its commands from stdin or a file
    ("sh <<< 'tmux kill-server'", "`kill-server`"),
    ("bash <<'EOF'\ntmux kill-server\nEOF", "`kill-server`"),
    ("bash <<-EOF\n\ttmux kill-server\n\tEOF", "`kill-server`"),
    ("echo 'tmux kill-server' | sh", "`kill-server`"),
    ("printf '\\x74mux kill-server' | bash", "`kill-server`"),
    ("echo -e 'tm\\x75x kill-server' | bash -s", "`kill-server`"),
    ("cat <<EOF | sh\ntmux kill-server\nEOF", "`kill-server`"),
    ("bash <(echo tmux kill-server)", "`kill-server`"),
    ("source <(echo tmux kill-server)", "`kill-server`"),
    (". <(echo tmux kill-server)", "`kill-server`"),
    ("bash < <(echo tmux kill-server)", "`kill-server`"),
    ("bash /dev/stdin <<< 'tmux kill-server'", "`kill-server`"),
    # globs and brace expansion in the command word
    ("/usr/bin/tmu[x] kill-server", "`kill-server`"),
    ("/usr/bin/tmu? kill-server", "`kill-server`"),
    ("{tmux,kill-server}", "`kill-server`"),
    ("{,tmux} kill-server", "`kill-server`"),
    ("{t,}mux kill-server", "raw tmux"),
    ("b?sh -c 'tmux kill-server'", "`kill-server`"),
    # tmux formats run shell commands, even in the read-only queries
    ("tmux display -p '#(tmux send-keys -t %1 x Enter)'", "`display-message #(…)`"),
    ("tmux list-panes -F '#(touch /tmp/cafleet-pwned)'", "`list-panes #(…)`"),
    ("tmux display-message -p '#{E:@evil}'", "`display-message #(…)`"),
    ('tmux display -p "$FMT"', "`display-message #(…)`"),
    # `--` before the subcommand's own arguments: click drops it and keeps parsing
    ("cafleet --fleet-id {f} -- message send --agent-id {m} --to {d} --text hi --agent-id {d}",
     "`--` before the subcommand"),
    ("cafleet -- --fleet-id $F member list", "--fleet-id $F"),
    ("cafleet --fleet-id {f} -- member create --name x --description y -- go", "`--` before the subcommand"),
    ("cafleet -- fleet delete {f}", "`--` before the subcommand"),
    ("cafleet --fleet-id {f} member -- list", "`--` before the subcommand"),
]


@pytest.mark.parametrize("command,shown", BYPASSES)
def test_bypasses_are_denied(fleet, denv, command, shown):
    command = command.replace("{f}", fleet.fleet_id).replace("{d}", fleet.director).replace("{m}", fleet.member)
    rc, out, err = run_hook("PreToolUse", bash(command), denv)
    assert rc == 0 and err == ""
    assert shown in reason(out)


BYPASS_LOOKALIKES = [
    "ls *.py",
    "bash script.sh",
    "bash -n script.sh",
    "echo 'tmux kill-server' | grep tmux",
    "cat <<EOF | grep bash\ntmux send-keys\nEOF",
    "printf 'a\\tb\\n' | sort",
    "echo {a,b}.txt",
    "git log --format='%h %s' | head",
    "tmux display-message -p '#{pane_id} #{session_name}'",
    "cafleet --fleet-id 3f2b8c1e-0000-4000-8000-000000000001 member create --name a --description b -- -- go",
]


@pytest.mark.parametrize("command", BYPASS_LOOKALIKES)
def test_bypass_lookalikes_stay_silent(fleet, denv, command):
    """What the bypass rules must not catch (the last is another fleet's `member create`, with
    `--` where it belongs: before the prompt)."""
    assert run_hook("PreToolUse", bash(command), denv) == (0, None, "")


def test_literal_cafleet_commands_are_silent(fleet, denv, menv):
    f, d, m = fleet.fleet_id, fleet.director, fleet.member
    task = fleet.send(m, d)
    director_cmds = [
        f"cafleet --fleet-id {f} member list",
        f"cafleet --fleet-id {f} --json member list",
        fleet.poll(),
        f"cafleet --fleet-id {f} --json message poll --agent-id {d}",
        f"cafleet --fleet-id {f} message ack --agent-id {d} --task-id {task}",
        f"cafleet --fleet-id {f} message ack --agent-id {d} --task-id {task} --task-id {task}",
        f'cafleet --fleet-id {f} message send --agent-id {d} --to {m} --text "Report your progress now."',
        f'cafleet --fleet-id {f} message send --agent-id {d} --to {m} --text "$(cat notes.md)"',
        f'cafleet --fleet-id {f} message send --agent-id {d} --to {m} --text "never run tmux send-keys; use $HOME"',
        f"cafleet --fleet-id {f} member capture --member-id {m} --lines 200",
        f"cafleet --fleet-id {f} member ping --member-id {m}",
        f'cafleet --fleet-id {f} member exec --member-id {m} "git status"',
        f"cafleet --fleet-id {f} member send-input --member-id {m} --choice 2",
        f"cafleet --fleet-id {f} member delete --member-id {m} --force",
        f"cafleet --fleet-id={f} member list",
        "cafleet fleet list",
        "cafleet doctor",
        "cafleet fleet create --coding-agent claude",
        f"cafleet --fleet-id {f} member list && {fleet.poll()}",
        f"cafleet fleet delete {fleet.codex_fleet}",  # another fleet: the loop rule is about our own
    ]
    for command in director_cmds:
        assert run_hook("PreToolUse", bash(command), denv) == (0, None, ""), command
    assert run_hook("PreToolUse", bash(fleet.poll(m)), menv) == (0, None, "")


# ------------------------------------------------------------------ PreToolUse: variable ids

VARIABLE_IDS = [
    ("cafleet --fleet-id $F member list", "--fleet-id $F"),
    ("cafleet --fleet-id ${F} member list", "--fleet-id ${F}"),
    ('cafleet --fleet-id "$F" member list', "--fleet-id $F"),
    ("cafleet --fleet-id=$F member list", "--fleet-id $F"),
    ('cafleet --fleet-id="${F}" member list', "--fleet-id ${F}"),
    ("F=abc; cafleet --fleet-id $F member list", "--fleet-id $F"),
    ("cafleet --fleet-id FID message poll --agent-id $(cat /tmp/me)", "--agent-id $(cat /tmp/me)"),
    ("cafleet --fleet-id FID message poll --agent-id `cat /tmp/me`", "--agent-id `cat /tmp/me`"),
    ("cafleet --fleet-id FID message send --agent-id A --to $MEMBER --text hi", "--to $MEMBER"),
    ("cafleet --fleet-id FID member capture --member-id $1", "--member-id $1"),
    ("cafleet --fleet-id FID message ack --agent-id A --task-id ${TASKS[0]}", "--task-id ${TASKS[0]}"),
    ("cafleet fleet delete $FLEET", "fleet id $FLEET"),
    ("for m in $MEMBERS; do cafleet --fleet-id F member ping --member-id $m; done", "--member-id $m"),
    ("python3 -m cafleet --fleet-id $F member list", "--fleet-id $F"),
]


@pytest.mark.parametrize("command,shown", VARIABLE_IDS)
def test_variable_ids_are_denied(fleet, denv, command, shown):
    text = reason(run_hook("PreToolUse", bash(command), denv)[1])
    assert shown in text
    assert "literal" in text and "permission rules" in text.lower()
    assert fleet.poll() in text  # the agent's own literal command as the example


def test_variable_ids_are_denied_for_members_too(fleet, menv):
    text = reason(run_hook("PreToolUse", bash(f"cafleet --fleet-id {fleet.fleet_id} message poll --agent-id $ME"),
                           menv)[1])
    assert fleet.poll(fleet.member) in text


def test_repeated_identity_flag_is_denied(fleet, menv):
    f, m, d = fleet.fleet_id, fleet.member, fleet.director
    text = reason(run_hook("PreToolUse", bash(
        f'cafleet --fleet-id {f} message send --agent-id {m} --to {d} --text hi --agent-id {d}'), menv)[1])
    assert "`--agent-id`" in text and "more than once" in text


# ------------------------------------------------------------------ lifecycle guards


def member_create(fleet) -> str:
    return (f'cafleet --fleet-id {fleet.fleet_id} member create --name coder2 --description "writes tests"'
            f' --coding-agent codex -- "Write the tests"')


def fleet_delete(fleet) -> str:
    return f"cafleet fleet delete {fleet.fleet_id}"


def test_member_create_needs_a_loop_and_fleet_delete_needs_it_gone(fleet, denv):
    # no loop yet: create denied, delete allowed
    text = reason(run_hook("PreToolUse", bash(member_create(fleet)), denv)[1])
    assert "/loop" in text and "CronCreate" in text and "member create" in text
    assert fleet.fleet_id in text and fleet.director in text
    assert run_hook("PreToolUse", bash(fleet_delete(fleet)), denv) == (0, None, "")

    # CronCreate recorded by PostToolUse: create allowed, delete denied
    assert run_hook("PostToolUse", cron_create(), denv) == (0, None, "")
    [loop] = fleet.active_loops()
    assert (loop["loop_id"], loop["session_id"], loop["cron"], loop["durable"]) == (LOOP_ID, "sess-1", "* * * * *", 0)
    assert loop["prompt"] == "Monitor team health"
    assert run_hook("PreToolUse", bash(member_create(fleet)), denv) == (0, None, "")
    text = reason(run_hook("PreToolUse", bash(fleet_delete(fleet)), denv)[1])
    assert "CronDelete" in text and LOOP_ID in text and "* * * * *" in text
    assert reason(run_hook("PreToolUse", bash(f"cafleet fleet delete {fleet.fleet_id} --force"), denv)[1])

    # CronDelete recorded: delete allowed, create denied again
    assert run_hook("PostToolUse", cron_delete(), denv) == (0, None, "")
    assert fleet.active_loops() == []
    assert run_hook("PreToolUse", bash(fleet_delete(fleet)), denv) == (0, None, "")
    assert reason(run_hook("PreToolUse", bash(member_create(fleet)), denv)[1])


def test_guards_apply_only_to_claude_agents(fleet):
    env = hook_env(fleet.db, CODEX_PANE)
    cmd = f"cafleet --fleet-id {fleet.codex_fleet} member create --name a --description b -- go"
    assert run_hook("PreToolUse", bash(cmd), env) == (0, None, "")
    # but the tmux and variable rules do
    assert reason(run_hook("PreToolUse", bash("tmux kill-pane"), env)[1])


def test_member_create_for_another_fleet_is_not_this_directors_business(fleet, denv):
    cmd = f"cafleet --fleet-id {fleet.codex_fleet} member create --name a --description b -- go"
    assert run_hook("PreToolUse", bash(cmd), denv) == (0, None, "")


def test_member_create_inside_a_chain_is_guarded(fleet, denv):
    assert reason(run_hook("PreToolUse", bash(f"cd /tmp && {member_create(fleet)}"), denv)[1])


def test_one_shot_cron_is_not_a_loop(fleet, denv):
    assert run_hook("PostToolUse", cron_create(recurring=False), denv) == (0, None, "")
    assert fleet.active_loops() == []
    assert reason(run_hook("PreToolUse", bash(member_create(fleet)), denv)[1])


@pytest.mark.parametrize("response", [
    json.dumps({"id": LOOP_ID, "humanSchedule": "every minute", "recurring": True}),
    {"jobId": LOOP_ID, "recurring": True},
])
def test_cron_create_response_read_leniently(fleet, denv, response):
    run_hook("PostToolUse", cron_create(response=response), denv)
    assert [lp["loop_id"] for lp in fleet.active_loops()] == [LOOP_ID]


def test_cron_delete_accepts_job_id_key(fleet, denv):
    run_hook("PostToolUse", cron_create(), denv)
    run_hook("PostToolUse", cron_delete(key="jobId"), denv)
    assert fleet.active_loops() == []


def test_durable_flag_is_recorded(fleet, denv):
    run_hook("PostToolUse", cron_create(durable=True), denv)
    assert fleet.active_loops()[0]["durable"] == 1


def test_cron_list_reconciles_loops(fleet, denv):
    run_hook("PostToolUse", cron_create("dead0001"), denv)
    run_hook("PostToolUse", cron_list(None), denv)  # unknown shape: nothing changes
    assert [lp["loop_id"] for lp in fleet.active_loops()] == ["dead0001"]
    run_hook("PostToolUse", cron_list([{"id": "live0002", "cron": "*/1 * * * *", "humanSchedule": "every minute",
                                        "prompt": "tick", "recurring": True},
                                       {"id": "once0003", "cron": "5 4 3 2 *", "prompt": "remind",
                                        "recurring": False}]), denv)
    loops = fleet.active_loops()
    assert [(lp["loop_id"], lp["cron"]) for lp in loops] == [("live0002", "*/1 * * * *")]
    run_hook("PostToolUse", cron_list([]), denv)
    assert fleet.active_loops() == []
    assert run_hook("PreToolUse", bash(fleet_delete(fleet)), denv) == (0, None, "")


def test_other_post_tool_use_tools_are_ignored(fleet, denv):
    payload = cron_create()
    payload["tool_name"] = "Bash"
    assert run_hook("PostToolUse", payload, denv) == (0, None, "")
    assert fleet.active_loops() == []


# ------------------------------------------------------------------ SessionStart

SOURCES = ["startup", "resume", "clear", "compact"]


def session_start(source, session="sess-2") -> dict:
    return {"session_id": session, "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
            "hook_event_name": "SessionStart", "source": source}


def context(out) -> str:
    assert out is not None
    hso = out["hookSpecificOutput"]
    assert hso["hookEventName"] == "SessionStart" and set(hso) == {"hookEventName", "additionalContext"}
    return hso["additionalContext"]


@pytest.mark.parametrize("source", SOURCES)
def test_session_start_restores_a_members_identity(fleet, menv, source):
    fleet.send(fleet.director, fleet.member)
    rc, out, err = run_hook("SessionStart", session_start(source), menv)
    assert rc == 0 and err == ""
    text = context(out)
    for needle in ['"coder"', "writes the parser", f"fleet id: {fleet.fleet_id}", f"your agent id: {fleet.member}",
                   f"Director's agent id: {fleet.director}", f"`{fleet.poll(fleet.member)}`", "1 un-acked",
                   f"--agent-id {fleet.member} --to {fleet.director}", "cafleet:cafleet", '"alpha"', source]:
        assert needle in text, needle
    assert "cafleet-agent-team-monitoring" not in text


@pytest.mark.parametrize("source", SOURCES)
def test_session_start_restores_a_directors_identity(fleet, denv, source):
    text = context(run_hook("SessionStart", session_start(source), denv)[1])
    for needle in ['"Director"', "root Director", f"fleet id: {fleet.fleet_id}", f"your agent id: {fleet.director}",
                   f"`{fleet.poll()}`", '"coder"', fleet.member, '"reviewer"', fleet.reviewer, "codex",
                   "cafleet:cafleet", "cafleet:cafleet-agent-team-monitoring",
                   "cafleet:cafleet-agent-team-supervision", "No monitoring /loop", "CronCreate"]:
        assert needle in text, needle
    assert fleet.codex_director not in text  # another fleet's agents are not shown


def test_session_start_mentions_a_running_loop(fleet, denv):
    run_hook("PostToolUse", cron_create(session="sess-2"), denv)
    text = context(run_hook("SessionStart", session_start("compact"), denv)[1])
    assert LOOP_ID in text and "CronList" in text


def test_startup_ends_session_only_loops_of_earlier_sessions(fleet, denv):
    run_hook("PostToolUse", cron_create("old00001", session="old"), denv)
    run_hook("PostToolUse", cron_create("durable1", session="old", durable=True), denv)
    run_hook("PostToolUse", cron_create("same0001", session="sess-2"), denv)
    for source in ("resume", "clear", "compact"):
        run_hook("SessionStart", session_start(source), denv)
        assert len(fleet.active_loops()) == 3
    run_hook("SessionStart", session_start("startup"), denv)
    assert sorted(lp["loop_id"] for lp in fleet.active_loops()) == ["durable1", "same0001"]


# ------------------------------------------------------------------ Stop


def stop_input(active=False) -> dict:
    return {"session_id": "sess-1", "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
            "hook_event_name": "Stop", "stop_hook_active": active}


def test_stop_without_messages_is_silent(menv):
    assert run_hook("Stop", stop_input(), menv) == (0, None, "")


def test_stop_blocks_once_then_again_for_a_new_message(fleet, menv):
    fleet.send(fleet.director, fleet.member)
    fleet.send(fleet.director, fleet.member)
    rc, out, err = run_hook("Stop", stop_input(), menv)
    assert rc == 0 and err == ""
    assert set(out) == {"decision", "reason"} and out["decision"] == "block"
    assert "2 un-acked cafleet message" in out["reason"]
    assert f"`{fleet.poll(fleet.member)}`" in out["reason"]
    assert run_hook("Stop", stop_input(), menv) == (0, None, "")  # same backlog: once
    assert run_hook("Stop", stop_input(), menv) == (0, None, "")
    fleet.send(fleet.director, fleet.member, "one more")
    out = run_hook("Stop", stop_input(), menv)[1]
    assert out["decision"] == "block" and "3 un-acked" in out["reason"]


def test_stop_hook_active_never_blocks_and_keeps_the_notice_for_later(fleet, menv):
    fleet.send(fleet.director, fleet.member)
    assert run_hook("Stop", stop_input(active=True), menv) == (0, None, "")
    assert run_hook("Stop", stop_input(), menv)[1]["decision"] == "block"


def test_stop_applies_to_the_director_too(fleet, denv):
    fleet.send(fleet.member, fleet.director, "done")
    out = run_hook("Stop", stop_input(), denv)[1]
    assert out["decision"] == "block" and fleet.poll() in out["reason"]


# ------------------------------------------------------------------ faults: exit 0, no output


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[1, 2]", b"\xff\xfe\x00garbage", b'{"tool_input": 5}',
                                   b'{"tool_name": "Bash", "tool_input": {"command": 42}}', b"null"])
@pytest.mark.parametrize("event", ["PreToolUse", "PostToolUse", "SessionStart", "Stop"])
def test_malformed_stdin_is_silent(fleet, denv, stdin, event):
    assert run_hook(event, stdin, denv) == (0, None, "")


def test_unknown_or_missing_event_is_silent(denv):
    assert run_hook("Notification", {"message": "hi"}, denv) == (0, None, "")
    proc = subprocess.run([sys.executable, "-I", "-S", str(HOOK)], input=b"{}", env=denv, capture_output=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_event_name_falls_back_to_hook_event_name(fleet, denv):
    proc = subprocess.run([sys.executable, "-I", "-S", str(HOOK)], input=json.dumps(bash("tmux kill-server")).encode(),
                          env=denv, capture_output=True)
    assert proc.returncode == 0
    assert reason(json.loads(proc.stdout))


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b""])
def test_broken_db_is_silent_and_untouched(tmp_path, content):
    db = tmp_path / "cafleet.db"
    db.write_bytes(content)
    for event, payload in ALL_EVENTS:
        assert run_hook(event, payload, hook_env(db)) == (0, None, "")
    if content:
        assert db.read_bytes() == content


def test_db_from_a_newer_schema_is_silent_and_untouched(fleet, denv):
    conn = sqlite3.connect(fleet.db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = fleet.db.read_bytes()
    for event, payload in ALL_EVENTS:
        assert run_hook(event, payload, denv) == (0, None, "")
    assert fleet.db.read_bytes() == before


def test_relative_cafleet_db_is_silent(denv):
    env = dict(denv, CAFLEET_DB="relative/cafleet.db")
    assert run_hook("PreToolUse", bash("tmux kill-server"), env) == (0, None, "")


def test_locked_db_does_not_hang_or_talk(fleet, denv):
    conn = sqlite3.connect(fleet.db, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        env = dict(denv, CAFLEET_BUSY_TIMEOUT_MS="200")
        assert run_hook("PostToolUse", cron_create(), env) == (0, None, "")
    finally:
        conn.execute("ROLLBACK")
        conn.close()


# ------------------------------------------------------------------ needs nothing installed


def test_runs_from_a_bare_plugin_copy_with_nothing_installed(fleet, tmp_path):
    """The plugin dir alone (hooks/ + cafleet/), an isolated interpreter without site-packages
    (-I -S: no PYTHONPATH, no user site, no .pth, so neither the editable cafleet install nor
    click/libtmux is importable), started from an unrelated cwd."""
    plugin = tmp_path / "plugin"
    shutil.copytree(ROOT / "hooks", plugin / "hooks")
    shutil.copytree(ROOT / "cafleet", plugin / "cafleet", ignore=shutil.ignore_patterns("__pycache__"))
    env = hook_env(fleet.db, DIRECTOR_PANE)
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", "import click"], env=env, capture_output=True)
    assert probe.returncode != 0  # really nothing installed in this interpreter mode
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    text = reason(run_hook("PreToolUse", bash("tmux kill-server"), env, hook=plugin / "hooks" / "cafleet-hook",
                           cwd=elsewhere)[1])
    assert "kill-server" in text
    assert context(run_hook("SessionStart", session_start("startup"), env,
                            hook=plugin / "hooks" / "cafleet-hook", cwd=elsewhere)[1])


def test_plain_python3_without_flags_works_too(fleet, denv):
    """What the brief's entry line does (`python3 <hook> <Event>`, with site)."""
    assert reason(run_hook("PreToolUse", bash("tmux kill-server"), denv, flags=())[1])
    assert run_hook("PreToolUse", bash("ls"), denv, flags=()) == (0, None, "")


def test_hook_module_imports_only_the_stdlib_and_the_broker(fleet, denv):
    code = (
        "import sys, io, json; sys.path.insert(0, sys.argv[1]);"
        "real_stdout = sys.stdout;"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[2].encode()));"
        "sys.stdout = io.TextIOWrapper(io.BytesIO());"
        "from cafleet import hooks; hooks.main(['PreToolUse']); sys.stdout.flush();"
        "written = sys.stdout.buffer.getvalue().decode(); sys.stdout = real_stdout;"
        "assert 'permissionDecision' in written, written;"
        "mods = sorted(m for m in sys.modules if m.startswith('cafleet') or m in ('click', 'libtmux'));"
        "print(json.dumps(mods))"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT), json.dumps(bash("tmux kill-server"))],
                          env=denv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
        "cafleet", "cafleet.bashcheck", "cafleet.broker", "cafleet.cliargs", "cafleet.dbfile", "cafleet.errors",
        "cafleet.hooks", "cafleet.pretooluse", "cafleet.schema", "cafleet.shellcommands", "cafleet.shellwords", "cafleet.store",
        "cafleet.supervision"]


@pytest.mark.parametrize("event, payload, inside, handlers", [
    ("PreToolUse", bash("tmux kill-server"), False, []),
    ("SessionStart", {"hook_event_name": "SessionStart", "source": "startup", "session_id": "s"}, False, []),
    ("PreToolUse", bash("ls -la"), True, ["cafleet.pretooluse"]),
    ("Stop", {"hook_event_name": "Stop", "stop_hook_active": False}, True, ["cafleet.sessionhooks"]),
])
def test_each_event_loads_only_its_own_handler(fleet, denv, event, payload, inside, handlers):
    """Outside tmux a hook ends with `cafleet.hooks` alone loaded (the path of every session
    that is not in a fleet); inside, only the handler module of the event is loaded."""
    env = denv if inside else {k: v for k, v in denv.items() if k not in ("TMUX", "TMUX_PANE")}
    code = (
        "import sys, io, json; sys.path.insert(0, sys.argv[1]);"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[3].encode()));"
        "from cafleet import hooks; hooks.main([sys.argv[2]]);"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('cafleet'))))"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT), event, json.dumps(payload)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if m in ("cafleet.pretooluse", "cafleet.sessionhooks")] == handlers
    if not inside:
        assert loaded == ["cafleet", "cafleet.hooks"]


@pytest.mark.parametrize("command", ["ls *.py | grep -v x", "cafleet --fleet-id {f} message poll --agent-id {d}",
                                     "printf 'a\\tb\\n'", "tmux display-message -p '#{pane_id}'"])
def test_nothing_to_deny_never_imports_json_or_re(fleet, denv, command):
    """The common Director Bash call (a glob, a literal poll, an escape, a read-only tmux query)
    is lexed without importing `json` (which imports `re`): the cheap path of a tick."""
    command = command.replace("{f}", fleet.fleet_id).replace("{d}", fleet.director)
    code = (
        "import sys, io; sys.path.insert(0, sys.argv[1]);"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[2].encode()));"
        "from cafleet import hooks; rc = hooks.main(['PreToolUse']);"
        "print(rc, 'json' in sys.modules, 're' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT), json.dumps(bash(command))],
                          env=denv, capture_output=True, text=True)
    assert proc.stdout.split() == ["0", "False", "False"], (proc.stdout, proc.stderr)


@pytest.mark.parametrize("command,lexed", [("ls -la /tmp", False), ("git commit -m 'fix: the parser'", False),
                                            ("ls *.py", True), ("tmux display-message -p '#{pane_id}'", True)])
def test_the_cheap_pre_check_spares_the_lexer(fleet, denv, command, lexed):
    """A Director's Bash call that names neither tmux nor cafleet (no glob, no backslash) ends
    at the cheap pre-check: the shell lexer is never imported, let alone run."""
    code = (
        "import sys, io; sys.path.insert(0, sys.argv[1]);"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[2].encode()));"
        "from cafleet import hooks; rc = hooks.main(['PreToolUse']);"
        "print(rc, 'cafleet.shellwords' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT), json.dumps(bash(command))],
                          env=denv, capture_output=True, text=True)
    assert proc.stdout.split() == ["0", str(lexed)], (proc.stdout, proc.stderr)


def test_unicode_names_survive_any_locale(fleet):
    with fleet.broker() as b:
        m = b.register_agent(fleet.fleet_id, "レビュー係 ✓", "проверяет код", role="member",
                             parent_agent_id=fleet.director, coding_agent="claude",
                             placement=Fleet._pl("%4"))["agent_id"]
    env = hook_env(fleet.db, "%4", LC_ALL="C", LANG="C")
    rc, out, err = run_hook("SessionStart", session_start("startup"), env)
    assert rc == 0 and err == ""
    text = context(out)
    assert "レビュー係 ✓" in text and "проверяет код" in text and m in text


def test_poll_command_matches_the_members_module():
    sys.path.insert(0, str(ROOT))
    from cafleet import hooks, members

    f, a = "3f2b8c1e-0000-4000-8000-000000000001", "3f2b8c1e-0000-4000-8000-000000000002"
    assert hooks.poll_command(f, a) == members.poll_command(f, a)


# ------------------------------------------------------------------ member routing (claude members)


@pytest.fixture
def menv(fleet):
    """Environment of the claude member's pane, with the identity cafleet gives it at spawn."""
    return hook_env(fleet.db, MEMBER_PANE, CAFLEET_AGENT_ID=fleet.member, CAFLEET_FLEET_ID=fleet.fleet_id,
                    CAFLEET_DIRECTOR_ID=fleet.director)


@pytest.mark.parametrize("command", [
    "ls -la", "git status", "git diff HEAD~1", "cat README.md | grep -n parser", "find . -name '*.py'",
    "sed -n 1,20p f.py", "rg TODO src",
])
def test_member_runs_read_only_commands_itself(fleet, menv, command):
    assert run_hook("PreToolUse", bash(command), menv)[1] is None


def test_member_runs_its_own_cafleet_commands(fleet, menv):
    f, m, d = fleet.fleet_id, fleet.member, fleet.director
    for command in (f"cafleet --fleet-id {f} message poll --agent-id {m}",
                    f"cafleet --fleet-id {f} message ack --agent-id {m} --task-id {fleet.send(d, m)}",
                    f'cafleet --fleet-id {f} message send --agent-id {m} --to {d} --text "done: parser written"'):
        assert run_hook("PreToolUse", bash(command), menv)[1] is None, command


@pytest.mark.parametrize("command", [
    "npm test", "touch /tmp/x", "echo hi > notes.txt", "git push", "git commit -am wip", "rm -rf build",
    "find . -name '*.pyc' -delete", "sed -i s/a/b/ f.py", "ls && npm test", "cat $HOME/.ssh/id_rsa",
    "git -c core.fsmonitor='touch /tmp/x' status", "git -C /tmp/other status",
])
def test_member_is_routed_to_its_director_for_anything_else(fleet, menv, command):
    text = reason(run_hook("PreToolUse", bash(command), menv)[1])
    f, m, d = fleet.fleet_id, fleet.member, fleet.director
    assert f"cafleet --fleet-id {f} message send --agent-id {m} --to {d} --text" in text
    assert "member exec" in text


# Each of these ran for a claude member without routing before issue 10, and writes or executes.
ROUTING_HOLES = [
    "sed -n '1e touch /tmp/pwned' f", "sed -n '1w /tmp/out' f", "sed -n 's/a/b/w /tmp/out' f", "sed -n 's/a/b/pe' f",
    "sort -o OUT f", "sort --out=OUT f", "sort --compress-program=sh f", "uniq IN OUT", "tree -o OUT",
    "rg --pre sh TODO", "find . -fprint0 OUT", "git log --output=PATH", "git grep -O'touch /tmp/x' TODO",
    "git grep --open-files-in-pager='touch /tmp/x' TODO", "GIT_EXTERNAL_DIFF='touch /tmp/x #' git diff",
    "X='touch /tmp/x' git --config-env=core.fsmonitor=X status", "git --no-pager --config-env=core.fsmonitor=X status",
    "LESSOPEN='|touch /tmp/x %s' less f", "date -s 2020-01-01", "date --set=2020-01-01", "PATH=/tmp ls",
    "LD_PRELOAD=/tmp/x.so ls", "env LD_PRELOAD=/tmp/x.so ls", "less f",
]


@pytest.mark.parametrize("command", ROUTING_HOLES)
def test_member_routing_holes_are_routed(fleet, menv, command):
    assert "needs your Director" in reason(run_hook("PreToolUse", bash(command), menv)[1])


@pytest.mark.parametrize("command", [
    "sort -t, -k2 f", "uniq -c f", "date -Iseconds", "sed -n '/start/,/end/p' f", "sed 's/a/b/g' f",
    "git log --oneline -n 5", "git --no-pager log -p", "git grep -n TODO", "tree -L 2", "git show HEAD:README.md",
])
def test_member_read_only_options_stay_read_only(fleet, menv, command):
    assert run_hook("PreToolUse", bash(command), menv)[1] is None


def test_member_may_not_run_the_directors_commands(fleet, menv):
    command = f"cafleet --fleet-id {fleet.fleet_id} member list"
    assert "needs your Director" in reason(run_hook("PreToolUse", bash(command), menv)[1])


def test_member_routing_needs_the_member_identity(fleet, denv, menv):
    """The Director (no $CAFLEET_AGENT_ID), a pane whose id does not match, and a non-tmux
    session are left alone."""
    assert run_hook("PreToolUse", bash("npm test"), denv)[1] is None
    wrong = {**menv, "CAFLEET_AGENT_ID": fleet.director}
    assert run_hook("PreToolUse", bash("npm test"), wrong)[1] is None
    outside = {k: v for k, v in menv.items() if not k.startswith("TMUX")}
    assert run_hook("PreToolUse", bash("npm test"), outside)[1] is None


# ------------------------------------------------------------------ stale placements


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_placement_whose_pane_process_is_gone_is_not_the_callers(tmp_path):
    """After a tmux server restart `%N` names a stranger's pane: the placement recorded the old
    pane's process id, and that process is gone, so the stranger's claude is not the member
    (its Bash is not guarded, its Stop is not blocked), while a live recorded pid still is."""
    db = tmp_path / "data" / "cafleet.db"
    pane = {"tmux_socket": SOCKET, "session_name": "main", "window_id": "@1"}
    with Broker.open(str(db)) as b:
        f = b.create_fleet("alpha", coding_agent="claude", placement={**pane, "pane_id": DIRECTOR_PANE})
        fleet_id, director = f["fleet_id"], f["director"]["agent_id"]
        stale = b.register_agent(fleet_id, "old", "d", role="member", parent_agent_id=director,
                                 coding_agent="claude",
                                 placement={**pane, "pane_id": MEMBER_PANE, "pane_pid": _dead_pid()})["agent_id"]
        live = b.register_agent(fleet_id, "new", "d", role="member", parent_agent_id=director,
                                coding_agent="claude",
                                placement={**pane, "pane_id": "%7", "pane_pid": os.getpid()})["agent_id"]
        b.send(fleet_id, director, stale, "x")
        b.send(fleet_id, director, live, "y")
    stop = {"session_id": "s", "hook_event_name": "Stop", "stop_hook_active": False}
    assert run_hook("Stop", stop, hook_env(db, MEMBER_PANE)) == (0, None, "")
    assert run_hook("PreToolUse", bash("tmux kill-server"), hook_env(db, MEMBER_PANE)) == (0, None, "")
    code, out, _ = run_hook("Stop", stop, hook_env(db, "%7"))
    assert code == 0 and out["decision"] == "block" and live in out["reason"]


# ------------------------------------------------------------- a member's hook before its pane is recorded


def _pending_member(fleet) -> str:
    """A member as `member create` registers it: placed on the server, its pane not yet known."""
    with fleet.broker() as b:
        pending = {"tmux_socket": SOCKET, "session_name": "main", "window_id": "@1"}
        return b.register_agent(fleet.fleet_id, "early", "starts fast", role="member",
                                parent_agent_id=fleet.director, coding_agent="claude",
                                placement=pending)["agent_id"]


def _start_hook(event, payload, env):
    """The hook started in the background with `payload` on its stdin; `_finish` collects it."""
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(HOOK), event], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(json.dumps(payload).encode())
    proc.stdin.close()
    return proc


def _finish(proc) -> tuple[int, bytes, bytes]:
    proc.wait(timeout=10)
    return proc.returncode, proc.stdout.read(), proc.stderr.read()


def test_a_members_session_start_before_its_pane_is_recorded_waits_for_it(fleet):
    """tmux starts the agent as it makes the pane; `member create` records the pane id only when
    `split-window` returns. A SessionStart hook in that gap waits for the record (seen in CI:
    the hook found no agent and the member started without its identity)."""
    import time

    early = _pending_member(fleet)
    env = hook_env(fleet.db, "%91", CAFLEET_FLEET_ID=fleet.fleet_id, CAFLEET_AGENT_ID=early)
    proc = _start_hook("SessionStart", session_start("startup"), env)
    time.sleep(0.4)  # the hook is waiting now (it would have answered silence within ~50 ms)
    assert proc.poll() is None
    with fleet.broker() as b:
        b.set_placement(fleet.fleet_id, early, {**Fleet._pl("%91"), "pane_pid": os.getpid()}, "claude")
    rc, out, err = _finish(proc)
    assert rc == 0 and err == b""
    text = context(json.loads(out))
    assert f"your agent id: {early}" in text and '"early"' in text


def test_a_hook_whose_member_is_placed_elsewhere_or_never_placed_stays_silent(fleet, monkeypatch):
    import time

    from cafleet import hooks

    early = _pending_member(fleet)
    # recorded in another pane: the pane lookup decides, no identity for this one
    proc = _start_hook("SessionStart", session_start("startup"),
                       hook_env(fleet.db, "%91", CAFLEET_FLEET_ID=fleet.fleet_id, CAFLEET_AGENT_ID=early))
    time.sleep(0.3)
    with fleet.broker() as b:
        b.set_placement(fleet.fleet_id, early, {**Fleet._pl("%92"), "pane_pid": os.getpid()}, "claude")
    assert _finish(proc) == (0, b"", b"")
    # never recorded (a create that died without rolling back): it gives up after PLACEMENT_WAIT_S
    late = _pending_member(fleet)
    monkeypatch.setattr(hooks, "PLACEMENT_WAIT_S", 0.3)
    t0 = time.monotonic()
    env = hook_env(fleet.db, "%93", CAFLEET_FLEET_ID=fleet.fleet_id, CAFLEET_AGENT_ID=late)
    assert hooks.open_agent(env) == (None, None) and time.monotonic() - t0 >= 0.3
    # no identity in the environment, or an agent with no placement at all: no wait
    with fleet.broker() as b:
        loose = b.register_agent(fleet.fleet_id, "loose", "no pane", role="member",
                                 parent_agent_id=fleet.director)["agent_id"]
    monkeypatch.setattr(hooks, "PLACEMENT_WAIT_S", 30)
    t0 = time.monotonic()
    assert hooks.open_agent(hook_env(fleet.db, "%93")) == (None, None)
    assert hooks.open_agent(hook_env(fleet.db, "%93", CAFLEET_FLEET_ID=fleet.fleet_id,
                                     CAFLEET_AGENT_ID=loose)) == (None, None)
    assert time.monotonic() - t0 < 10
