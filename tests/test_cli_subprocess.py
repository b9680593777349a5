"""The installed `cafleet` console script and `python -m cafleet`, run as real processes with
real argv, pipes and environment: the core fleet/agent/message flow, and that no error case
ever shows a Python traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import cafleet
from cafleet.broker import MAX_BODY_BYTES
from cafleet.schema import SCHEMA_VERSION

UUID4_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
NOWHERE = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SCRIPT = shutil.which("cafleet")

ENTRY_POINTS = {
    "console-script": [SCRIPT] if SCRIPT else None,
    "python-m": [sys.executable, "-m", "cafleet"],
}


def base_env(db) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CAFLEET_BUSY_TIMEOUT_MS")}
    env["CAFLEET_DB"] = str(db)
    return env


class Cli:
    def __init__(self, argv0: list[str], db):
        self.argv0 = argv0
        self.db = db
        self.env = base_env(db)

    def __call__(self, *args, code=0, env=None, text=True):
        argv = self.argv0 + [a if isinstance(a, bytes) else str(a) for a in args]
        p = subprocess.run(argv, capture_output=True, text=text, env=env or self.env, timeout=60)
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        err = p.stderr if text else p.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err, err
        return p


@pytest.fixture(params=list(ENTRY_POINTS))
def cli(request, db_path):
    argv0 = ENTRY_POINTS[request.param]
    if argv0 is None:
        pytest.fail("the cafleet console script is not on PATH (pip install -e '.[test]')")
    return Cli(argv0, db_path)


@pytest.fixture
def script(db_path):
    """The console script only (for the long error matrix)."""
    assert SCRIPT, "the cafleet console script is not on PATH"
    return Cli([SCRIPT], db_path)


def test_console_script_is_installed():
    assert SCRIPT is not None and os.access(SCRIPT, os.X_OK)


def test_core_flow(cli, db_path):
    assert cli("--version").stdout.strip() == f"cafleet {cafleet.__version__}"
    init = cli("db", "init")
    assert init.stdout.splitlines() == [str(db_path), f"schema version {SCHEMA_VERSION}"]
    assert oct(os.stat(db_path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(db_path.parent).st_mode & 0o777) == "0o700"
    cli("db", "init")

    created = cli("fleet", "create", "--name", "crew")
    fid, director = created.stdout.splitlines()[:2]
    assert UUID4_RE.match(fid) and UUID4_RE.match(director)
    assert "tmux" in created.stderr.lower() and "Warning" in created.stderr
    F = ["--fleet-id", fid]

    alice = cli(*F, "agent", "register", "--name", "Alice", "--description", "first").stdout
    bob = cli(*F, "agent", "register", "--name", "Bob", "--description", "second").stdout
    assert alice.count("\n") == 1 and UUID4_RE.match(alice.strip())
    alice, bob = alice.strip(), bob.strip()

    listing = cli(*F, "agent", "list").stdout
    assert all(x in listing for x in (director, alice, bob, "Alice", "Bob", "Director"))
    assert cli(*F, "agent", "show", "--agent-id", bob).stdout.splitlines()[0] == bob

    sent = cli(*F, "message", "send", "--agent-id", alice, "--to", bob, "--text", "hello bob").stdout.splitlines()
    assert len(sent) == 2 and UUID4_RE.match(sent[0]) and "no pane notified" in sent[1]
    t1 = sent[0]
    t2 = cli(*F, "message", "send", "--agent-id", director, "--to", bob, "--text", "line 1\nline 2").stdout.splitlines()[0]

    poll = cli(*F, "message", "poll", "--agent-id", bob).stdout
    assert poll.index(t2) < poll.index(t1) and "line 1\nline 2" in poll and "hello bob" in poll
    data = json.loads(cli("--json", *F, "message", "poll", "--agent-id", bob).stdout)["tasks"]
    assert [d["task_id"] for d in data] == [t2, t1] and data[1]["sender_name"] == "Alice"

    acked = cli(*F, "message", "ack", "--agent-id", bob, "--task-id", t1, "--task-id", t2).stdout.splitlines()
    assert acked == [f"acked {t1}", f"acked {t2}"]
    empty = cli(*F, "message", "poll", "--agent-id", bob)
    assert len(empty.stdout.splitlines()) == 1 and empty.stderr == ""

    b = cli(*F, "message", "broadcast", "--agent-id", director, "--text", "all hands").stdout.splitlines()
    assert len(b) == 2
    t3 = cli(*F, "message", "send", "--agent-id", alice, "--to", bob, "--text", "oops").stdout.splitlines()[0]
    assert cli(*F, "message", "cancel", "--agent-id", alice, "--task-id", t3).stdout.strip() == f"canceled {t3}"
    shown = json.loads(cli("--json", *F, "message", "show", "--agent-id", bob, "--task-id", t3).stdout)
    assert shown["state"] == "canceled" and shown["body"] == "oops"

    fl = json.loads(cli("--json", "fleet", "list").stdout)
    assert [f["fleet_id"] for f in fl] == [fid]
    assert fid in cli("fleet", "show", fid).stdout
    cli(*F, "agent", "deregister", "--agent-id", alice)
    assert "deleted" in cli("fleet", "delete", fid).stdout
    assert "already deleted" in cli("fleet", "delete", fid).stdout
    assert cli("fleet", "list").stdout.strip() == "No active fleets."


def test_fleet_create_json_is_pure_stdout(cli):
    p = cli("--json", "fleet", "create")
    data = json.loads(p.stdout)
    assert UUID4_RE.match(data["fleet_id"]) and UUID4_RE.match(data["director"]["agent_id"])
    assert data["director"]["placement"] is None and "Warning" in p.stderr


def _fleet(script):
    out = script("fleet", "create").stdout.splitlines()
    fid, director = out[0], out[1]
    a = script("--fleet-id", fid, "agent", "register", "--name", "A", "--description", "a").stdout.strip()
    return fid, director, a


def test_bodies_round_trip_through_argv_and_pipes(script):
    fid, director, a = _fleet(script)
    bodies = [
        "CRLF\r\nand CR\r alone", "tabs\tand\vvertical\fform", "שלום עולם", "مرحبا", "👩‍👩‍👧‍👦 🇺🇳",
        "e\u0301", "\u202eRTL override\u202c", "\ufeffBOM", "\U0010ffff\U000e0001", "$(rm -rf /) `x` ;|&",
        "--text", "-", "'\"\\", "é" * (MAX_BODY_BYTES // 2),
    ]
    ids = []
    for body in bodies:
        ids.append(script("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", a, "--text", body)
                   .stdout.splitlines()[0])
    got = json.loads(script("--json", "--fleet-id", fid, "message", "poll", "--agent-id", a, "--limit", "1000").stdout)["tasks"]
    assert [g["task_id"] for g in got] == ids[::-1]
    assert [g["body"] for g in got] == bodies[::-1]
    # text mode shows printable bodies byte for byte (how it renders control characters is
    # left open: see the test below; --json above is the exact form)
    raw_out = script("--fleet-id", fid, "message", "poll", "--agent-id", a, "--limit", "1000", text=False).stdout
    printable = [b for b in bodies if not any(ord(c) < 32 and c not in "\n\t" or 0x7F <= ord(c) < 0xA0 for c in b)]
    assert len(printable) >= 10
    for body in printable:
        assert body.encode("utf-8") in raw_out


def test_utf8_works_in_the_c_locale(script):
    fid, director, a = _fleet(script)
    env = dict(script.env, LC_ALL="C", LANG="C")
    env.pop("PYTHONIOENCODING", None)
    env.pop("PYTHONUTF8", None)
    body = "naïve 👋 שלום"
    script("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", a, "--text", body, env=env)
    p = script("--json", "--fleet-id", fid, "message", "poll", "--agent-id", a, env=env, text=False)
    assert json.loads(p.stdout.decode("utf-8"))["tasks"][0]["body"] == body
    p = script("--fleet-id", fid, "message", "poll", "--agent-id", a, env=env, text=False)
    assert body.encode("utf-8") in p.stdout


def test_text_poll_does_not_silently_drop_parts_of_a_body(script):
    fid, director, a = _fleet(script)
    body = "status: \x1b[31mRED\x1b[0m done"
    t = script("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", a, "--text", body).stdout.split()[0]
    for args in (["message", "poll", "--agent-id", a], ["message", "show", "--agent-id", a, "--task-id", t]):
        out = script("--fleet-id", fid, *args).stdout
        assert "[31m" in out and "[0m" in out  # verbatim or visibly escaped, but not dropped


def test_invalid_utf8_argv_is_a_usage_error(script, db_path):
    fid, director, a = _fleet(script)
    p = script("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", a, "--text", b"bad \xff\xfe bytes",
               code=2, text=False)
    assert b"--text" in p.stderr and b"Error:" in p.stderr
    p = script("--fleet-id", fid, "agent", "register", "--name", b"\xc3(", "--description", "x", code=2, text=False)
    assert b"--name" in p.stderr
    p = script("--fleet-id", b"\xff" * 36, "agent", "list", code=2, text=False)
    assert b"--fleet-id" in p.stderr
    conn = sqlite3.connect(str(db_path))
    try:
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM agents").fetchone()[0] == 2
    finally:
        conn.close()


# ---------------------------------------------------------------- no traceback, ever


def _newer(db):
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def _corrupt(db):
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(os.urandom(8192))


def _foreign(db):
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db))
    conn.execute("CREATE TABLE notes (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.commit()
    conn.close()



# (id, argv with {fid} {d} {a} placeholders, expected exit code, env overrides with {tmp}, DB setup)
ERROR_CASES = [
    ("missing-fleet-id", ["agent", "list"], 2, {}, None),
    ("poll-missing-fleet-id", ["message", "poll", "--agent-id", "{a}"], 2, {}, None),
    ("malformed-fleet-id", ["--fleet-id", "xyz", "agent", "list"], 2, {}, None),
    ("malformed-agent-id", ["--fleet-id", "{fid}", "agent", "show", "--agent-id", "xyz"], 2, {}, None),
    ("malformed-to", ["--fleet-id", "{fid}", "message", "send", "--agent-id", "{d}", "--to", "xyz", "--text", "t"], 2, {}, None),
    ("malformed-task-id", ["--fleet-id", "{fid}", "message", "ack", "--agent-id", "{a}", "--task-id", "xyz"], 2, {}, None),
    ("malformed-member-id", ["--fleet-id", "{fid}", "member", "capture", "--member-id", "xyz"], 2, {}, None),
    ("unknown-fleet", ["--fleet-id", NOWHERE, "agent", "list"], 1, {}, None),
    ("unknown-agent", ["--fleet-id", "{fid}", "agent", "show", "--agent-id", NOWHERE], 1, {}, None),
    ("unknown-task", ["--fleet-id", "{fid}", "message", "show", "--agent-id", "{a}", "--task-id", NOWHERE], 1, {}, None),
    ("deregister-director", ["--fleet-id", "{fid}", "agent", "deregister", "--agent-id", "{d}"], 1, {}, None),
    ("empty-text", ["--fleet-id", "{fid}", "message", "send", "--agent-id", "{d}", "--to", "{a}", "--text", ""], 2, {}, None),
    ("oversized-text", ["--fleet-id", "{fid}", "message", "send", "--agent-id", "{d}", "--to", "{a}", "--text",
                        "x" * (MAX_BODY_BYTES + 1)], 2, {}, None),
    ("bad-limit", ["--fleet-id", "{fid}", "message", "poll", "--agent-id", "{a}", "--limit", "-1"], 2, {}, None),
    ("missing-text", ["--fleet-id", "{fid}", "message", "send", "--agent-id", "{d}", "--to", "{a}"], 2, {}, None),
    ("unknown-command", ["frobnicate"], 2, {}, None),
    ("bad-choice", ["fleet", "create", "--coding-agent", "emacs"], 2, {}, None),
    ("name-with-newline", ["fleet", "create", "--name", "a\nb"], 2, {}, None),
    ("fleet-show-malformed", ["fleet", "show", "xyz"], 2, {}, None),
    ("fleet-delete-unknown", ["fleet", "delete", NOWHERE], 1, {}, None),
    ("relative-db", ["fleet", "list"], 2, {"CAFLEET_DB": "relative.db"}, None),
    ("db-under-a-file", ["fleet", "list"], 1, {"CAFLEET_DB": "{tmp}/blocker/c.db"}, "blocker"),
    ("db-is-a-directory", ["fleet", "list"], 1, {"CAFLEET_DB": "{tmp}"}, None),
    ("newer-schema", ["fleet", "list"], 1, {"CAFLEET_DB": "{tmp}/n/c.db"}, "newer"),
    ("newer-schema-db-init", ["db", "init"], 1, {"CAFLEET_DB": "{tmp}/n/c.db"}, "newer"),
    ("newer-schema-send", ["--fleet-id", "{fid}", "message", "send", "--agent-id", "{d}", "--to", "{a}", "--text", "x"],
     1, {"CAFLEET_DB": "{tmp}/n/c.db"}, "newer"),
    ("corrupt-db", ["fleet", "list"], 1, {"CAFLEET_DB": "{tmp}/c/c.db"}, "corrupt"),
    ("bad-busy-timeout", ["fleet", "list"], 2, {"CAFLEET_BUSY_TIMEOUT_MS": "soon"}, None),
    ("foreign-sqlite-file", ["fleet", "list"], 1, {"CAFLEET_DB": "{tmp}/f/c.db"}, "foreign"),
]
SETUPS = {"newer": _newer, "corrupt": _corrupt, "foreign": _foreign,
          "blocker": lambda db: db.parent.write_text("a file, not a directory")}


@pytest.fixture(scope="module")
def error_results(tmp_path_factory):
    """Run every error case (text and --json) once, concurrently, through the console
    script; each parametrized test below then checks its own result."""
    assert SCRIPT, "the cafleet console script is not on PATH"
    root = tmp_path_factory.mktemp("errors")
    env0 = base_env(root / "main" / "cafleet.db")

    def call(argv, env):
        return subprocess.run([SCRIPT] + argv, capture_output=True, text=True, env=env, timeout=60)

    out = call(["fleet", "create"], env0).stdout.splitlines()
    ids = {"fid": out[0], "d": out[1]}
    ids["a"] = call(["--fleet-id", ids["fid"], "agent", "register", "--name", "A", "--description", "a"], env0).stdout.strip()
    jobs = {}
    for case in ERROR_CASES:
        name, args, _code, env_over, setup = case
        for as_json in (False, True):
            tmp = root / f"{name}-{as_json}"
            tmp.mkdir()
            env = dict(env0, **{k: v.format(tmp=tmp) for k, v in env_over.items()})
            if setup:
                SETUPS[setup](Path(env["CAFLEET_DB"]))
            argv = [a.format(**ids) for a in args]
            jobs[(name, as_json)] = (["--json"] + argv if as_json else argv, env)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(call, *job) for key, job in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("name,code", [pytest.param(c[0], c[2], id=c[0]) for c in ERROR_CASES])
def test_no_traceback_for_any_error(error_results, name, code, as_json):
    p = error_results[(name, as_json)]
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    # a `fleet create` may warn about tmux first; click may add a "Try … --help" hint after
    said = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("Warning:")]
    if as_json:
        err = json.loads(said[-1])["error"]
        assert set(err) == {"code", "message"} and err["message"]
        assert len(said) == 1, p.stderr
    else:
        assert said[0].startswith("Error:"), p.stderr
    assert p.stdout == ""


def test_text_poll_on_a_terminal_cannot_drive_it(script):
    """On a TTY the body's control characters are shown escaped, never sent raw (a message
    must not be able to move the cursor, retitle or clear the reader's terminal)."""
    import pty

    fid, director, a = _fleet(script)
    body = "x\x1b]0;pwned\x07\x1b[2J\x1b[31mRED\x1b[0m\x9b1m\rdone"
    script("--fleet-id", fid, "message", "send", "--agent-id", director, "--to", a, "--text", body)
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(script.argv0 + ["--fleet-id", fid, "message", "poll", "--agent-id", a],
                             stdout=slave, stderr=subprocess.PIPE, env=script.env)
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert p.wait(timeout=30) == 0, p.stderr.read()
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    shown = b"".join(chunks).decode("utf-8")
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "RED" in shown and "pwned" in shown and "done" in shown
    assert "\\x1b" in shown  # visibly escaped, not silently dropped
