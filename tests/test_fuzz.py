"""Property tests over the CLI surface (hypothesis): random ids (valid, malformed, another
fleet's, unknown), flags in random order or missing, Unicode and binary-ish bodies
(surrogate-escaped bytes, as Python decodes a non-UTF-8 argv), bodies around and past the
64 KiB limit, empty strings.

For every call: exit 0, 1 or 2; a message (`Error: …` or a JSON error object) when not 0;
never a traceback; a refused send/broadcast stores nothing; a stored body round-trips
exactly (poll, show). Most examples go through click's CliRunner (`cafleet.cli.main`), a
smaller sample through the real console entry point with byte-level argv.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cafleet.broker import MAX_BODY_BYTES, Broker, new_id
from cafleet.cli import main

FAKE_SOCKET = "/tmp/cafleet-fuzz-no-such-server.sock"  # member panes that never answer
SETTINGS = dict(deadline=None, derandomize=False, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])


# ---------------------------------------------------------------- a template DB, copied per example


def _build_template(path) -> dict:
    with Broker.open(str(path)) as b:
        ids = {}
        for name, base in (("A", 1), ("B", 10)):
            f = b.create_fleet(name, placement={"tmux_socket": FAKE_SOCKET, "session_name": name,
                                                "window_id": f"@{base}", "pane_id": f"%{base}"})
            fid, d = f["fleet_id"], f["director"]["agent_id"]
            m = b.register_agent(fid, f"{name}-member", "m", role="member", parent_agent_id=d, coding_agent="claude",
                                 placement={"tmux_socket": FAKE_SOCKET, "session_name": name,
                                            "window_id": f"@{base}", "pane_id": f"%{base + 1}"})["agent_id"]
            a = b.register_agent(fid, f"{name}-agent", "a")["agent_id"]
            t1 = b.send(fid, d, a, f"{name}: d to a")["task_id"]
            t2 = b.send(fid, a, m, f"{name}: a to m")["task_id"]
            t3 = b.send(fid, m, d, f"{name}: m to d")["task_id"]
            b.ack(fid, d, [t3])
            ids[name] = {"fid": fid, "d": d, "m": m, "a": a, "tasks": [t1, t2, t3]}
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    template = root / "template.db"
    ids = _build_template(template)
    bin_dir = root / "bin"  # no coding-agent binary: `member create` stops before touching anything
    bin_dir.mkdir()
    counter = itertools.count()

    def fresh_db() -> str:
        path = root / f"db{next(counter)}" / "cafleet.db"
        path.parent.mkdir(mode=0o700)
        shutil.copyfile(template, path)
        return str(path)

    path_env = f"{bin_dir}{os.pathsep}{os.path.dirname(shutil.which('tmux') or '/usr/bin/tmux')}"
    return {"ids": ids, "fresh_db": fresh_db, "PATH": path_env}


def tasks_of(db) -> dict:
    conn = sqlite3.connect(db)
    try:
        return {r[0]: r[1:] for r in conn.execute("SELECT task_id, body, state, sender_agent_id, recipient_agent_id "
                                                  "FROM tasks")}
    finally:
        conn.close()


def invoke(world, db, args):
    env = {"CAFLEET_DB": db, "TMUX": None, "TMUX_PANE": None, "CAFLEET_BUSY_TIMEOUT_MS": None,
           "CAFLEET_DEBUG": None, "PATH": world["PATH"]}
    return CliRunner().invoke(main, args, env=env)


def check_outcome(r, args, as_json):
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))
    assert r.exit_code in (0, 1, 2), (args, r.exit_code, r.stderr)
    assert "Traceback" not in r.stdout and "Traceback" not in r.stderr, (args, r.stderr)
    if r.exit_code != 0:
        said = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("Warning:")]
        assert said, (args, r.exit_code, r.stdout)
        if as_json:
            err = json.loads(said[-1])["error"]
            assert err["message"] and err["code"], said
        else:
            assert said[0].startswith("Error: "), (args, said)
        assert r.stdout == "", (args, r.stdout[:200])


# ---------------------------------------------------------------- strategies


def _bodies():
    boundary = st.sampled_from([
        "x" * MAX_BODY_BYTES, "x" * (MAX_BODY_BYTES + 1), "é" * (MAX_BODY_BYTES // 2),
        "é" * (MAX_BODY_BYTES // 2) + "x", "🚀" * (MAX_BODY_BYTES // 4), "🚀" * (MAX_BODY_BYTES // 4) + "a",
        "y" * 200_000, "", " ", "\n", "\t \r\n", "\x00", "a\x00b",
    ])
    huge = st.builds(lambda n, ch: ch * n, st.integers(MAX_BODY_BYTES - 8, MAX_BODY_BYTES + 8),
                     st.sampled_from(["a", "é", "\x1b"]))
    escaped = st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))
    return st.one_of(st.text(max_size=300), escaped, boundary, huge,
                     st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=50))


BODIES = _bodies()


def _id_strategy(ids):
    valid = [v for fleet in ids.values() for k, v in fleet.items() if k != "tasks"]
    valid += [t for fleet in ids.values() for t in fleet["tasks"]]
    some = ids["A"]["d"]
    malformed = ["", " ", "x", some.upper(), some.replace("-", ""), some + " ", " " + some, some[:-1],
                 "0" * 36, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "--agent-id", "-", "%1", some + "\n"]
    odd = st.one_of(st.sampled_from(malformed), st.builds(new_id), st.text(max_size=40),
                    st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")))
    # mostly real ids (of either fleet), so that the calls get past parsing
    return st.integers(0, 9).flatmap(lambda n: odd if n == 0 else st.sampled_from(valid))


def _commands(ids):
    I = _id_strategy(ids)  # noqa: E741
    T = BODIES
    num = st.one_of(st.integers(-3, 12000).map(str), st.sampled_from(["", "x", "1.5", "0x10", "1e3"]))
    spec = {
        ("message", "send"): [("--agent-id", I), ("--to", I), ("--text", T)],
        ("message", "broadcast"): [("--agent-id", I), ("--text", T)],
        ("message", "poll"): [("--agent-id", I), ("--limit", num)],
        ("message", "ack"): [("--agent-id", I), ("--task-id", I), ("--task-id", I)],
        ("message", "cancel"): [("--agent-id", I), ("--task-id", I)],
        ("message", "show"): [("--agent-id", I), ("--task-id", I)],
        ("agent", "register"): [("--name", T), ("--description", T)],
        ("agent", "show"): [("--agent-id", I)],
        ("agent", "deregister"): [("--agent-id", I)],
        ("agent", "list"): [],
        ("member", "list"): [("--agent-id", I)],
        ("member", "capture"): [("--member-id", I), ("--lines", num)],
        ("member", "send-input"): [("--member-id", I), ("--choice", num), ("--freetext", T)],
        ("member", "exec"): [("--member-id", I), (None, T)],
        ("member", "ping"): [("--member-id", I)],
        ("member", "delete"): [("--member-id", I), ("--force", None), ("--timeout", st.sampled_from(["0", "-1", "x"]))],
        ("member", "create"): [("--name", T), ("--description", T), ("--coding-agent", st.sampled_from(
            ["claude", "codex", "opencode", "emacs", ""])), (None, T)],
        ("fleet", "create"): [("--name", T), ("--coding-agent", st.sampled_from(["claude", "vim", ""]))],
        ("fleet", "show"): [(None, I)],
        ("fleet", "delete"): [(None, I), ("--force", None)],
        ("fleet", "list"): [],
        ("permissions",): [("--agent-id", I), ("--role", st.sampled_from(["director", "member", "root", ""]))],
        ("db", "init"): [],
    }

    @st.composite
    def command(draw):
        path = draw(st.sampled_from(sorted(spec)))
        parts = []
        for flag, strat in spec[path]:
            if draw(st.integers(0, 19)) == 0:
                continue  # sometimes leave a flag out
            if strat is None:
                parts.append([flag])
            elif flag is None:
                parts.append(["--", draw(strat)] if draw(st.booleans()) else [draw(strat)])
            else:
                value = draw(strat)
                parts.append([f"{flag}={value}"] if draw(st.integers(0, 4)) == 0 else [flag, value])
        parts = draw(st.permutations(parts))
        tail = [w for p in parts for w in p]
        # "--" parts must come last to mean "positional"
        if "--" in tail:
            i = tail.index("--")
            tail = tail[:i] + tail[i + 2:] + tail[i:i + 2]
        glob = []
        fleet = draw(st.integers(0, 9).flatmap(lambda n: st.none() if n == 0 else I if n == 1 else
                                               st.sampled_from([ids["A"]["fid"], ids["A"]["fid"], ids["B"]["fid"]])))
        if fleet is not None:
            glob += ["--fleet-id", fleet]
        as_json = draw(st.booleans())
        if as_json:
            glob.insert(draw(st.integers(0, len(glob) // 2)) * 2, "--json")
        junk = draw(st.sampled_from([[]] * 12 + [["--bogus"], ["--agent-id"], ["extra"], ["--json"]]))
        if junk == ["--json"] and "--" not in tail:
            as_json = True  # --json after the subcommand means JSON too (issue 10)
        tail += junk
        return glob + list(path) + tail, as_json, path

    return command()


# ---------------------------------------------------------------- the properties


@pytest.fixture(scope="module")
def command_strategy(world):
    return _commands(world["ids"])


@settings(max_examples=500, **SETTINGS)
@given(data=st.data())
def test_any_command_line_exits_cleanly(world, command_strategy, data):
    args, as_json, path = data.draw(command_strategy)
    db = world["fresh_db"]()
    before = tasks_of(db)
    r = invoke(world, db, args)
    event(f"{' '.join(path)} -> exit {r.exit_code}")
    check_outcome(r, args, as_json)
    after = tasks_of(db)
    # old tasks keep their bodies, senders and recipients whatever happened
    for task_id, row in before.items():
        assert after[task_id][0] == row[0] and after[task_id][2:] == row[2:]
    new = {k: v for k, v in after.items() if k not in before}
    if path in (("message", "send"), ("message", "broadcast")):
        if r.exit_code != 0:
            assert new == {}, (args, new)
        else:
            text = args[args.index("--text") + 1] if "--text" in args else \
                next(a.split("=", 1)[1] for a in args if a.startswith("--text="))
            assert new and all(v[0] == text for v in new.values()), "a stored body differs from the one sent"
    else:
        assert new == {}, (args, new)


def _send_args(world, sender, to, body, as_json=True):
    A = world["ids"]["A"]
    return (["--json"] if as_json else []) + ["--fleet-id", A["fid"], "message", "send", "--agent-id", sender,
                                              "--to", to, "--text", body]


@settings(max_examples=150, **SETTINGS)
@given(body=BODIES, to=st.sampled_from(["m", "a", "d"]), as_json=st.booleans())
def test_bodies_round_trip_or_are_refused_whole(world, body, to, as_json):
    A = world["ids"]["A"]
    db = world["fresh_db"]()
    before = tasks_of(db)
    args = _send_args(world, A["d"], A[to], body, as_json)
    r = invoke(world, db, args)
    check_outcome(r, args[:6], as_json)
    try:
        size = len(body.encode("utf-8"))
        valid = bool(body.strip()) and size <= MAX_BODY_BYTES
    except UnicodeEncodeError:
        valid = False
    if not valid:
        assert r.exit_code == 2 and "--text" in r.stderr, (r.exit_code, r.stderr[:300])
        assert tasks_of(db) == before
        return
    assert r.exit_code == 0, r.stderr
    task_id = json.loads(r.stdout)["task_id"] if as_json else r.stdout.splitlines()[0]
    assert tasks_of(db)[task_id][0] == body
    if as_json:
        assert json.loads(r.stdout)["body"] == body
    shown = invoke(world, db, ["--json", "--fleet-id", A["fid"], "message", "show", "--agent-id", A[to],
                               "--task-id", task_id])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["body"] == body
    polled = invoke(world, db, ["--json", "--fleet-id", A["fid"], "message", "poll", "--agent-id", A[to]])
    assert [t["body"] for t in json.loads(polled.stdout)["tasks"] if t["task_id"] == task_id] == [body]
    if to != "d":  # the text form prints the body verbatim when piped
        text = invoke(world, db, ["--fleet-id", A["fid"], "message", "poll", "--agent-id", A[to], "--limit", "1"])
        # raw bytes: click's Result.stdout rewrites "\r\n" as "\n", which would hide a final "\r"
        out = text.stdout_bytes.decode("utf-8", "surrogateescape")
        page = json.loads(invoke(world, db, ["--json", "--fleet-id", A["fid"], "message", "poll", "--agent-id", A[to],
                                             "--limit", "1"]).stdout)
        if page["more"]:  # the page's last line says how many older ones wait
            out = out[: out.rindex("\n--- ") + 1]
        assert out.endswith(body + "\n")


@settings(max_examples=60, **SETTINGS)
@given(name=BODIES, description=BODIES)
def test_names_and_descriptions_round_trip_or_are_refused(world, name, description):
    A = world["ids"]["A"]
    db = world["fresh_db"]()
    r = invoke(world, db, ["--json", "--fleet-id", A["fid"], "agent", "register", "--name", name,
                           "--description", description])
    check_outcome(r, ["agent", "register"], True)
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT name, description FROM agents WHERE agent_id NOT IN (?,?,?,?,?,?)",
                            [v for f in world["ids"].values() for k, v in f.items() if k in ("d", "m", "a")]).fetchall()
    finally:
        conn.close()
    if r.exit_code == 0:
        assert rows == [(name, description)]
        assert json.loads(r.stdout)["name"] == name
    else:
        assert r.exit_code == 2 and rows == []


# ---------------------------------------------------------------- through real argv (bytes)


ARGV_BODIES = st.one_of(
    st.binary(min_size=0, max_size=200).filter(lambda b: b"\x00" not in b),
    st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")).filter(
        lambda b: b"\x00" not in b),
    st.sampled_from([b"\xff\xfe", b"\xc3(", b"ok \xe2\x82\xac", b"\xed\xa0\x80 surrogate", b"x" * 70000,
                     "é".encode() * (MAX_BODY_BYTES // 2), b"-", b"--", b"--text", b" "]),
)


@settings(max_examples=25, **SETTINGS)
@given(body=ARGV_BODIES, id_bytes=st.sampled_from([None, b"\xff" * 36, b"not-an-id", b""]))
def test_real_argv_bytes(world, body, id_bytes):
    A = world["ids"]["A"]
    db = world["fresh_db"]()
    before = tasks_of(db)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CAFLEET_BUSY_TIMEOUT_MS")}
    env.update({"CAFLEET_DB": db, "PATH": world["PATH"], "LC_ALL": "C.UTF-8"})
    to = A["m"].encode() if id_bytes is None else id_bytes
    argv = [sys.executable.encode(), b"-m", b"cafleet", b"--json", b"--fleet-id", A["fid"].encode(), b"message",
            b"send", b"--agent-id", A["a"].encode(), b"--to", to, b"--text", body]
    p = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    err = p.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err and p.returncode in (0, 1, 2), err
    try:
        text = body.decode("utf-8")
        valid = bool(text.strip()) and len(body) <= MAX_BODY_BYTES
    except UnicodeDecodeError:
        valid = False
    if id_bytes is not None:
        assert p.returncode == 2 and "--to" in err
        valid = False
    if not valid:
        assert p.returncode != 0 and json.loads(err.strip().splitlines()[-1])["error"]["message"]
        assert tasks_of(db) == before
        return
    assert p.returncode == 0, err
    out = json.loads(p.stdout.decode("utf-8"))
    assert out["body"] == text and tasks_of(db)[out["task_id"]][0] == text
