"""The `cafleet` command line through click's CliRunner: text and --json output of every
fleet/agent/message command, exit codes, and error reporting (CONTRACT.md "Global flags")."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import uuid

import pytest
from click.testing import CliRunner

import cafleet
from cafleet.broker import MAX_BODY_BYTES, Broker
from cafleet.cli import main
from cafleet.schema import SCHEMA_VERSION

UUID4_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
NOWHERE = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"  # a well-formed id that exists nowhere


@pytest.fixture(autouse=True)
def env(db_path, monkeypatch):
    """A private DB, and no tmux around (so no pane is ever touched)."""
    for var in ("TMUX", "TMUX_PANE", "CAFLEET_BUSY_TIMEOUT_MS"):
        monkeypatch.delenv(var, raising=False)
    return db_path


def run(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    return result


def jrun(*args, code=0):
    result = run("--json", *args, code=code)
    if code == 0:
        return json.loads(result.stdout)
    return result


def lines(result) -> list[str]:
    return result.stdout.splitlines()


def is_uuid4(s) -> bool:
    return isinstance(s, str) and UUID4_RE.match(s) is not None


def stored_tasks(db_path):
    conn = sqlite3.connect(str(db_path))
    try:
        return conn.execute("SELECT task_id, sender_agent_id, recipient_agent_id, body, state FROM tasks ORDER BY seq").fetchall()
    finally:
        conn.close()


@pytest.fixture
def team():
    """A fleet made through the CLI with two registered agents."""
    out = lines(run("fleet", "create", "--name", "team"))
    fid, director = out[0], out[1]
    alice = run("--fleet-id", fid, "agent", "register", "--name", "Alice", "--description", "A").stdout.strip()
    bob = run("--fleet-id", fid, "agent", "register", "--name", "Bob", "--description", "B").stdout.strip()
    return {"fid": fid, "director": director, "alice": alice, "bob": bob}


def send(team, sender, to, text):
    return lines(run("--fleet-id", team["fid"], "message", "send", "--agent-id", team[sender], "--to", team[to], "--text", text))[0]


# ---------------------------------------------------------------- global


def test_version():
    r = run("--version")
    assert r.stdout.strip() == f"cafleet {cafleet.__version__}"


def test_help_lists_the_command_groups():
    out = run("--help").stdout
    for word in ("fleet", "agent", "member", "message", "db", "--fleet-id", "--json"):
        assert word in out


def test_db_init_twice(env):
    first = run("db", "init")
    assert lines(first) == [str(env), f"schema version {SCHEMA_VERSION}"]
    assert oct(os.stat(env).st_mode & 0o777) == "0o600"
    out = lines(run("fleet", "create", "--name", "kept"))
    second = run("db", "init")
    assert lines(second) == lines(first)
    assert jrun("db", "init") == {"path": str(env), "schema_version": SCHEMA_VERSION}
    assert out[0] in run("fleet", "list").stdout


def test_relative_cafleet_db_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAFLEET_DB", "rel.db")
    r = run("db", "init", code=2)
    assert "CAFLEET_DB" in r.stderr and r.stderr.startswith("Error:")
    assert not (tmp_path / "rel.db").exists()


def test_newer_schema_exit_1_file_untouched(env):
    env.parent.mkdir(parents=True)
    conn = sqlite3.connect(str(env))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    digest = hashlib.sha256(env.read_bytes()).hexdigest()
    for args in (["db", "init"], ["fleet", "list"], ["fleet", "create"]):
        r = run(*args, code=1)
        assert r.stderr.splitlines()[-1].startswith("Error:") and "newer" in r.stderr
    r = jrun("fleet", "list", code=1)
    assert json.loads(r.stderr)["error"]["code"] == "database"
    assert hashlib.sha256(env.read_bytes()).hexdigest() == digest


def test_corrupt_db_exit_1(env):
    env.parent.mkdir(parents=True)
    env.write_bytes(os.urandom(8192))
    r = run("fleet", "list", code=1)
    assert r.stderr.startswith("Error:") and str(env) in r.stderr


# ---------------------------------------------------------------- fleet


def test_fleet_create_text_outside_tmux(env):
    r = run("fleet", "create", "--name", "alpha")
    out = lines(r)
    assert is_uuid4(out[0]) and is_uuid4(out[1]) and out[0] != out[1]
    assert "alpha" in r.stdout
    assert "tmux" in r.stderr.lower() and "warning" in r.stderr.lower()
    assert "Traceback" not in r.stderr
    with Broker.open() as b:
        f = b.get_fleet(out[0])
        assert f["name"] == "alpha" and f["director_agent_id"] == out[1]
        d = b.get_agent(out[0], out[1])
        assert d["name"] == "Director" and d["role"] == "director" and d["placement"] is None


def test_fleet_create_json(env):
    r = run("--json", "fleet", "create", "--coding-agent", "codex")
    data = json.loads(r.stdout)  # stdout is pure JSON; the warning went to stderr
    assert "warning" in r.stderr.lower()
    assert is_uuid4(data["fleet_id"]) and data["name"] == f"fleet-{data['fleet_id'][:8]}"
    assert re.match(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z", data["created_at"])
    assert is_uuid4(data["director"]["agent_id"]) and data["director"]["placement"] is None
    with Broker.open() as b:
        assert b.get_fleet(data["fleet_id"])["director_agent_id"] == data["director"]["agent_id"]
        assert b.get_agent(data["fleet_id"], data["director"]["agent_id"])["coding_agent"] == "codex"


def test_fleet_create_bad_backend_is_usage_error():
    r = run("fleet", "create", "--coding-agent", "vim", code=2)
    assert "--coding-agent" in r.stderr
    assert run("--json", "fleet", "list").stdout.strip() == "[]"


def test_fleet_list_text_and_json(team):
    other = lines(run("fleet", "create", "--name", "gone"))[0]
    run("fleet", "delete", other)
    r = run("fleet", "list")
    out = lines(r)
    assert out[0].split() == ["FLEET_ID", "NAME", "DIRECTOR", "MEMBERS", "CREATED_AT"]
    assert len(out) == 2 and out[1].split()[:4] == [team["fid"], "team", team["director"], "0"]
    data = jrun("fleet", "list")
    assert [d["fleet_id"] for d in data] == [team["fid"]]
    assert set(data[0]) >= {"fleet_id", "name", "director_agent_id", "member_count", "created_at"}
    assert data[0]["member_count"] == 0 and data[0]["director_agent_id"] == team["director"]


def test_fleet_list_counts_members(team):
    with Broker.open() as b:
        b.register_agent(team["fid"], "m", role="member", parent_agent_id=team["director"])
    assert jrun("fleet", "list")[0]["member_count"] == 1


def test_fleet_list_empty():
    assert lines(run("fleet", "list")) == ["No active fleets."]
    assert jrun("fleet", "list") == []


def test_fleet_show(team):
    r = run("fleet", "show", team["fid"])
    assert team["fid"] in lines(r)[0] and "team" in lines(r)[0]
    for key in ("director", "alice", "bob"):
        assert team[key] in r.stdout
    assert "Alice" in r.stdout and "Bob" in r.stdout and "Director" in r.stdout
    data = jrun("fleet", "show", team["fid"])
    assert data["fleet_id"] == team["fid"] and data["name"] == "team"
    assert [a["agent_id"] for a in data["agents"]] == [team["director"], team["alice"], team["bob"]]


def test_fleet_delete_and_again(team):
    r = run("fleet", "delete", team["fid"])
    assert "deleted" in r.stdout and re.search(r"\b3 agent", r.stdout)
    r2 = run("fleet", "delete", team["fid"])
    assert "already deleted" in r2.stdout
    data = jrun("fleet", "delete", team["fid"])
    assert data["already_deleted"] is True and data["fleet_id"] == team["fid"]
    run("fleet", "show", team["fid"], code=1)
    assert jrun("fleet", "list") == []
    r = run("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"], code=1)
    assert "not found" in r.stderr


def test_fleet_delete_json_lists_deregistered(team):
    data = jrun("fleet", "delete", team["fid"])
    assert data["already_deleted"] is False
    assert set(data["deregistered"]) == {team["director"], team["alice"], team["bob"]}


# ---------------------------------------------------------------- agent


def test_agent_register_prints_only_the_id(team):
    r = run("--fleet-id", team["fid"], "agent", "register", "--name", "Carol", "--description", "C")
    assert is_uuid4(r.stdout.strip()) and len(lines(r)) == 1 and r.stderr == ""
    data = jrun("--fleet-id", team["fid"], "agent", "register", "--name", "Dan", "--description", "D")
    assert is_uuid4(data["agent_id"]) and data["name"] == "Dan" and data["description"] == "D"


def test_agent_list_and_show(team):
    fid = team["fid"]
    r = run("--fleet-id", fid, "agent", "list")
    out = lines(r)
    assert out[0].split()[:3] == ["AGENT_ID", "ROLE", "NAME"]
    assert [ln.split()[0] for ln in out[1:]] == [team["director"], team["alice"], team["bob"]]
    data = jrun("--fleet-id", fid, "agent", "list")
    assert [a["name"] for a in data] == ["Director", "Alice", "Bob"]
    s = run("--fleet-id", fid, "agent", "show", "--agent-id", team["alice"])
    assert lines(s)[0] == team["alice"] and "name: Alice" in s.stdout and "status: active" in s.stdout
    d = jrun("--fleet-id", fid, "agent", "show", "--agent-id", team["alice"])
    assert d["agent_id"] == team["alice"] and d["placement"] is None


def test_agent_deregister(team):
    fid = team["fid"]
    r = run("--fleet-id", fid, "agent", "deregister", "--agent-id", team["bob"])
    assert team["bob"] in r.stdout and "deregistered" in r.stdout
    assert team["bob"] not in run("--fleet-id", fid, "agent", "list").stdout
    assert "status: deregistered" in run("--fleet-id", fid, "agent", "show", "--agent-id", team["bob"]).stdout
    r = run("--fleet-id", fid, "agent", "deregister", "--agent-id", team["bob"], code=1)
    assert r.stderr.startswith("Error:")


def test_root_director_cannot_be_deregistered(team):
    r = run("--fleet-id", team["fid"], "agent", "deregister", "--agent-id", team["director"], code=1)
    assert r.stderr.startswith("Error:") and "fleet delete" in r.stderr
    r = jrun("--fleet-id", team["fid"], "agent", "deregister", "--agent-id", team["director"], code=1)
    assert json.loads(r.stderr)["error"]["code"] == "forbidden"
    assert team["director"] in run("--fleet-id", team["fid"], "agent", "list").stdout


# ---------------------------------------------------------------- message


def test_message_send_text(team, env):
    body = "secret plan: attack at dawn"
    r = run("--fleet-id", team["fid"], "message", "send", "--agent-id", team["alice"], "--to", team["bob"], "--text", body)
    out = lines(r)
    assert len(out) == 2 and is_uuid4(out[0])
    assert "notified" in out[1] and "no pane" in out[1]
    assert body not in r.stdout and "attack" not in r.stdout
    assert stored_tasks(env) == [(out[0], team["alice"], team["bob"], body, "input_required")]


def test_message_send_json(team):
    d = jrun("--fleet-id", team["fid"], "message", "send", "--agent-id", team["alice"], "--to", team["bob"], "--text", "hi")
    assert is_uuid4(d["task_id"]) and d["state"] == "input_required" and d["body"] == "hi"
    assert (d["sender_agent_id"], d["recipient_agent_id"]) == (team["alice"], team["bob"])
    assert d["push"]["notified"] is False


def test_message_send_self_is_delivered(team):
    t = send(team, "alice", "alice", "note to self")
    assert [x["task_id"] for x in jrun("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["alice"])["tasks"]] == [t]


def test_message_broadcast(team, env):
    r = run("--fleet-id", team["fid"], "message", "broadcast", "--agent-id", team["director"], "--text", "standup")
    out = lines(r)
    assert len(out) == 2
    ids = [ln.split()[0] for ln in out]
    assert all(is_uuid4(i) for i in ids) and len(set(ids)) == 2
    assert {"Alice", "Bob"} == {ln.split()[2].rstrip(":") for ln in out}
    rows = stored_tasks(env)
    assert sorted(r[2] for r in rows) == sorted([team["alice"], team["bob"]])
    assert {r[3] for r in rows} == {"standup"}
    data = jrun("--fleet-id", team["fid"], "message", "broadcast", "--agent-id", team["alice"], "--text", "x")
    assert sorted(d["recipient_agent_id"] for d in data) == sorted([team["director"], team["bob"]])


def test_message_broadcast_alone():
    fid, director = lines(run("fleet", "create"))[:2]
    r = run("--fleet-id", fid, "message", "broadcast", "--agent-id", director, "--text", "anyone?")
    assert len(lines(r)) == 1 and "nothing sent" in r.stdout
    assert jrun("--fleet-id", fid, "message", "broadcast", "--agent-id", director, "--text", "anyone?") == []


def test_poll_empty_inbox_is_one_short_line(team):
    r = run("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"])
    assert len(lines(r)) == 1 and 0 < len(r.stdout.strip()) <= 60 and r.stderr == ""
    assert jrun("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"]) == {"tasks": [], "more": 0}


def test_poll_newest_first_with_full_bodies(team):
    t1 = send(team, "alice", "bob", "first line\nsecond line")
    t2 = send(team, "director", "bob", "second message")
    r = run("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"])
    out = r.stdout
    assert out.index(t2) < out.index(t1)
    assert "first line\nsecond line" in out and "second message" in out
    assert "Alice" in out and team["alice"] in out
    data = jrun("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"])["tasks"]
    assert [d["task_id"] for d in data] == [t2, t1]
    assert data[1]["body"] == "first line\nsecond line" and data[1]["sender_name"] == "Alice"
    assert data[0]["sender_agent_id"] == team["director"]
    limited = jrun("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"], "--limit", "1")
    assert [d["task_id"] for d in limited["tasks"]] == [t2] and limited["more"] == 1
    run("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"], "--limit", "0", code=2)


def test_ack_multiple_task_ids(team, env):
    ids = [send(team, "alice", "bob", f"m{i}") for i in range(3)]
    r = run("--fleet-id", team["fid"], "message", "ack", "--agent-id", team["bob"], "--task-id", ids[0], "--task-id", ids[1])
    assert lines(r) == [f"acked {ids[0]}", f"acked {ids[1]}"]
    assert [d["task_id"] for d in jrun("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"])["tasks"]] == [ids[2]]
    again = jrun("--fleet-id", team["fid"], "message", "ack", "--agent-id", team["bob"], "--task-id", ids[0], "--task-id", ids[2])
    assert again == [{"task_id": ids[0], "state": "completed", "already_acked": True},
                     {"task_id": ids[2], "state": "completed", "already_acked": False}]
    assert {r[4] for r in stored_tasks(env)} == {"completed"}


def test_ack_by_non_recipient_and_mixed_batch(team, env):
    mine = send(team, "alice", "bob", "for bob")
    theirs = send(team, "bob", "alice", "for alice")
    r = run("--fleet-id", team["fid"], "message", "ack", "--agent-id", team["bob"], "--task-id", mine, "--task-id", theirs, code=1)
    assert r.stderr.startswith("Error:")
    assert {r[0]: r[4] for r in stored_tasks(env)} == {mine: "input_required", theirs: "input_required"}


def test_cancel_and_show(team, env):
    t = send(team, "alice", "bob", "never mind")
    r = run("--fleet-id", team["fid"], "message", "show", "--agent-id", team["bob"], "--task-id", t)
    assert lines(r)[0] == f"task {t} (input_required)" and lines(r)[-1] == "never mind"
    run("--fleet-id", team["fid"], "message", "show", "--agent-id", team["director"], "--task-id", t, code=1)
    run("--fleet-id", team["fid"], "message", "cancel", "--agent-id", team["bob"], "--task-id", t, code=1)
    r = run("--fleet-id", team["fid"], "message", "cancel", "--agent-id", team["alice"], "--task-id", t)
    assert lines(r) == [f"canceled {t}"]
    d = jrun("--fleet-id", team["fid"], "message", "show", "--agent-id", team["alice"], "--task-id", t)
    assert d["state"] == "canceled" and d["body"] == "never mind" and d["task_id"] == t
    r = jrun("--fleet-id", team["fid"], "message", "ack", "--agent-id", team["bob"], "--task-id", t, code=1)
    assert json.loads(r.stderr)["error"]["code"] == "conflict"
    t2 = send(team, "alice", "bob", "read me")
    run("--fleet-id", team["fid"], "message", "ack", "--agent-id", team["bob"], "--task-id", t2)
    r = jrun("--fleet-id", team["fid"], "message", "cancel", "--agent-id", team["alice"], "--task-id", t2, code=1)
    assert json.loads(r.stderr)["error"]["code"] == "conflict"
    assert jrun("--fleet-id", team["fid"], "message", "cancel", "--agent-id", team["bob"], "--task-id", t2,
                code=1).stderr.count("forbidden") == 1


@pytest.mark.parametrize("text", ["", "   ", "\n", "a" * (MAX_BODY_BYTES + 1), "é" * (MAX_BODY_BYTES // 2 + 1)],
                         ids=["empty", "spaces", "newline", "too-big", "too-big-multibyte"])
def test_bad_body_is_a_usage_error_and_stores_nothing(team, env, text):
    r = run("--fleet-id", team["fid"], "message", "send", "--agent-id", team["alice"], "--to", team["bob"], "--text", text, code=2)
    assert r.stderr.startswith("Error:") and "--text" in r.stderr
    run("--fleet-id", team["fid"], "message", "broadcast", "--agent-id", team["alice"], "--text", text, code=2)
    assert stored_tasks(env) == []


def test_body_at_the_limit_is_accepted(team, env):
    text = "😀" * (MAX_BODY_BYTES // 4)
    t = send(team, "alice", "bob", text)
    assert stored_tasks(env)[0][0] == t and stored_tasks(env)[0][3] == text


def test_unicode_body_round_trips(team):
    body = "שלום 👩‍👩‍👧 e\u0301 \u202eevil\u202c\ttab\r\nCRLF \x1b[31mred\x1b[0m ⏎ \U0010ffff"
    t = send(team, "alice", "bob", body)
    [d] = jrun("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"])["tasks"]
    assert d["task_id"] == t and d["body"] == body
    # text mode (CliRunner folds \r\n; ANSI escapes are covered in test_cli_subprocess.py)
    printable = "שלום 👩‍👩‍👧 e\u0301 \u202eevil\u202c\ttab\nnext ⏎ \U0010ffff"
    send(team, "alice", "bob", printable)
    out = run("--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"]).stdout
    assert printable in out and out.index(printable) < out.index("CRLF")  # newest first


# ---------------------------------------------------------------- errors

FLEET_SCOPED = [
    ["agent", "register", "--name", "x", "--description", "y"],
    ["agent", "list"],
    ["agent", "show", "--agent-id", NOWHERE],
    ["agent", "deregister", "--agent-id", NOWHERE],
    ["member", "list"],
    ["member", "capture", "--member-id", NOWHERE],
    ["member", "ping", "--member-id", NOWHERE],
    ["message", "send", "--agent-id", NOWHERE, "--to", NOWHERE, "--text", "x"],
    ["message", "broadcast", "--agent-id", NOWHERE, "--text", "x"],
    ["message", "poll", "--agent-id", NOWHERE],
    ["message", "ack", "--agent-id", NOWHERE, "--task-id", NOWHERE],
    ["message", "cancel", "--agent-id", NOWHERE, "--task-id", NOWHERE],
    ["message", "show", "--agent-id", NOWHERE, "--task-id", NOWHERE],
]


@pytest.mark.parametrize("args", FLEET_SCOPED, ids=lambda a: " ".join(a[:2]))
def test_missing_fleet_id_says_how_to_get_one(args):
    r = run(*args, code=2)
    assert r.stderr.startswith("Error:") and "--fleet-id" in r.stderr
    assert "fleet create" in r.stderr and "fleet list" in r.stderr
    assert r.stdout == ""
    j = jrun(*args, code=2)
    err = json.loads(j.stderr)["error"]
    assert err["code"] == "usage" and "--fleet-id" in err["message"] and j.stdout == ""


def test_malformed_fleet_id(team):
    for bad in ("nope", team["fid"].upper(), team["fid"][:-1], str(uuid.uuid1())):
        r = run("--fleet-id", bad, "agent", "list", code=2)
        assert "--fleet-id" in r.stderr and r.stderr.startswith("Error:")
    r = run("fleet", "show", "nope", code=2)
    assert "FLEET_ID" in r.stderr
    run("fleet", "delete", "nope", code=2)


@pytest.mark.parametrize("flag,args", [
    ("--agent-id", ["agent", "show", "--agent-id", "{bad}"]),
    ("--agent-id", ["agent", "deregister", "--agent-id", "{bad}"]),
    ("--agent-id", ["message", "poll", "--agent-id", "{bad}"]),
    ("--agent-id", ["message", "send", "--agent-id", "{bad}", "--to", "{bob}", "--text", "x"]),
    ("--to", ["message", "send", "--agent-id", "{alice}", "--to", "{bad}", "--text", "x"]),
    ("--task-id", ["message", "ack", "--agent-id", "{bob}", "--task-id", "{bad}"]),
    ("--task-id", ["message", "ack", "--agent-id", "{bob}", "--task-id", NOWHERE, "--task-id", "{bad}"]),
    ("--task-id", ["message", "cancel", "--agent-id", "{alice}", "--task-id", "{bad}"]),
    ("--task-id", ["message", "show", "--agent-id", "{alice}", "--task-id", "{bad}"]),
    ("--member-id", ["member", "capture", "--member-id", "{bad}"]),
    ("--member-id", ["member", "ping", "--member-id", "{bad}"]),
    ("--member-id", ["member", "exec", "--member-id", "{bad}", "ls"]),
    ("--member-id", ["member", "delete", "--member-id", "{bad}", "--force"]),
    ("--member-id", ["member", "send-input", "--member-id", "{bad}", "--choice", "1"]),
], ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
@pytest.mark.parametrize("bad", ["not-a-uuid", "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D", ""])
def test_malformed_ids_name_the_flag(team, env, flag, args, bad):
    filled = [a.format(bad=bad, **team) for a in args]
    before = stored_tasks(env)
    r = run("--fleet-id", team["fid"], *filled, code=2)
    assert flag in r.stderr and r.stdout == ""
    j = jrun("--fleet-id", team["fid"], *filled, code=2)
    err = json.loads(j.stderr)["error"]
    assert err["code"] == "usage" and flag in err["message"]
    assert stored_tasks(env) == before


@pytest.mark.parametrize("args", [
    ["agent", "show", "--agent-id", NOWHERE],
    ["agent", "deregister", "--agent-id", NOWHERE],
    ["message", "poll", "--agent-id", NOWHERE],
    ["message", "send", "--agent-id", "{alice}", "--to", NOWHERE, "--text", "x"],
    ["message", "send", "--agent-id", NOWHERE, "--to", "{bob}", "--text", "x"],
    ["message", "ack", "--agent-id", "{bob}", "--task-id", NOWHERE],
    ["message", "cancel", "--agent-id", "{alice}", "--task-id", NOWHERE],
    ["message", "show", "--agent-id", "{alice}", "--task-id", NOWHERE],
], ids=lambda a: " ".join(a[:2]) + (" " + a[2] if a[2].startswith("--") else ""))
def test_not_found_is_exit_1(team, args):
    filled = [a.format(**team) for a in args]
    r = run("--fleet-id", team["fid"], *filled, code=1)
    assert r.stderr.startswith("Error:") and "not found" in r.stderr and r.stdout == ""
    j = jrun("--fleet-id", team["fid"], *filled, code=1)
    assert json.loads(j.stderr) == {"error": {"code": "not_found", "message": json.loads(j.stderr)["error"]["message"]}}


def test_unknown_fleet_is_exit_1():
    for args in (["--fleet-id", NOWHERE, "agent", "list"], ["fleet", "show", NOWHERE], ["fleet", "delete", NOWHERE]):
        r = run(*args, code=1)
        assert "not found" in r.stderr


def test_agent_of_another_fleet_is_not_found(team):
    other_fid, other_dir = lines(run("fleet", "create"))[:2]
    r = run("--fleet-id", team["fid"], "message", "send", "--agent-id", team["alice"], "--to", other_dir, "--text", "x", code=1)
    assert "not found" in r.stderr
    run("--fleet-id", team["fid"], "agent", "show", "--agent-id", other_dir, code=1)
    run("--fleet-id", other_fid, "message", "poll", "--agent-id", team["bob"], code=1)


def test_click_usage_errors_exit_2_and_json():
    r = run("--fleet-id", NOWHERE, "message", "send", "--agent-id", NOWHERE, "--to", NOWHERE, code=2)
    assert "--text" in r.stderr
    j = jrun("--fleet-id", NOWHERE, "message", "poll", code=2)
    err = json.loads(j.stderr)["error"]
    assert err["code"] == "usage" and "--agent-id" in err["message"]
    r = run("no-such-command", code=2)
    assert "no-such-command" in r.stderr
    j = jrun("fleet", "frobnicate", code=2)
    assert "error" in json.loads(j.stderr)


def test_json_error_stdout_is_empty_and_stderr_is_one_object(team):
    j = jrun("--fleet-id", team["fid"], "agent", "show", "--agent-id", NOWHERE, code=1)
    assert j.stdout == ""
    obj = json.loads(j.stderr)
    assert set(obj) == {"error"} and set(obj["error"]) == {"code", "message"}
    assert isinstance(obj["error"]["message"], str) and obj["error"]["message"]


def test_json_keeps_line_separators_and_c1_controls_escaped(team):
    """`str.splitlines` (and some terminals) break on NEL U+0085 and U+2028/U+2029, which
    `json.dumps(ensure_ascii=False)` leaves raw: the one-line error object and the poll output
    escape them (hypothesis found `--json` + U+0085 splitting the error line in two)."""
    odd = "a\x85b\u2028c\u2029d\x9be"
    j = jrun("member", "exec", "--member-id", NOWHERE, odd, "--bogus", code=2)  # quoted raw
    [line] = j.stderr.splitlines()
    assert odd in json.loads(line)["error"]["message"]
    send(team, "alice", "bob", odd)
    r = run("--json", "--fleet-id", team["fid"], "message", "poll", "--agent-id", team["bob"])
    assert not any(ch in r.stdout for ch in "\x85\u2028\u2029\x9b") and "\\u2028" in r.stdout
    assert json.loads(r.stdout)["tasks"][0]["body"] == odd


def test_usage_errors_are_reported_before_the_db_is_touched(env):
    env.parent.mkdir(parents=True)
    conn = sqlite3.connect(str(env))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    r = run("--fleet-id", NOWHERE, "message", "poll", "--agent-id", "not-a-uuid", code=2)
    assert "--agent-id" in r.stderr


def test_missing_fleet_id_does_not_create_the_db(env):
    run("message", "poll", "--agent-id", NOWHERE, code=2)
    assert not env.exists()


def test_bad_busy_timeout_env_is_a_clean_error(monkeypatch):
    monkeypatch.setenv("CAFLEET_BUSY_TIMEOUT_MS", "soon")
    result = CliRunner().invoke(main, ["fleet", "list"])
    assert result.exit_code == 2 and result.stderr.startswith("Error:") and "CAFLEET_BUSY_TIMEOUT_MS" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_foreign_sqlite_file_is_a_clean_error(env):
    env.parent.mkdir(parents=True)
    conn = sqlite3.connect(str(env))
    conn.execute("CREATE TABLE notes (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(main, ["fleet", "list"])
    assert result.exit_code == 1 and result.stderr.startswith("Error:")
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ---------------------------------------------------------------- inside tmux


def test_fleet_create_inside_tmux_records_the_calling_pane(tmux_server, monkeypatch):
    import subprocess

    sock = tmux_server.socket_path
    subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-s", "dir", "-x", "120", "-y", "40"],
                   check=True)
    fmt = "#{pane_id} #{window_id} #{session_name}"
    pane, window, session = subprocess.run(["tmux", "-S", sock, "display-message", "-p", "-t", "dir", fmt],
                                           check=True, capture_output=True, text=True).stdout.split()
    monkeypatch.setenv("TMUX", f"{sock},12345,0")
    monkeypatch.setenv("TMUX_PANE", pane)
    r = run("--json", "fleet", "create", "--name", "in-tmux")
    assert "warning" not in r.stderr.lower()
    data = json.loads(r.stdout)
    p = data["director"]["placement"]
    assert (p["pane_id"], p["window_id"], p["session_name"]) == (pane, window, session)
    with Broker.open() as b:
        stored = b.get_agent(data["fleet_id"], data["director"]["agent_id"])["placement"]
    assert (stored["pane_id"], stored["tmux_socket"]) == (pane, sock)
    # text mode: the Director line names its pane (one fleet per pane: the first goes first)
    run("fleet", "delete", data["fleet_id"])
    out = lines(run("fleet", "create"))
    assert pane in out[3]

    # a stale $TMUX_PANE (pane gone) is a clean runtime error, and nothing is created
    monkeypatch.setenv("TMUX_PANE", "%999")
    before = jrun("fleet", "list")
    r = run("fleet", "create", code=1)
    assert r.stderr.startswith("Error:") and "%999" in r.stderr
    assert jrun("fleet", "list") == before


def test_send_pushes_into_a_live_pane_and_never_depends_on_it(tmux_server, env):
    import subprocess
    import time

    sock = tmux_server.socket_path
    subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-s", "m", "-x", "200", "-y", "50", "cat"],
                   check=True)
    pane, window = subprocess.run(["tmux", "-S", sock, "display-message", "-p", "-t", "m", "#{pane_id} #{window_id}"],
                                  check=True, capture_output=True, text=True).stdout.split()
    fid, director = lines(run("fleet", "create"))[:2]
    with Broker.open() as b:
        placed = b.register_agent(fid, "Paned", role="member", parent_agent_id=director, coding_agent="claude",
                                  placement={"tmux_socket": sock, "session_name": "m", "window_id": window, "pane_id": pane})
        ghost = b.register_agent(fid, "Ghost", role="member", parent_agent_id=director, coding_agent="claude",
                                 placement={"tmux_socket": "/tmp/cafleet-no-such-server/sock", "session_name": "x",
                                            "window_id": "@1", "pane_id": "%1"})
    # a pane cafleet did not tag as this agent's is never typed into (the keystroke gate)
    r = run("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", placed["agent_id"], "--text", "nope")
    untagged, note = lines(r)
    assert note.startswith("no pane notified") and f"pane {pane} is not member" in note, note
    subprocess.run(["tmux", "-S", sock, "set-option", "-p", "-t", pane, "@cafleet-agent", placed["agent_id"]], check=True)
    r = run("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", placed["agent_id"], "--text", "look here")
    task, note = lines(r)
    assert note == f"notified pane {pane}"
    deadline = time.monotonic() + 5
    screen = ""
    while task not in screen and time.monotonic() < deadline:
        screen = subprocess.run(["tmux", "-S", sock, "capture-pane", "-p", "-J", "-t", pane], capture_output=True,
                                text=True).stdout
        time.sleep(0.05)
    assert task in screen and "look here" in screen

    # a pane on a server that does not exist: delivered all the same, just not pushed
    r = run("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", ghost["agent_id"], "--text", "boo")
    t2, note = lines(r)
    assert note.startswith("no pane notified")
    # the live pane dies: still delivered
    subprocess.run(["tmux", "-S", sock, "kill-pane", "-t", pane], check=True)
    r = run("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", placed["agent_id"], "--text", "again")
    t3, note = lines(r)
    assert note.startswith("no pane notified")
    stored = {row[0]: row for row in stored_tasks(env)}
    assert set(stored) == {untagged, task, t2, t3} and {row[4] for row in stored.values()} == {"input_required"}
    polled = jrun("--fleet-id", fid, "message", "poll", "--agent-id", placed["agent_id"])["tasks"]
    assert [p["body"] for p in polled] == ["again", "look here", "nope"]


def test_fleet_delete_refuses_live_member_panes_unless_forced(tmux_server):
    import subprocess

    sock = tmux_server.socket_path
    subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-s", "d", "-x", "200", "-y", "50", "cat"],
                   check=True)
    subprocess.run(["tmux", "-S", sock, "split-window", "-d", "-t", "d", "cat"], check=True)
    panes = subprocess.run(["tmux", "-S", sock, "list-panes", "-t", "d", "-F", "#{pane_id} #{window_id}"],
                           check=True, capture_output=True, text=True).stdout.split("\n")
    (p1, window), (p2, _) = panes[0].split(), panes[1].split()
    fid, director = lines(run("fleet", "create"))[:2]
    with Broker.open() as b:
        m = b.register_agent(fid, "Worker", role="member", parent_agent_id=director, coding_agent="claude",
                             placement={"tmux_socket": sock, "session_name": "d", "window_id": window, "pane_id": p2})
    r = run("fleet", "delete", fid, code=1)
    assert r.stderr.startswith("Error:") and m["agent_id"] in r.stderr and p2 in r.stderr
    assert [f["fleet_id"] for f in jrun("fleet", "list")] == [fid]  # nothing deleted
    live = subprocess.run(["tmux", "-S", sock, "list-panes", "-t", "d", "-F", "#{pane_id}"],
                          capture_output=True, text=True).stdout.split()
    assert sorted(live) == sorted([p1, p2])

    data = jrun("fleet", "delete", fid, "--force")
    assert data["already_deleted"] is False and data["killed_panes"] == [p2]
    live = subprocess.run(["tmux", "-S", sock, "list-panes", "-t", "d", "-F", "#{pane_id}"],
                          capture_output=True, text=True).stdout.split()
    assert live == [p1]  # only the member's pane was killed
    assert jrun("fleet", "list") == []
    assert jrun("fleet", "delete", fid)["already_deleted"] is True
