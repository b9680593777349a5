"""Faults outside cafleet's control, each met with a clear `Error: …` (exit 1) or the
documented degradation, and the data left as it was (CONTRACT.md "Identifiers and storage",
"Global flags": no traceback for an expected fault; "Messages": delivery never depends on
the push).

- the DB locked by a long external write transaction (busy timeout, then a clean failure;
  success when the lock goes away in time);
- a corrupt DB file (random bytes, truncated, garbage pages behind a valid header);
- a DB that cannot be written: parent is a regular file, a read-only bind mount (private
  mount namespace via `unshare -m`), a file-size limit (RLIMIT_FSIZE, as a full disk);
- a DB from a newer schema (file bytes unchanged);
- no tmux binary on PATH; the tmux server killed; the member's pane killed mid-push.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tmux_fleet import TmuxFleet, clean_env, run_cli  # noqa: E402  (tests/ is on sys.path)
from cafleet.broker import MAX_BODY_BYTES, Broker
from cafleet.schema import SCHEMA_VERSION

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "hooks" / "cafleet-hook"


def assert_error(p, *needles, code=1):
    assert p.returncode == code, (p.args[3:], p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("Warning:")]
    assert lines and lines[0].startswith("Error: "), p.stderr
    low = p.stderr.lower()
    for n in needles:
        assert n.lower() in low, (n, p.stderr)


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def content(db) -> dict:
    """Every row of every table (through a read-only URI connection, so looking changes nothing)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}
    finally:
        conn.close()


@pytest.fixture
def fleet(db_path):
    """A fleet with its Director and two plain agents, a few tasks; closed cleanly (no -wal)."""
    with Broker.open(str(db_path)) as b:
        f = b.create_fleet("faults")
        fid, d = f["fleet_id"], f["director"]["agent_id"]
        a = b.register_agent(fid, "A", "a")["agent_id"]
        c = b.register_agent(fid, "C", "c")["agent_id"]
        t1 = b.send(fid, d, a, "first")["task_id"]
        t2 = b.send(fid, a, d, "second")["task_id"]
    return {"db": db_path, "fid": fid, "d": d, "a": a, "c": c, "t1": t1, "t2": t2}


def write_commands(f) -> list[tuple[str, list]]:
    F = ["--fleet-id", f["fid"]]
    return [
        ("send", [*F, "message", "send", "--agent-id", f["d"], "--to", f["a"], "--text", "blocked?"]),
        ("broadcast", [*F, "message", "broadcast", "--agent-id", f["d"], "--text", "all?"]),
        ("poll", [*F, "message", "poll", "--agent-id", f["a"]]),
        ("ack", [*F, "message", "ack", "--agent-id", f["a"], "--task-id", f["t1"]]),
        ("cancel", [*F, "message", "cancel", "--agent-id", f["a"], "--task-id", f["t2"]]),
        ("show", [*F, "message", "show", "--agent-id", f["a"], "--task-id", f["t1"]]),
        ("agent register", [*F, "agent", "register", "--name", "N", "--description", "d"]),
        ("agent deregister", [*F, "agent", "deregister", "--agent-id", f["c"]]),
        ("fleet create", ["fleet", "create", "--name", "new"]),
        ("fleet delete", ["fleet", "delete", f["fid"]]),
    ]


def read_commands(f) -> list[tuple[str, list]]:
    F = ["--fleet-id", f["fid"]]
    return [("fleet list", ["fleet", "list"]), ("fleet show", ["fleet", "show", f["fid"]]),
            ("agent list", [*F, "agent", "list"]), ("agent show", [*F, "agent", "show", "--agent-id", f["a"]]),
            ("member list", [*F, "member", "list"]), ("db init", ["db", "init"])]


# ---------------------------------------------------------------- a long external write lock


class Locker:
    """Holds `BEGIN IMMEDIATE` on the DB from this process (as another program would)."""

    def __init__(self, db):
        self.conn = sqlite3.connect(str(db), isolation_level=None, check_same_thread=False, timeout=5)
        self.conn.execute("BEGIN IMMEDIATE")
        # an uncommitted change of its own, which nobody may see or be tangled with
        self.conn.execute("UPDATE agents SET name = 'HALF-WRITTEN' WHERE role = 'director'")

    def release(self, commit=False):
        self.conn.execute("COMMIT" if commit else "ROLLBACK")
        self.conn.close()


def test_writes_wait_the_busy_timeout_then_fail_cleanly(fleet):
    before = content(fleet["db"])
    env = clean_env(fleet["db"], CAFLEET_BUSY_TIMEOUT_MS=500)
    lock = Locker(fleet["db"])
    try:
        def timed(args):
            t0 = time.monotonic()
            p = run_cli(args, env)
            return p, time.monotonic() - t0

        jobs = [(name, js, (["--json"] if js else []) + args) for name, args in write_commands(fleet)
                for js in (False, True)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda j: (j[0], j[1], *timed(j[2])), jobs))
        for name, as_json, p, elapsed in results:
            assert p.returncode == 1, (name, p.returncode, p.stdout, p.stderr)
            assert p.stdout == "", (name, p.stdout)
            assert elapsed >= 0.45, (name, elapsed)  # it did wait for the lock
            assert elapsed < 10, (name, elapsed)
            if as_json:
                err = json.loads(p.stderr.strip().splitlines()[-1])["error"]
                assert err["code"] == "database" and "locked" in err["message"], (name, p.stderr)
            else:
                assert_error(p, "locked", "nothing was written")
        # readers are not blocked by a writer in WAL mode: documented degradation is "none"
        for name, args in read_commands(fleet):
            p = run_cli(args, env)
            assert p.returncode == 0, (name, p.stderr)
            assert "HALF-WRITTEN" not in p.stdout
    finally:
        lock.release()
    assert content(fleet["db"]) == before
    with sqlite3.connect(str(fleet["db"])) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_lock_released_before_the_timeout_lets_the_command_through(fleet):
    env = clean_env(fleet["db"], CAFLEET_BUSY_TIMEOUT_MS=4000)
    for name, args in write_commands(fleet)[:4] + [write_commands(fleet)[6]]:
        lock = Locker(fleet["db"])
        timer = threading.Timer(0.6, lock.release)
        timer.start()
        t0 = time.monotonic()
        try:
            p = run_cli(args, env)
        finally:
            timer.join()
        elapsed = time.monotonic() - t0
        assert p.returncode == 0, (name, p.stderr)
        assert elapsed >= 0.5, (name, elapsed)
    with Broker.open(str(fleet["db"])) as b:
        names = [a["name"] for a in b.list_agents(fleet["fid"])]
        assert "HALF-WRITTEN" not in names and "N" in names
        assert [t["body"] for t in b.poll(fleet["fid"], fleet["a"])] == ["all?", "blocked?"]


def test_lock_held_by_a_crashed_writer_is_released(fleet):
    """A process killed while holding the write lock (kill -9) does not leave the DB locked."""
    holder = subprocess.Popen([PY, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(fleet['db'])!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute(\"INSERT INTO notices VALUES ((SELECT agent_id FROM agents LIMIT 1), 'k', 'x', 'now')\")\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        env = clean_env(fleet["db"], CAFLEET_BUSY_TIMEOUT_MS=300)
        assert_error(run_cli(write_commands(fleet)[0][1], env), "locked")
        holder.kill()
        holder.wait(10)
        p = run_cli(write_commands(fleet)[0][1], env)
        assert p.returncode == 0, p.stderr
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    with sqlite3.connect(str(fleet["db"])) as conn:
        assert conn.execute("SELECT COUNT(*) FROM notices").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---------------------------------------------------------------- corrupt files


def _random_bytes(db: Path):
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(os.urandom(16384))


def _truncated(db: Path):
    with Broker.open(str(db)) as b:
        f = b.create_fleet("t")
        for i in range(40):
            b.register_agent(f["fleet_id"], f"agent{i}", "x" * 1500)
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.truncate(size // 2 + 100)


def _garbage_pages(db: Path):
    """Keep page 1 (header + schema) and overwrite every other page with garbage: every
    table's root page is then unreadable."""
    with Broker.open(str(db)) as b:
        b.create_fleet("g")
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    rng = random.Random(7)
    for i in range(page, len(data)):
        data[i] = rng.randrange(256)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("corrupt", [_random_bytes, _truncated, _garbage_pages],
                         ids=["random-bytes", "truncated", "garbage-pages"])
def test_corrupt_db_gives_a_clear_error_and_stays_as_it_was(db_path, corrupt):
    corrupt(db_path)
    digest, listing = sha(db_path), sorted(os.listdir(db_path.parent))
    fid, aid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    env = clean_env(db_path)
    cases = [["fleet", "list"], ["db", "init"], ["fleet", "create"],
             ["--fleet-id", fid, "message", "send", "--agent-id", aid, "--to", aid, "--text", "x"],
             ["--fleet-id", fid, "message", "poll", "--agent-id", aid],
             ["--fleet-id", fid, "member", "list"], ["--json", "fleet", "list"]]
    for args in cases:
        p = run_cli(args, env)
        if args[0] == "--json":
            assert p.returncode == 1
            assert json.loads(p.stderr.strip().splitlines()[-1])["error"]["code"] == "database"
        elif corrupt is not _random_bytes and args[-1] in ("list", "init") and p.returncode == 0:
            continue  # a damaged file may still hold the pages these read (`db init` checks: see below)
        else:
            assert_error(p)
            assert any(w in p.stderr for w in ("not a usable", "not a cafleet", "malformed", "corrupt",
                                               "not a database")), p.stderr
    assert sha(db_path) == digest, "a command changed a corrupt DB file"
    assert sorted(os.listdir(db_path.parent)) == listing


def test_db_init_reports_a_damaged_db(db_path):
    """Regression: `db init` on a file whose table pages are garbage (valid header and schema
    page) used to print the schema version and exit 0."""
    _garbage_pages(db_path)
    digest = sha(db_path)
    p = run_cli(["db", "init"], clean_env(db_path))
    assert_error(p, str(db_path))
    assert sha(db_path) == digest


def test_hook_is_silent_on_a_corrupt_db(db_path):
    _random_bytes(db_path)
    digest = sha(db_path)
    env = {"PATH": os.environ["PATH"], "HOME": str(db_path.parent), "CAFLEET_DB": str(db_path),
           "TMUX": "/tmp/cafleet-faults-nowhere,1,0", "TMUX_PANE": "%1"}
    stdin = json.dumps({"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                        "tool_input": {"command": "tmux send-keys -t %2 hi"}, "cwd": "/tmp"})
    p = subprocess.run([PY, "-I", "-S", str(HOOK), "PreToolUse"], input=stdin, env=env, capture_output=True,
                       text=True, timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert sha(db_path) == digest


# ---------------------------------------------------------------- newer schema


def test_newer_schema_is_refused_and_the_file_left_byte_for_byte(fleet):
    db = fleet["db"]
    conn = sqlite3.connect(str(db))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    assert not os.path.exists(str(db) + "-wal")
    digest, mtime, listing = sha(db), os.stat(db).st_mtime_ns, sorted(os.listdir(db.parent))
    env = clean_env(db)
    for name, args in write_commands(fleet) + read_commands(fleet):
        p = run_cli(args, env)
        assert_error(p, "newer", "untouched")
    p = run_cli(["--json", "fleet", "list"], env)
    assert json.loads(p.stderr.strip().splitlines()[-1])["error"]["code"] == "database"
    # the hook: silent, touches nothing
    hook_env = {"PATH": os.environ["PATH"], "HOME": str(db.parent), "CAFLEET_DB": str(db),
                "TMUX": "/tmp/cafleet-faults-nowhere,1,0", "TMUX_PANE": "%1"}
    h = subprocess.run([PY, "-I", "-S", str(HOOK), "SessionStart"], input='{"session_id":"s","source":"startup"}',
                       env=hook_env, capture_output=True, text=True, timeout=30)
    assert (h.returncode, h.stdout, h.stderr) == (0, "", "")
    assert sha(db) == digest and os.stat(db).st_mtime_ns == mtime
    assert sorted(os.listdir(db.parent)) == listing


# ---------------------------------------------------------------- unwritable DB locations


def test_db_under_a_regular_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    env = clean_env(blocker / "sub" / "cafleet.db")
    for args in (["fleet", "create"], ["db", "init"], ["fleet", "list"]):
        assert_error(run_cli(args, env), "cannot create the DB directory")
    env = clean_env(blocker / "cafleet.db")
    assert_error(run_cli(["fleet", "create"], env))
    assert blocker.read_text() == "not a directory"


def _unshare_ok() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    d = Path("/tmp") / f"cafleet-ro-probe-{os.getpid()}"
    d.mkdir(exist_ok=True)
    try:
        p = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {d} {d} && ! touch {d}/x 2>/dev/null"],
                           capture_output=True, timeout=10)
        return p.returncode == 0 and not (d / "x").exists()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_read_only(directory: Path, args, env) -> subprocess.CompletedProcess:
    """Run cafleet in a private mount namespace where `directory` is a read-only bind mount
    (as root, permission bits do not stop writes; a read-only file system does)."""
    script = 'mount --bind -o ro "$1" "$1" || exit 99; shift; exec "$@"'
    p = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(directory), PY, "-m", "cafleet",
                        *map(str, args)], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode != 99, p.stderr
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p


needs_unshare = pytest.mark.skipif(not _unshare_ok(), reason="no private mount namespace (unshare -m) here")


@needs_unshare
def test_read_only_file_system_fresh_db(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    env = clean_env(ro / "cafleet.db")
    for args in (["fleet", "create"], ["db", "init"]):
        assert_error(run_read_only(ro, args, env), "cannot create the DB file")
    env = clean_env(ro / "sub" / "cafleet.db")
    assert_error(run_read_only(ro, ["fleet", "create"], env), "cannot create the DB directory")
    assert os.listdir(ro) == []


@needs_unshare
def test_read_only_file_system_existing_db(fleet):
    db = fleet["db"]
    before, digest = content(db), sha(db)
    env = clean_env(db)
    for name, args in write_commands(fleet):
        assert_error(run_read_only(db.parent, args, env), str(db))
    for name, args in read_commands(fleet):
        p = run_read_only(db.parent, args, env)
        if p.returncode != 0:
            assert_error(p, str(db))
    assert sha(db) == digest and content(db) == before


def _limited(limit):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


@pytest.mark.parametrize("limit", [0, 4096, 65536])
def test_file_size_limit_as_a_full_disk(fleet, limit):
    """RLIMIT_FSIZE makes every write past `limit` bytes fail with EFBIG, as a full disk
    would (Python ignores SIGXFSZ): at 0 and 4 KiB the WAL index cannot even be sized, at
    64 KiB a near-64-KiB body fails while its WAL frames are written at COMMIT. Each fails
    with exit 1 and an `Error:`, stores no partial task, and leaves the DB intact."""
    db = fleet["db"]
    before = content(db)
    env = clean_env(db)
    body = "z" * (MAX_BODY_BYTES - 10)
    F = ["--fleet-id", fleet["fid"]]
    for args in ([*F, "message", "send", "--agent-id", fleet["d"], "--to", fleet["a"], "--text", body],
                 [*F, "message", "broadcast", "--agent-id", fleet["d"], "--text", body],
                 [*F, "agent", "register", "--name", "X", "--description", "y" * 1900]):
        p = run_cli(args, env, preexec_fn=_limited(limit))
        if p.returncode == 0 and args[-2] == "--description":
            continue  # a small write may fit under the limit; it is then simply complete
        assert_error(p)
    with sqlite3.connect(str(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = content(db)
    assert after["tasks"] == before["tasks"], "a failed write left a task behind"
    assert {k: v for k, v in after.items() if k != "agents"} == {k: v for k, v in before.items() if k != "agents"}
    # the full disk is gone: the same send goes through
    p = run_cli([*F, "message", "send", "--agent-id", fleet["d"], "--to", fleet["a"], "--text", body], env)
    assert p.returncode == 0, p.stderr


def test_disk_full_at_commit_names_the_cause(fleet):
    """Regression: when COMMIT itself fails (disk full) SQLite has already rolled back; a
    second, unconditional ROLLBACK used to replace the cause with "cannot rollback - no
    transaction is active"."""
    db = fleet["db"]
    F = ["--fleet-id", fleet["fid"]]
    body = "z" * (MAX_BODY_BYTES - 10)
    p = run_cli([*F, "message", "send", "--agent-id", fleet["d"], "--to", fleet["a"], "--text", body],
                clean_env(db), preexec_fn=_limited(65536))
    assert_error(p, str(db))
    assert "rollback" not in p.stderr.lower()
    assert any(w in p.stderr.lower() for w in ("full", "disk", "space")), p.stderr


# ---------------------------------------------------------------- tmux faults


@pytest.fixture
def tfleet(tmp_path, db_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    f = TmuxFleet(tmp_path, db_path)
    try:
        yield f
    finally:
        f.close()


def _no_tmux_path(tmp_path) -> str:
    """A PATH holding the stand-in `claude` and `sh` basics but no tmux."""
    d = tmp_path / "notmux"
    d.mkdir()
    for tool in ("sh", "env"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, d / tool)
    assert shutil.which("tmux", path=str(d)) is None
    return f"{tmp_path / 'bin'}{os.pathsep}{d}"


def test_missing_tmux_binary(tfleet, tmp_path):
    m = tfleet.add_member("Mia")
    env = {**tfleet.denv, "PATH": _no_tmux_path(tmp_path)}
    before = content(tfleet.db)
    F = ["--fleet-id", tfleet.fid]

    p = tfleet.cafleet(*F, "member", "list", env=env, code=None)
    assert_error(p, "tmux is not installed")
    p = tfleet.cafleet(*F, "member", "capture", "--member-id", m, env=env, code=None)
    assert_error(p, "tmux is not installed")
    p = tfleet.cafleet(*F, "member", "delete", "--member-id", m, "--force", env=env, code=None)
    assert_error(p, "tmux is not installed")
    p = tfleet.cafleet(*F, "member", "create", "--name", "N", "--description", "n", env=env, code=None)
    assert_error(p, "tmux")
    p = tfleet.cafleet("fleet", "delete", tfleet.fid, env=env, code=None)
    assert_error(p, "tmux is not installed")
    assert content(tfleet.db)["agents"] == before["agents"]  # nothing registered, deregistered or deleted
    assert content(tfleet.db)["placements"] == before["placements"]

    # message send: stored, the push is skipped with the reason
    p = tfleet.cafleet(*F, "message", "send", "--agent-id", tfleet.director, "--to", m, "--text", "no tmux?",
                       env=env)
    task_id, push = p.stdout.splitlines()
    assert "no pane notified" in push and "tmux is not installed" in push
    j = json.loads(tfleet.cafleet("--json", *F, "message", "broadcast", "--agent-id", tfleet.director,
                                  "--text", "all, no tmux", env=env).stdout)
    assert [t["push"]["notified"] for t in j] == [False]
    # fleet create inside tmux without a tmux binary
    p = tfleet.cafleet("fleet", "create", env=env, code=None)
    assert p.returncode in (0, 1)
    if p.returncode == 1:
        assert_error(p, "tmux")
    # with tmux back, everything is there and the member is alive and can read its tasks
    rows = json.loads(tfleet.cafleet("--json", *F, "member", "list").stdout)
    assert [(r["agent_id"], r["pane_status"]) for r in rows] == [(m, "alive")]
    bodies = {r[0] for r in tfleet.db_rows("SELECT body FROM tasks WHERE recipient_agent_id = ?", (m,))}
    assert bodies == {"no tmux?", "all, no tmux"}
    assert task_id in {r[0] for r in tfleet.db_rows("SELECT task_id FROM tasks")}


def test_a_restarted_tmux_server_reusing_pane_ids_is_not_typed_into(tfleet, tmp_path):
    """The tmux server dies and a new one starts on the same socket: tmux numbers panes per
    server, so the member's `%N` now names a stranger's pane. cafleet must treat the member's
    pane as gone: no push, capture, exec, ping or kill reaches the stranger."""
    m = tfleet.add_member("Old")
    pane = tfleet.pane_of(m)
    assert tfleet.tmux("kill-server").returncode == 0
    typed = tmp_path / "stranger.txt"
    end = time.monotonic() + 10
    while True:  # the old server may still be on its way out ("server exited unexpectedly")
        first = subprocess.run(["tmux", "-S", tfleet.socket, "-f", "/dev/null", "new-session", "-d", "-s",
                                "stranger", "-P", "-F", "#{pane_id}", "--", "sleep", "600"],
                               capture_output=True, text=True, timeout=10)
        if first.returncode == 0 or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert first.returncode == 0, first.stderr
    panes = [first.stdout.strip()]
    while pane not in panes:  # open panes until the member's old id names a stranger's pane
        out = tfleet.tmux("split-window", "-d", "-t", panes[0], "-P", "-F", "#{pane_id}", "--", "sh", "-c",
                          f"cat > {typed}")
        assert out.returncode == 0, out.stderr
        panes.append(out.stdout.strip())
        tfleet.tmux("select-layout", "-t", panes[0], "tiled")
        assert len(panes) < 10
    F = ["--fleet-id", tfleet.fid]
    rows = json.loads(tfleet.cafleet("--json", *F, "member", "list").stdout)
    assert [r["pane_status"] for r in rows] == ["dead"]
    p = tfleet.cafleet("--json", *F, "message", "send", "--agent-id", tfleet.director, "--to", m, "--text", "secret")
    assert json.loads(p.stdout)["push"]["notified"] is False
    assert_error(tfleet.cafleet(*F, "member", "capture", "--member-id", m, code=None), "dead or gone")
    for args in (["member", "ping", "--member-id", m], ["member", "exec", "--member-id", m, "echo hi"],
                 ["member", "send-input", "--member-id", m, "--freetext", "hello"]):
        # the keystroke gate: the stranger's pane lacks the member's tag
        assert_error(tfleet.cafleet(*F, *args, code=None), f"pane {pane} is not member {m}'s")
    tfleet.cafleet(*F, "member", "delete", "--member-id", m, "--force")
    tfleet.cafleet("fleet", "delete", tfleet.fid, "--force")
    time.sleep(0.3)
    alive = tfleet.tmux("list-panes", "-a", "-F", "#{pane_id}").stdout.split()
    assert pane in alive, "the stranger's pane was killed"
    assert typed.read_text() == "", "something was typed into the stranger's pane"


def test_first_use_on_a_full_disk_recovers(tmp_path):
    """The very first command (it creates the file and the schema) fails on a full disk;
    the next one, with space again, finds a usable DB."""
    for limit in (0, 8192, 32768):
        db = tmp_path / f"l{limit}" / "cafleet.db"
        env = clean_env(db)
        assert_error(run_cli(["fleet", "create"], env, preexec_fn=_limited(limit)), str(db))
        assert run_cli(["fleet", "create"], env).returncode == 0
        assert len(json.loads(run_cli(["--json", "fleet", "list"], env).stdout)) == 1
        assert run_cli(["db", "init"], env).returncode == 0


def test_tmux_server_killed(tfleet):
    m1 = tfleet.add_member("One")
    m2 = tfleet.add_member("Two")
    assert tfleet.tmux("kill-server").returncode == 0
    F = ["--fleet-id", tfleet.fid]
    rows = json.loads(tfleet.cafleet("--json", *F, "member", "list").stdout)
    assert {r["agent_id"]: r["pane_status"] for r in rows} == {m1: "dead", m2: "dead"}
    p = tfleet.cafleet(*F, "message", "send", "--agent-id", tfleet.director, "--to", m1, "--text", "still there?")
    task_id, push = p.stdout.splitlines()
    assert push.startswith("no pane notified")
    b = json.loads(tfleet.cafleet("--json", *F, "message", "broadcast", "--agent-id", tfleet.director,
                                  "--text", "anyone?").stdout)
    assert len(b) == 2 and not any(t["push"]["notified"] for t in b)
    for args in (["member", "capture", "--member-id", m1], ["member", "ping", "--member-id", m1],
                 ["member", "exec", "--member-id", m1, "echo hi"],
                 ["member", "send-input", "--member-id", m1, "--choice", "1"]):
        assert_error(tfleet.cafleet(*F, *args, code=None), "dead or gone")
    # stored all the same
    polled = json.loads(tfleet.cafleet("--json", *F, "message", "poll", "--agent-id", m1).stdout)["tasks"]
    assert [t["body"] for t in polled] == ["anyone?", "still there?"]
    # clean-up works with the server gone: graceful delete of a gone pane, then --force
    assert "already gone" in tfleet.cafleet(*F, "member", "delete", "--member-id", m1).stdout
    assert "already gone" in tfleet.cafleet(*F, "member", "delete", "--member-id", m2, "--force").stdout
    assert tfleet.cafleet(*F, "member", "list").stdout.strip() == "No members."


KILLER = r"""
import subprocess, sys
from cafleet import tmux
when, what, socket, pane = sys.argv[1:5]
original = tmux._run
state = {"done": False}

def due(args):
    if when == "lookup":
        return args[0] == "display-message"
    # the keys go out as `copy-mode -q -t %N ; send-keys ...` in one client (cafleet.sendkeys)
    if when == "text":
        return "send-keys" in args and "-l" in args
    return "send-keys" in args and args[-1] == "Enter"

def wrapped(socket_path, *args):
    if not state["done"] and due(args):
        state["done"] = True
        cmd = ["kill-server"] if what == "server" else ["kill-pane", "-t", pane]
        subprocess.run(["tmux", "-S", socket, *cmd], check=True)
    return original(socket_path, *args)

tmux._run = wrapped  # every tmux command cafleet runs goes through tmux._run
from cafleet.cli import main
main(sys.argv[5:])
"""


@pytest.mark.parametrize("when,what", [("lookup", "pane"), ("text", "pane"), ("enter", "pane"),
                                       ("enter", "server")])
def test_pane_killed_mid_push(tfleet, when, what):
    """The pane (or the whole server) goes away at each step of a push: before the pane
    lookup, after it but before the literal text, between the text and its Enter. The task
    is stored; the push reports no pane notified, with a reason; exit 0."""
    m = tfleet.add_member("Victim")
    pane = tfleet.pane_of(m)
    body = "kill me\nmid-send"
    p = subprocess.run([PY, "-c", KILLER, when, what, tfleet.socket, pane, "--json", "--fleet-id", tfleet.fid,
                        "message", "send", "--agent-id", tfleet.director, "--to", m, "--text", body],
                       env=tfleet.denv, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    out = json.loads(p.stdout)
    if when == "lookup":
        assert out["push"]["reason"] == f"pane {pane} is dead or gone"
    assert out["push"]["notified"] is False and out["push"]["reason"], out["push"]
    rows = tfleet.db_rows("SELECT body, state FROM tasks WHERE task_id = ?", (out["task_id"],))
    assert rows == [(body, "input_required")]
    listed = tfleet.tmux("list-panes", "-a", "-F", "#{pane_id}")
    assert listed.returncode != 0 or pane not in listed.stdout.split()
    rows = json.loads(tfleet.cafleet("--json", "--fleet-id", tfleet.fid, "member", "list").stdout)
    assert rows[0]["pane_status"] == "dead" and rows[0]["unread"] == 1


LOCK_AFTER_SPLIT = r"""
import subprocess, sys
from cafleet import tmux
db, hold = sys.argv[1], sys.argv[2]
original = tmux.split_window
holders = []

def wrapped(*a, **k):
    pane = original(*a, **k)
    # the moment the pane exists, another program takes the DB's write lock for a while
    p = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time\n"
                          "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                          "c.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\n"
                          "time.sleep(float(sys.argv[2]))\nc.execute('ROLLBACK')", db, hold],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    holders.append(p)
    return pane

tmux.split_window = wrapped
from cafleet.cli import main
main(sys.argv[3:])
"""


def test_member_create_rolled_back_when_the_db_locks_after_the_split(tfleet):
    before_agents = content(tfleet.db)["agents"]
    before_panes = tfleet.tmux("list-panes", "-a", "-F", "#{pane_id}").stdout.split()
    env = {**tfleet.denv, "CAFLEET_BUSY_TIMEOUT_MS": "300"}
    p = subprocess.run([PY, "-c", LOCK_AFTER_SPLIT, str(tfleet.db), "2.5", "--fleet-id", tfleet.fid, "member",
                        "create", "--name", "Orphan", "--description", "d", "--", "hi"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("Error:") and "locked" in p.stderr
    tfleet.wait(lambda: tfleet.tmux("list-panes", "-a", "-F", "#{pane_id}").stdout.split() == before_panes,
                "the new pane to be killed", 10)  # no orphan pane (this part holds)
    time.sleep(2.5)  # the lock is gone
    assert content(tfleet.db)["agents"] == before_agents, "an orphan member row was left behind"
    assert tfleet.cafleet("--fleet-id", tfleet.fid, "member", "list").stdout.strip() == "No members."


def test_pane_killed_racing_a_real_push(tfleet):
    """No injection: kill the pane the moment the member has read line 1 of the preview (the
    Enter is still to come). Whatever the race gives, the send exits 0 and the task is stored."""
    m = tfleet.add_member("Racer")
    pane = tfleet.pane_of(m)
    proc = subprocess.Popen([PY, "-m", "cafleet", "--json", "--fleet-id", tfleet.fid, "message", "send",
                             "--agent-id", tfleet.director, "--to", m, "--text", "race"],
                            env=tfleet.denv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        tfleet.wait(lambda: any(e["value"].startswith("[cafleet]") for e in tfleet.log(m)), "line 1", 10)
        tfleet.tmux("kill-pane", "-t", pane)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "Traceback" not in err, err
    data = json.loads(out)
    assert tfleet.db_rows("SELECT body FROM tasks WHERE task_id = ?", (data["task_id"],)) == [("race",)]
    assert isinstance(data["push"]["notified"], bool)
