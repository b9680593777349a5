"""Fleet isolation (CONTRACT.md "Members": "The only boundary is fleet isolation: an id from
another fleet is "not found" (exit 1)"), sender/recipient rules of messages, the generated
permission rules never approving another agent's or another fleet's commands, and the DB's
file modes from the very first write ("dir 0700, file 0600")."""

from __future__ import annotations

import itertools
import os
import shlex
import sqlite3
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cafleet import permissions
from cafleet.broker import Broker
from cafleet.cli import main
from cafleet.demo import install_standin

NOWHERE = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
FAKE_SOCKET = "/tmp/cafleet-isolation-no-such-server.sock"  # never touched: not-found comes first


@pytest.fixture(autouse=True)
def _env(db_path, monkeypatch, tmp_path):
    for var in ("TMUX", "TMUX_PANE", "CAFLEET_BUSY_TIMEOUT_MS"):
        monkeypatch.delenv(var, raising=False)
    # `member create` looks for the backend binary before anything else: give it one.
    bin_dir = install_standin(str(tmp_path / "bin"))
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))


def _fleet(b: Broker, name: str, pane_base: int) -> dict:
    f = b.create_fleet(name, placement={"tmux_socket": FAKE_SOCKET, "session_name": name,
                                        "window_id": f"@{pane_base}", "pane_id": f"%{pane_base}"})
    fid, d = f["fleet_id"], f["director"]["agent_id"]
    members = []
    for i in (1, 2):
        m = b.register_agent(fid, f"{name}-m{i}", "member", role="member", parent_agent_id=d, coding_agent="claude",
                             placement={"tmux_socket": FAKE_SOCKET, "session_name": name,
                                        "window_id": f"@{pane_base}", "pane_id": f"%{pane_base + i}"})
        members.append(m["agent_id"])
    plain = b.register_agent(fid, f"{name}-plain", "plain agent")["agent_id"]
    t_dm = b.send(fid, d, members[0], "director to m1")["task_id"]
    t_md = b.send(fid, members[0], d, "m1 to director")["task_id"]
    t_mm = b.send(fid, members[0], members[1], "m1 to m2")["task_id"]
    return {"fid": fid, "d": d, "m1": members[0], "m2": members[1], "plain": plain,
            "t_dm": t_dm, "t_md": t_md, "t_mm": t_mm}


@pytest.fixture
def fleets(db_path):
    with Broker.open(str(db_path)) as b:
        a = _fleet(b, "alpha", 1)
        bb = _fleet(b, "beta", 10)
    return a, bb


def snapshot(db_path) -> dict:
    conn = sqlite3.connect(str(db_path))
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}
    finally:
        conn.close()


def invoke(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
    assert "Traceback" not in r.output + r.stderr
    return r


# ---------------------------------------------------------------- another fleet's ids

def _cross_fleet_cases(A: dict, B: dict):
    """(name, argv) of every id-taking command run in fleet A with (some of) fleet B's ids."""
    FA = ["--fleet-id", A["fid"]]
    cases = []
    for who in ("d", "m1", "plain"):
        cases += [
            (f"agent show {who}", [*FA, "agent", "show", "--agent-id", B[who]]),
            (f"agent deregister {who}", [*FA, "agent", "deregister", "--agent-id", B[who]]),
            (f"poll as {who}", [*FA, "message", "poll", "--agent-id", B[who]]),
            (f"broadcast as {who}", [*FA, "message", "broadcast", "--agent-id", B[who], "--text", "x"]),
            (f"send as {who}", [*FA, "message", "send", "--agent-id", B[who], "--to", A["d"], "--text", "x"]),
            (f"send to {who}", [*FA, "message", "send", "--agent-id", A["d"], "--to", B[who], "--text", "x"]),
            (f"send {who} to {who}", [*FA, "message", "send", "--agent-id", B[who], "--to", B[who], "--text", "x"]),
            (f"permissions {who}", [*FA, "permissions", "--agent-id", B[who]]),
            (f"permissions write {who}", [*FA, "permissions", "--agent-id", B[who], "--write", "settings.json"]),
            (f"member create under {who}", [*FA, "member", "create", "--name", "x", "--description", "y",
                                            "--agent-id", B[who], "--", "hi"]),
            (f"fleet tick {who}", [*FA, "fleet", "tick", "--agent-id", B[who]]),
        ]
    for who in ("m1", "m2", "d", "plain"):
        cases += [
            (f"member capture {who}", [*FA, "member", "capture", "--member-id", B[who]]),
            (f"member send-input choice {who}", [*FA, "member", "send-input", "--member-id", B[who], "--choice", "1"]),
            (f"member send-input freetext {who}", [*FA, "member", "send-input", "--member-id", B[who],
                                                   "--freetext", "hi"]),
            (f"member exec {who}", [*FA, "member", "exec", "--member-id", B[who], "echo hi"]),
            (f"member ping {who}", [*FA, "member", "ping", "--member-id", B[who]]),
            (f"member delete {who}", [*FA, "member", "delete", "--member-id", B[who], "--timeout", "0"]),
            (f"member delete --force {who}", [*FA, "member", "delete", "--member-id", B[who], "--force"]),
        ]
    for t in ("t_dm", "t_md", "t_mm"):
        for actor in ("d", "m1", "m2"):
            cases += [
                (f"ack {t} as A.{actor}", [*FA, "message", "ack", "--agent-id", A[actor], "--task-id", B[t]]),
                (f"cancel {t} as A.{actor}", [*FA, "message", "cancel", "--agent-id", A[actor], "--task-id", B[t]]),
                (f"show {t} as A.{actor}", [*FA, "message", "show", "--agent-id", A[actor], "--task-id", B[t]]),
            ]
        # B's own agent, B's own task, but in fleet A
        cases += [
            (f"ack {t} as B.m2 in A", [*FA, "message", "ack", "--agent-id", B["m2"], "--task-id", B[t]]),
            (f"show {t} as B.m1 in A", [*FA, "message", "show", "--agent-id", B["m1"], "--task-id", B[t]]),
            (f"cancel {t} as B.m1 in A", [*FA, "message", "cancel", "--agent-id", B["m1"], "--task-id", B[t]]),
        ]
    # one good task id and one of the other fleet's: all or nothing
    cases.append(("ack mixed", [*FA, "message", "ack", "--agent-id", A["m1"], "--task-id", A["t_dm"],
                                "--task-id", B["t_dm"]]))
    return cases


def test_every_id_taking_command_refuses_another_fleets_ids(fleets, db_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    A, B = fleets
    before = snapshot(db_path)
    failures = []
    for name, argv in _cross_fleet_cases(A, B):
        for as_json in (False, True):
            r = invoke(*(["--json"] if as_json else []), *argv)
            said = r.stderr.strip()
            if r.exit_code != 1 or "not found" not in said.lower() or r.stdout.strip():
                failures.append((name, as_json, r.exit_code, r.stdout[:200], said[:300]))
            elif as_json and '"not_found"' not in said:
                failures.append((name, "json code", said[:300]))
    assert failures == []
    assert snapshot(db_path) == before, "a refused cross-fleet command changed the DB"
    assert not (tmp_path / "settings.json").exists()


def test_member_list_filter_with_another_fleets_agent_is_not_found(fleets):
    """Regression: `member list --agent-id` used to print 'No members.' (exit 0) for an agent
    of another fleet or an unknown id."""
    A, B = fleets
    for agent in (B["d"], B["m1"], NOWHERE):
        r = invoke("--fleet-id", A["fid"], "member", "list", "--agent-id", agent)
        assert r.exit_code == 1 and "not found" in r.stderr, (r.exit_code, r.stdout, r.stderr)


def test_fleet_tick_every_with_another_fleets_agent_is_not_found(fleets):
    """Regression: `fleet tick --every N --agent-id <another fleet's agent>` used to print
    'fleet … is gone; stopping' and exit 0 (every NotFound was taken for a deleted fleet)."""
    A, B = fleets
    r = invoke("--fleet-id", A["fid"], "fleet", "tick", "--every", "1", "--agent-id", B["d"])
    assert r.exit_code == 1 and "not found" in r.stderr, (r.exit_code, r.stdout, r.stderr)


def test_another_fleets_fleet_id_with_own_ids(fleets, db_path):
    """Fleet B's --fleet-id with fleet A's agent and task ids: not found, nothing changes."""
    A, B = fleets
    before = snapshot(db_path)
    FB = ["--fleet-id", B["fid"]]
    for argv in (
        [*FB, "message", "poll", "--agent-id", A["m1"]],
        [*FB, "message", "send", "--agent-id", A["d"], "--to", A["m1"], "--text", "x"],
        [*FB, "message", "ack", "--agent-id", A["m1"], "--task-id", A["t_dm"]],
        [*FB, "message", "cancel", "--agent-id", A["d"], "--task-id", A["t_dm"]],
        [*FB, "member", "capture", "--member-id", A["m1"]],
        [*FB, "agent", "deregister", "--agent-id", A["m2"]],
    ):
        r = invoke(*argv)
        assert r.exit_code == 1 and "not found" in r.stderr, (argv, r.exit_code, r.stderr)
    assert snapshot(db_path) == before


def test_deleted_fleet_ids_are_not_found(fleets, db_path):
    A, B = fleets
    assert invoke("fleet", "delete", B["fid"]).exit_code == 0
    for argv in (["--fleet-id", B["fid"], "message", "poll", "--agent-id", B["m1"]],
                 ["--fleet-id", B["fid"], "message", "send", "--agent-id", B["d"], "--to", B["m1"], "--text", "x"],
                 ["--fleet-id", A["fid"], "message", "send", "--agent-id", A["d"], "--to", B["m1"], "--text", "x"]):
        r = invoke(*argv)
        assert r.exit_code == 1 and "not found" in r.stderr, (argv, r.stderr)


# ---------------------------------------------------------------- sender / recipient rules


def test_only_recipient_acks_only_sender_cancels_only_parties_show(fleets, db_path):
    A, _ = fleets
    F = ["--fleet-id", A["fid"]]
    # t_mm: m1 -> m2. Director, plain agent and the sender may not ack it.
    before = snapshot(db_path)
    for actor in ("d", "plain", "m1"):
        r = invoke(*F, "message", "ack", "--agent-id", A[actor], "--task-id", A["t_mm"])
        assert r.exit_code == 1 and "only its recipient" in r.stderr, (actor, r.stderr)
    for actor in ("d", "plain", "m2"):
        r = invoke(*F, "message", "cancel", "--agent-id", A[actor], "--task-id", A["t_mm"])
        assert r.exit_code == 1 and "only its sender" in r.stderr, (actor, r.stderr)
    for actor in ("d", "plain"):
        r = invoke(*F, "message", "show", "--agent-id", A[actor], "--task-id", A["t_mm"])
        assert r.exit_code == 1 and "only to its sender and recipient" in r.stderr, (actor, r.stderr)
    # a mixed ack (one own task, one not) refuses the whole call
    r = invoke(*F, "message", "ack", "--agent-id", A["m2"], "--task-id", A["t_mm"], "--task-id", A["t_dm"])
    assert r.exit_code == 1
    assert snapshot(db_path) == before
    # a poll shows only one's own inbox
    import json

    polled = json.loads(invoke("--json", *F, "message", "poll", "--agent-id", A["m2"]).stdout)["tasks"]
    assert [t["task_id"] for t in polled] == [A["t_mm"]]
    # the rightful parties succeed
    assert invoke(*F, "message", "show", "--agent-id", A["m1"], "--task-id", A["t_mm"]).exit_code == 0
    assert invoke(*F, "message", "ack", "--agent-id", A["m2"], "--task-id", A["t_mm"]).exit_code == 0
    r = invoke(*F, "message", "cancel", "--agent-id", A["m1"], "--task-id", A["t_mm"])
    assert r.exit_code == 1 and "already acked" in r.stderr


# ---------------------------------------------------------------- permission rules


def _fill(template: str, values: dict) -> str:
    for k, v in values.items():
        template = template.replace(k, v)
    return template


VARIABLE_FILLS = {"<task-id>": None, '"<text>"': '"hello there"', "<n>": "3", "<name>": "Zed",
                  '"<description>"': '"does things"', "<backend>": "claude", '"<prompt>"': '"go"',
                  '"<cmd>"': '"ls -la"', "<seconds>": "30"}


def agent_commands(role: str, fleet: dict, me: str, director: str, other_member: str, task: str) -> list[str]:
    """Every literal command of `role`'s table, as agent `me` of `fleet` would write it."""
    out = []
    for row in permissions.templates_for(role):
        values = {permissions.FLEET: fleet["fid"], **{k: v for k, v in VARIABLE_FILLS.items() if v}}
        values["<task-id>"] = task
        if role == permissions.DIRECTOR:
            values[permissions.DIRECTOR_ID] = me
            values[permissions.MEMBER_ID] = other_member
        else:
            values[permissions.MEMBER_ID] = me
            values[permissions.DIRECTOR_ID] = director
        cmd = _fill(row.template, values)
        assert "<" not in cmd, cmd
        if fleet["fid"] in cmd or me in cmd:  # commands carrying no id are no one's in particular
            out.append(cmd)
    return out


def rulesets_of(fleet: dict) -> dict[str, dict]:
    fid = fleet["fid"]
    return {
        "director": permissions.director_rules(fid, fleet["d"]),
        "director per-member": permissions.director_rules(fid, fleet["d"], [fleet["m1"], fleet["m2"]]),
        "m1": permissions.member_rules(fid, fleet["m1"], fleet["d"]),
        "m2": permissions.member_rules(fid, fleet["m2"], fleet["d"]),
    }


def test_rules_of_one_fleet_never_match_another_fleets_commands(fleets):
    A, B = fleets
    commands_b = []
    for who in ("d", "m1", "m2"):
        role = permissions.DIRECTOR if who == "d" else permissions.MEMBER
        for task in (B["t_dm"], B["t_mm"], A["t_dm"]):
            commands_b += agent_commands(role, B, B[who], B["d"], B["m1"], task)
    assert len(commands_b) > 40
    hits = [(name, cmd, permissions.matching_rule(rules, cmd))
            for name, rules in rulesets_of(A).items() for cmd in commands_b
            if permissions.matching_rule(rules, cmd)]
    assert hits == []


def test_rules_of_one_agent_never_match_another_agents_commands(fleets):
    """Within one fleet: a member's rules approve none of the Director's or the other
    member's commands; the Director's rules approve none of a member's (acting as itself)."""
    A, _ = fleets
    rules = rulesets_of(A)
    cmds = {
        "d": agent_commands(permissions.DIRECTOR, A, A["d"], A["d"], A["m1"], A["t_md"]),
        "m1": agent_commands(permissions.MEMBER, A, A["m1"], A["d"], "", A["t_dm"]),
        "m2": agent_commands(permissions.MEMBER, A, A["m2"], A["d"], "", A["t_mm"]),
    }
    # a member acting as another member or as the plain agent
    cmds["plain"] = agent_commands(permissions.MEMBER, A, A["plain"], A["d"], "", A["t_dm"])
    hits = []
    for owner, ruleset in (("m1", rules["m1"]), ("m2", rules["m2"]),
                           ("d", rules["director"]), ("d", rules["director per-member"])):
        for actor, commands in cmds.items():
            if actor == owner:
                continue
            for cmd in commands:
                found = permissions.matching_rule(ruleset, cmd)
                if found:
                    hits.append((owner, actor, cmd, found))
    assert hits == []
    # sanity: each agent's own commands are covered by its own rules
    for owner, ruleset in (("m1", rules["m1"]), ("d", rules["director"])):
        covered = [c for c in cmds[owner] if permissions.matching_rule(ruleset, c)]
        assert covered, owner


SMUGGLES = [
    "--agent-id {other}", "--agent-id={other}", "--to {other} --agent-id {other}", "--member-id {other}",
    "--fleet-id {ofleet}", "&& cafleet --fleet-id {ofleet} message poll --agent-id {other}",
    "; cafleet --fleet-id {ofleet} message poll --agent-id {other}", "$(echo {other})", "--agent-id $OTHER",
    "| tee x", "--text hi --agent-id {other}", "-- --agent-id {other}", "--task-id {otask} --agent-id {other}",
]


def test_prefix_rules_cannot_be_extended_to_act_as_someone_else(fleets, db_path, tmp_path, monkeypatch):
    """Every prefix rule of fleet A, extended with words that try to switch the acting agent
    or the fleet: either the rule does not match, or the CLI refuses it (exit 2) or the
    command still acts only as A's own agent (nothing of anyone else changes)."""
    monkeypatch.chdir(tmp_path)
    A, B = fleets
    before = snapshot(db_path)
    problems = []
    checked = 0
    for name, rules in rulesets_of(A).items():
        for kind in ("allow", "ask"):
            for rule in rules[kind]:
                body, is_prefix = permissions.parse_rule(rule)
                if not is_prefix:
                    continue
                for pattern, (other, ofleet, otask) in itertools.product(
                        SMUGGLES, [(B["m1"], B["fid"], B["t_dm"]), (A["m2"], A["fid"], A["t_mm"]),
                                   (A["plain"], A["fid"], A["t_md"])]):
                    # after the prefix, the rule's own next word (an id) is given first
                    cmd = f"{body} {A['m1'] if body.endswith(('--member-id', '--to')) else A['t_dm']} " \
                          + pattern.format(other=other, ofleet=ofleet, otask=otask)
                    if not permissions.matches(rule, cmd):
                        continue
                    checked += 1
                    argv = shlex.split(cmd)[1:]
                    if kind == "ask" or any(w in argv for w in ("exec", "send-input", "delete", "create", "tick")):
                        # pane-acting (ask) commands are prompted anyway; only parse them
                        continue
                    r = invoke(*argv)
                    if r.exit_code == 0 and other in argv:
                        problems.append((name, rule, cmd, r.exit_code, r.stdout[:200]))
    assert problems == []
    after = snapshot(db_path)
    # nothing of fleet B, and no other agent's last_seen, changed
    for table in ("fleets", "placements"):
        assert after[table] == before[table]
    changed_agents = set(after["agents"]) ^ set(before["agents"])
    for row in changed_agents:
        assert B["fid"] not in row and A["plain"] not in row and A["m2"] not in row, row
    assert not any(B["fid"] in row for row in set(after["tasks"]) ^ set(before["tasks"]))
    assert checked > 0, "no smuggled command matched a rule: the test checked nothing"


# ---------------------------------------------------------------- file modes from the first write


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_first_cli_command_creates_0700_dir_and_0600_file(tmp_path, umask):
    db = tmp_path / "fresh" / "cafleet.db"  # $CAFLEET_DB: only the last directory is created (issue 10)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["CAFLEET_DB"] = str(db)
    p = subprocess.run([sys.executable, "-m", "cafleet", "fleet", "create"], env=env, capture_output=True,
                       text=True, timeout=30, preexec_fn=lambda: os.umask(umask))
    assert p.returncode == 0, p.stderr
    assert _mode(db.parent) == 0o700
    assert _mode(db) == 0o600
    for suffix in ("-wal", "-shm", "-journal"):
        side = str(db) + suffix
        if os.path.exists(side):
            assert _mode(side) == 0o600, suffix


HOLDER = r"""
import os, sys
os.umask(int(sys.argv[1], 8))
from cafleet.broker import Broker
b = Broker.open()
f = b.create_fleet("modes")
b.register_agent(f["fleet_id"], "x", "y")
print("ready", flush=True)
sys.stdin.read()
b.close()
"""


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_wal_and_shm_are_0600_while_a_writer_holds_them(tmp_path, umask):
    """The -wal and -shm files exist only while a connection is open: check them while
    the process that made the first write still holds the DB, under a permissive umask."""
    db = tmp_path / "d" / "cafleet.db"
    env = {**os.environ, "CAFLEET_DB": str(db)}
    p = subprocess.Popen([sys.executable, "-c", HOLDER, oct(umask)[2:]], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.strip() == "ready", p.stderr.read() if p.poll() is not None else line
        assert _mode(db.parent) == 0o700 and _mode(db) == 0o600
        for suffix in ("-wal", "-shm"):
            assert os.path.exists(str(db) + suffix), suffix
            assert _mode(str(db) + suffix) == 0o600, (suffix, oct(_mode(str(db) + suffix)))
        # a second process writing meanwhile does not widen them either
        q = subprocess.run([sys.executable, "-m", "cafleet", "fleet", "create"], env=env, capture_output=True,
                           text=True, timeout=30, preexec_fn=lambda: os.umask(0))
        assert q.returncode == 0, q.stderr
        for path in (str(db), str(db) + "-wal", str(db) + "-shm"):
            assert _mode(path) == 0o600, path
    finally:
        p.stdin.close()
        p.wait(timeout=10)
    assert p.returncode == 0
    leftovers = [n for n in os.listdir(db.parent) if _mode(db.parent / n) & 0o077]
    assert leftovers == []
