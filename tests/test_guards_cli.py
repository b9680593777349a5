"""The CLI and broker under careless and hostile input (issue 10): the poll page, numbers
that are not numbers, files that never end, `--` and `--json` placement, large bodies from a
file, errors that say what to do, invisible characters in previews, and one fleet per pane.

Everything runs the real `cafleet` in a subprocess (so the click-free fast path runs where
it would), against a private DB; the pane cases use a private tmux server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cafleet.broker import DEFAULT_POLL_LIMIT, MAX_BODY_BYTES, Broker
from cafleet.keystrokes import preview_lines

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_members import CAFLEET, rig  # noqa: E402,F401  (fixtures)


@pytest.fixture
def env(db_path):
    e = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE") and not k.startswith("CAFLEET_")}
    e["CAFLEET_DB"] = str(db_path)
    return e


def cafleet(env, *args, code=0, stdin=None, timeout=30):
    p = subprocess.run(CAFLEET + [str(a) for a in args], capture_output=True, text=True, env=env, input=stdin,
                       timeout=timeout)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    if code is not None:
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
    return p


@pytest.fixture
def team(db_path, env):
    with Broker.open(str(db_path)) as b:
        f = b.create_fleet("t")
        fid, d = f["fleet_id"], f["director"]["agent_id"]
        m = b.register_agent(fid, "m", "member", role="member", parent_agent_id=d)["agent_id"]
    return {"fid": fid, "d": d, "m": m, "env": env, "db": db_path}


def send_many(team, n, body=lambda i: f"report {i}"):
    with Broker.open(str(team["db"])) as b:
        return [b.send(team["fid"], team["m"], team["d"], body(i))["task_id"] for i in range(n)]


# ------------------------------------------------------------------ message poll: a bounded page


def test_poll_default_page_says_how_many_more_wait_and_every_task_is_read_eventually(team):
    ids = send_many(team, DEFAULT_POLL_LIMIT + 5)
    F, d = ["--fleet-id", team["fid"]], team["d"]
    text = cafleet(team["env"], *F, "message", "poll", "--agent-id", d).stdout
    assert text.startswith(f"{DEFAULT_POLL_LIMIT} of {DEFAULT_POLL_LIMIT + 5} un-acked messages, newest first")
    assert "5 older wait" in text and text.rstrip().endswith("then run this poll again.")
    assert ids[-1] in text and ids[4] not in text
    page = json.loads(cafleet(team["env"], "--json", *F, "message", "poll", "--agent-id", d).stdout)
    assert [t["task_id"] for t in page["tasks"]] == ids[::-1][:DEFAULT_POLL_LIMIT] and page["more"] == 5
    everything = json.loads(cafleet(team["env"], "--json", *F, "message", "poll", "--agent-id", d, "--limit", "100").stdout)
    assert len(everything["tasks"]) == DEFAULT_POLL_LIMIT + 5 and everything["more"] == 0
    # the tick's way: ack the page, poll again, until nothing waits
    seen = []
    while True:
        page = json.loads(cafleet(team["env"], "--json", *F, "message", "poll", "--agent-id", d).stdout)
        if not page["tasks"]:
            break
        seen += [t["task_id"] for t in page["tasks"]]
        acks = [a for t in page["tasks"] for a in ("--task-id", t["task_id"])]
        cafleet(team["env"], *F, "message", "ack", "--agent-id", d, *acks)
    assert sorted(seen) == sorted(ids)


def test_poll_default_page_is_bounded_in_bytes_too(team):
    big = "x" * (MAX_BODY_BYTES - 10)
    ids = send_many(team, 3, lambda i: big)
    page = json.loads(cafleet(team["env"], "--json", "--fleet-id", team["fid"], "message", "poll", "--agent-id",
                              team["d"]).stdout)
    assert [t["task_id"] for t in page["tasks"]] == [ids[2]] and page["more"] == 2
    assert page["tasks"][0]["body"] == big  # full bodies, never cut


# ------------------------------------------------------------------ numbers that are not numbers


@pytest.mark.parametrize("value", ["²", "10" + "0" * 22, "1001", "0", "-1", "nan"])
def test_poll_limit_out_of_range_is_a_usage_error(team, value):
    p = cafleet(team["env"], "--fleet-id", team["fid"], "message", "poll", "--agent-id", team["d"], "--limit", value,
                code=2)
    assert p.stderr.startswith("Error: ")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e400", "86401"])
def test_member_delete_timeout_must_be_finite(team, value):
    p = cafleet(team["env"], "--fleet-id", team["fid"], "member", "delete", "--member-id", team["m"],
                "--timeout", value, code=2)
    assert "--timeout" in p.stderr and "seconds" in p.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "86401"])
def test_member_exec_wait_must_be_finite(team, value):
    """`--wait nan` would wait forever (`elapsed >= nan` is never true)."""
    p = cafleet(team["env"], "--fleet-id", team["fid"], "member", "exec", "--member-id", team["m"],
                "--wait", value, "true", code=2, timeout=10)
    assert "--wait" in p.stderr and "seconds" in p.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "0.5"])
def test_fleet_tick_every_must_be_finite(team, value):
    p = cafleet(team["env"], "--fleet-id", team["fid"], "fleet", "tick", "--every", value, code=2, timeout=10)
    assert "--every" in p.stderr


# ------------------------------------------------------------------ files that never end


def test_permissions_write_to_a_device_is_refused_at_once(team):
    p = cafleet(team["env"], "--fleet-id", team["fid"], "permissions", "--agent-id", team["d"], "--write",
                "/dev/full", code=2, timeout=20)
    assert "/dev/full" in p.stderr and "regular file" in p.stderr


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/full"])
def test_prompt_file_that_never_ends_is_refused(team, path):
    p = cafleet(team["env"], "--fleet-id", team["fid"], "member", "create", "--name", "x", "--description", "y",
                "--prompt-file", path, code=2, timeout=20)
    assert "regular file" in p.stderr


def test_prompt_file_that_is_a_fifo_is_refused_without_blocking(team, tmp_path):
    fifo = tmp_path / "prompt.fifo"
    os.mkfifo(fifo)
    p = cafleet(team["env"], "--fleet-id", team["fid"], "member", "create", "--name", "x", "--description", "y",
                "--prompt-file", fifo, code=2, timeout=20)
    assert "regular file" in p.stderr


# ------------------------------------------------------------------ `--` and `--json` placement


def test_dashdash_before_the_subcommand_is_refused_and_nothing_is_sent(team):
    F = ["--fleet-id", team["fid"]]
    p = cafleet(team["env"], *F, "--", "message", "send", "--agent-id", team["m"], "--to", team["d"],
                "--text", "hi", "--agent-id", team["d"], code=2)
    assert "`--`" in p.stderr
    for argv in (["--", "fleet", "list"], [*F, "member", "--", "list"], ["fleet", "--", "list"]):
        assert "`--`" in cafleet(team["env"], *argv, code=2).stderr
    with Broker.open(str(team["db"])) as b:
        assert b.unread_count(team["d"]) == 0 and b.unread_count(team["m"]) == 0


def test_dashdash_before_a_member_create_prompt_is_still_the_prompt(team):
    """`--` among the subcommand's own arguments keeps its meaning: `member create … -- PROMPT`
    reaches member creation (which then fails outside tmux, after parsing)."""
    p = cafleet(team["env"], "--fleet-id", team["fid"], "member", "create", "--name", "x", "--description", "y",
                "--", "--agent-id is just prompt text", code=None)
    assert "`--`" not in p.stderr and "unexpected extra" not in p.stderr.lower()


def test_json_after_the_subcommand_is_the_same_as_before(team):
    env, F = team["env"], ["--fleet-id", team["fid"]]
    created = json.loads(cafleet(env, "fleet", "create", "--json").stdout)
    assert {"fleet_id", "director"} <= set(created)
    send_many(team, 2)
    for tail in (["--json"], []):
        before = cafleet(env, *(["--json"] if not tail else []), *F, "message", "poll", "--agent-id", team["d"], *tail)
        assert json.loads(before.stdout)["more"] == 0
    after = cafleet(env, *F, "member", "list", "--json").stdout
    assert json.loads(after) == json.loads(cafleet(env, "--json", *F, "member", "list").stdout)
    # a body that reads "--json" is a body
    out = cafleet(env, *F, "message", "send", "--agent-id", team["d"], "--to", team["m"], "--text", "--json").stdout
    assert not out.lstrip().startswith("{")
    with Broker.open(str(team["db"])) as b:
        assert [t["body"] for t in b.poll(team["fid"], team["m"])] == ["--json"]


# ------------------------------------------------------------------ errors that say what to do


def test_fleet_id_after_the_subcommand_says_where_it_goes(team):
    p = cafleet(team["env"], "member", "list", "--fleet-id", team["fid"], code=2)
    assert "--fleet-id goes before the subcommand" in p.stderr and "Did you mean" not in p.stderr


def test_member_exec_unquoted_says_to_quote(team):
    p = cafleet(team["env"], "--fleet-id", team["fid"], "member", "exec", "--member-id", team["m"], "ls", "-la",
                code=2)
    assert "one quoted argument" in p.stderr and '"ls -la"' in p.stderr and "No such option" not in p.stderr


def test_fleet_not_found_points_at_fleet_list(team):
    p = cafleet(team["env"], "fleet", "show", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", code=1)
    assert "not found" in p.stderr and "cafleet fleet list" in p.stderr


# ------------------------------------------------------------------ --text-file


def test_text_file_sends_a_body_up_to_the_limit_exactly(team, tmp_path):
    body = ("é" * (MAX_BODY_BYTES // 2 - 1)) + "\n\t end"
    body = body[: len(body)]
    path = tmp_path / "body.txt"
    path.write_bytes(body.encode("utf-8")[:MAX_BODY_BYTES].decode("utf-8", "ignore").encode("utf-8"))
    expected = path.read_text(encoding="utf-8")
    F = ["--fleet-id", team["fid"]]
    cafleet(team["env"], *F, "message", "send", "--agent-id", team["d"], "--to", team["m"], "--text-file", path)
    cafleet(team["env"], *F, "message", "send", "--agent-id", team["d"], "--to", team["m"], "--text-file", "-",
            stdin="from stdin ⏎\n")
    cafleet(team["env"], *F, "message", "broadcast", "--agent-id", team["d"], "--text-file", path)
    with Broker.open(str(team["db"])) as b:
        assert [t["body"] for t in b.poll(team["fid"], team["m"])] == [expected, "from stdin ⏎\n", expected]


def test_text_file_refusals(team, tmp_path):
    F = ["--fleet-id", team["fid"]]
    send = [*F, "message", "send", "--agent-id", team["d"], "--to", team["m"]]
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (MAX_BODY_BYTES + 1))
    assert "limit" in cafleet(team["env"], *send, "--text-file", big, code=2).stderr
    assert "limit" in cafleet(team["env"], *send, "--text-file", "-", stdin="y" * (MAX_BODY_BYTES + 1), code=2).stderr
    assert "regular file" in cafleet(team["env"], *send, "--text-file", "/dev/zero", code=2, timeout=20).stderr
    assert "exactly one" in cafleet(team["env"], *send, "--text", "a", "--text-file", big, code=2).stderr
    assert "exactly one" in cafleet(team["env"], *send, code=2).stderr
    assert "does not exist" in cafleet(team["env"], *send, "--text-file", tmp_path / "nope", code=2).stderr
    with Broker.open(str(team["db"])) as b:
        assert b.unread_count(team["m"]) == 0


# ------------------------------------------------------------------ previews drop invisible characters

INVISIBLE = ["\u200b", "\u200d", "\ufeff", "\u00ad", "\u2064", "\u3164", "\U000e0041", "\U000e007f", "\U000e0001"]


@pytest.mark.parametrize("ch", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
def test_previews_drop_invisible_format_characters(ch):
    line1, line2 = preview_lines("t", f"na{ch}me", "s", f"rm{ch} -rf{ch}")
    assert ch not in line1 + line2
    assert line2 == "rm -rf" and "name" in line1


def test_stored_body_keeps_invisible_characters(team):
    body = "".join(INVISIBLE) + "visible"
    with Broker.open(str(team["db"])) as b:
        b.send(team["fid"], team["d"], team["m"], body)
        assert b.poll(team["fid"], team["m"])[0]["body"] == body


# ------------------------------------------------------------------ one fleet per pane


def test_second_fleet_create_in_a_live_directors_pane_is_refused(rig):
    rig.start()
    first = rig.create_fleet()
    p = rig.cli("fleet", "create", "--name", "second", code=1)
    assert first["fleet_id"] in p.stderr and f"cafleet fleet delete {first['fleet_id']}" in p.stderr
    listed = json.loads(rig.cli("--json", "fleet", "list").stdout)
    assert [f["fleet_id"] for f in listed] == [first["fleet_id"]]
    # doctor names the fleet this pane belongs to
    doc = json.loads(rig.cli("--json", "doctor").stdout)
    assert doc["fleet"]["fleet_id"] == first["fleet_id"] and doc["fleet"]["role"] == "director"
    assert f"fleet:        {first['fleet_id']} (t)" in rig.cli("doctor").stdout
    # once deleted, the pane takes a new fleet, and the lookup finds the new one
    rig.cli("fleet", "delete", first["fleet_id"])
    second = json.loads(rig.cli("--json", "fleet", "create", "--name", "second").stdout)
    assert json.loads(rig.cli("--json", "doctor").stdout)["fleet"]["fleet_id"] == second["fleet_id"]


def test_pane_lookup_prefers_the_newest_placement(db_path):
    """Two live rows for one pane (written before the refusal existed): the lookup is the same
    every time, the most recent one."""
    pane = {"tmux_socket": "/tmp/cafleet-x/sock", "session_name": "s", "window_id": "@1", "pane_id": "%1"}
    with Broker.open(str(db_path)) as b:
        old = b.create_fleet("old", placement=pane)
        b.conn.execute("UPDATE placements SET pane_id = '%9'")
        new = b.create_fleet("new", placement=pane)
        b.conn.execute("UPDATE placements SET pane_id = '%1', created_at = '2000-01-01T00:00:00Z' "
                       "WHERE agent_id = ?", (old["director"]["agent_id"],))
        for _ in range(3):
            assert b.find_agent_by_pane(pane["tmux_socket"], "%1")["fleet_id"] == new["fleet_id"]


def test_doctor_warns_when_no_backend_is_on_path(rig, tmp_path):
    rig.start()
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    for tool in ("tmux",):
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        os.symlink(real, bare / tool)
    env = {**rig.env, "PATH": f"{bare}:{os.path.dirname(sys.executable)}"}
    env.pop("PYTHONPATH", None)
    p = rig.cli("doctor", env=env, code=0)
    assert "warning: no coding-agent backend" in p.stdout and "member create" in p.stdout
    assert not p.stdout.rstrip().endswith("\nok")
    data = json.loads(rig.cli("--json", "doctor", env=env).stdout)
    assert data["warnings"] and data["ok"] is True
