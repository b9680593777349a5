"""The broker API (cafleet.broker) against CONTRACT.md: storage, fleets, agents, tasks.

Every check reads the DB back through an independent `sqlite3` connection where the claim
is about what is stored, so a broker that merely *returns* the right thing is not enough.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import sqlite3
import stat
import threading
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cafleet.broker as broker_mod
from cafleet.broker import MAX_BODY_BYTES, Broker
from cafleet.errors import CafleetError, Conflict, DatabaseError, Forbidden, NotFound, UsageError
from cafleet.schema import MIGRATIONS, SCHEMA_VERSION
from cafleet.store import db_path

UUID4_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
TIME_RE = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
PLACEMENT = {"tmux_socket": "/tmp/cft-x/tmux", "session_name": "main", "window_id": "@3", "pane_id": "%7"}


def assert_uuid4(value):
    assert isinstance(value, str) and UUID4_RE.match(value), value
    u = uuid.UUID(value)
    assert u.version == 4 and str(u) == value


def sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@contextlib.contextmanager
def raw(path):
    """An independent connection, to check what is really stored (committed and closed)."""
    conn = sqlite3.connect(str(path))
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def task_rows(path) -> list[tuple]:
    with raw(path) as c:
        return c.execute("SELECT task_id, sender_agent_id, recipient_agent_id, body, state FROM tasks ORDER BY seq").fetchall()


@pytest.fixture
def broker(db_path):
    b = Broker.open()
    yield b
    b.close()


@pytest.fixture
def fleet(broker):
    """A fleet with its Director and two plain agents, Alice and Bob."""
    f = broker.create_fleet("team")
    fid = f["fleet_id"]
    alice = broker.register_agent(fid, "Alice", "does A")
    bob = broker.register_agent(fid, "Bob", "does B")
    return {"fleet_id": fid, "director": f["director"]["agent_id"], "alice": alice["agent_id"], "bob": bob["agent_id"]}


# ---------------------------------------------------------------- storage


def test_first_open_creates_dir_0700_and_file_0600_even_with_umask_0(db_path):
    old = os.umask(0)  # the modes must come from the code, not from a friendly umask
    try:
        with Broker.open() as b:
            assert os.path.exists(db_path)
            assert stat.S_IMODE(os.stat(db_path.parent).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
            b.create_fleet("x")  # a write: WAL side files appear, and must not be wider
            for side in ("-wal", "-shm"):
                p = str(db_path) + side
                if os.path.exists(p):
                    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, side
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600


def test_file_is_0600_before_any_schema_write(db_path, monkeypatch):
    """The mode is set at creation: the file never exists with wider permissions, even
    while the schema is being written."""
    seen = []
    real_migrate = Broker._migrate

    def spy(self):
        seen.append(stat.S_IMODE(os.stat(db_path).st_mode))
        return real_migrate(self)

    monkeypatch.setattr(Broker, "_migrate", spy)
    old = os.umask(0)
    try:
        Broker.open().close()
    finally:
        os.umask(old)
    assert seen == [0o600]


def test_wal_foreign_keys_busy_timeout_and_user_version(broker, db_path):
    with raw(db_path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"fleets", "agents", "placements", "tasks"} <= tables
    assert broker.schema_version() == SCHEMA_VERSION
    assert broker.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert broker.conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    # foreign keys are really enforced on the broker's connection
    with pytest.raises(sqlite3.IntegrityError):
        broker.conn.execute(
            "INSERT INTO agents (agent_id, fleet_id, name, role, created_at) VALUES (?,?,?,?,?)",
            (broker_mod.new_id(), broker_mod.new_id(), "x", "agent", "t"),
        )


def test_busy_timeout_from_environment(db_path, monkeypatch):
    monkeypatch.setenv("CAFLEET_BUSY_TIMEOUT_MS", "1234")
    with Broker.open() as b:
        assert b.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234


def test_open_is_idempotent_and_keeps_data(db_path):
    with Broker.open() as b:
        f = b.create_fleet("keep")
    digest_tables = None
    for _ in range(3):
        with Broker.open() as b:
            assert b.schema_version() == SCHEMA_VERSION
            assert b.get_fleet(f["fleet_id"])["name"] == "keep"
            with raw(db_path) as c:
                tables = c.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
            digest_tables = digest_tables or tables
            assert tables == digest_tables


def test_path_resolution():
    assert db_path({"CAFLEET_DB": "/abs/x.db", "XDG_DATA_HOME": "/xdg"}) == "/abs/x.db"
    assert db_path({"XDG_DATA_HOME": "/xdg"}) == "/xdg/cafleet/cafleet.db"
    home = os.path.expanduser("~")
    assert db_path({}) == os.path.join(home, ".local", "share", "cafleet", "cafleet.db")
    assert db_path({"XDG_DATA_HOME": ""}) == os.path.join(home, ".local", "share", "cafleet", "cafleet.db")
    for rel in ("x.db", "./x.db", "data/cafleet.db", "~/x.db"):
        with pytest.raises(UsageError) as e:
            db_path({"CAFLEET_DB": rel})
        assert "CAFLEET_DB" in e.value.message and e.value.exit_code == 2


def test_path_resolution_from_the_real_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("CAFLEET_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with Broker.open() as b:
        assert b.path == str(tmp_path / "xdg" / "cafleet" / "cafleet.db")
    assert (tmp_path / "xdg" / "cafleet" / "cafleet.db").is_file()

    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with Broker.open() as b:
        assert b.path == str(tmp_path / "home" / ".local" / "share" / "cafleet" / "cafleet.db")
    assert (tmp_path / "home" / ".local" / "share" / "cafleet" / "cafleet.db").is_file()
    assert stat.S_IMODE(os.stat(tmp_path / "home" / ".local" / "share" / "cafleet").st_mode) == 0o700

    monkeypatch.setenv("CAFLEET_DB", "relative/c.db")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError):
        Broker.open()
    assert not (tmp_path / "relative").exists()


def test_relative_xdg_data_home_is_ignored():
    home = os.path.expanduser("~")
    assert db_path({"XDG_DATA_HOME": "rel/data"}) == os.path.join(home, ".local", "share", "cafleet", "cafleet.db")


def test_newer_schema_is_refused_and_file_untouched(db_path):
    db_path.parent.mkdir(parents=True)
    with raw(db_path) as c:
        c.execute("CREATE TABLE future (x)")
        c.execute("INSERT INTO future VALUES ('from the future')")
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before, mtime = sha(db_path), os.stat(db_path).st_mtime_ns
    listing = sorted(os.listdir(db_path.parent))
    with pytest.raises(DatabaseError) as e:
        Broker.open()
    assert "newer" in e.value.message and e.value.exit_code == 1
    assert sha(db_path) == before and os.stat(db_path).st_mtime_ns == mtime
    assert sorted(os.listdir(db_path.parent)) == listing  # no -wal / -shm / journal left behind
    with raw(db_path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


@pytest.mark.parametrize("content", [random.Random(7).randbytes(16384), b"hello, not a database\n" * 300],
                         ids=["random-bytes", "text"])
def test_corrupt_file_is_a_database_error_and_left_alone(db_path, content):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(content)
    with pytest.raises(DatabaseError) as e:
        Broker.open()
    assert str(db_path) in e.value.message
    assert db_path.read_bytes() == content


def test_unwritable_location_is_a_database_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file, not a directory")
    for target in (blocker / "c.db", blocker / "sub" / "c.db"):
        monkeypatch.setenv("CAFLEET_DB", str(target))
        with pytest.raises(DatabaseError) as e:
            Broker.open()
        assert str(blocker) in e.value.message
    assert blocker.read_text() == "I am a file, not a directory"


def test_db_path_that_is_a_directory_is_a_database_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CAFLEET_DB", str(tmp_path))
    with pytest.raises(DatabaseError):
        Broker.open()


def test_open_without_create_leaves_machine_untouched(db_path):
    with pytest.raises(NotFound):
        Broker.open(create=False)
    assert not db_path.parent.exists()


def test_first_open_waits_for_a_concurrent_first_open(db_path):
    """Another cafleet process is in the middle of creating the same fresh DB (it holds the
    write lock for its WAL switch); this open must wait for it, not fail."""
    db_path.parent.mkdir(mode=0o700)
    fd = os.open(db_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    other = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    releaser.start()
    try:
        t0 = time.monotonic()
        with Broker.open() as b:
            assert b.schema_version() == SCHEMA_VERSION
        assert time.monotonic() - t0 >= 0.2
    finally:
        releaser.join()
        other.close()


# ---------------------------------------------------------------- fleets


def test_create_fleet_without_placement(broker, db_path):
    f = broker.create_fleet("alpha")
    assert_uuid4(f["fleet_id"])
    d = f["director"]
    assert_uuid4(d["agent_id"])
    assert d["agent_id"] != f["fleet_id"]
    assert (f["name"], d["name"], d["role"], d["status"]) == ("alpha", "Director", "director", "active")
    assert d["placement"] is None and f["director_agent_id"] == d["agent_id"]
    assert TIME_RE.match(f["created_at"]) and f["deleted_at"] is None
    with raw(db_path) as c:
        assert c.execute("SELECT COUNT(*) FROM placements").fetchone()[0] == 0
        assert c.execute("SELECT name, role FROM agents WHERE agent_id = ?", (d["agent_id"],)).fetchone() == ("Director", "director")


def test_create_fleet_with_placement(broker, db_path):
    f = broker.create_fleet("beta", "codex", dict(PLACEMENT))
    p = f["director"]["placement"]
    assert {k: p[k] for k in PLACEMENT} == PLACEMENT and p["coding_agent"] == "codex"
    assert broker.get_agent(f["fleet_id"], f["director"]["agent_id"])["placement"]["pane_id"] == "%7"
    with raw(db_path) as c:
        assert c.execute("SELECT agent_id, session_name, window_id, pane_id, coding_agent FROM placements").fetchall() == [
            (f["director"]["agent_id"], "main", "@3", "%7", "codex")
        ]


def test_create_fleet_default_name_and_bad_names(broker):
    f = broker.create_fleet()
    assert f["name"] == f"fleet-{f['fleet_id'][:8]}"
    for bad in ("a\nb", "tab\there", "x" * (broker_mod.MAX_NAME_CHARS + 1), "\ud800"):
        with pytest.raises(UsageError):
            broker.create_fleet(bad)
    assert [x["fleet_id"] for x in broker.list_fleets()] == [f["fleet_id"]]


def test_list_fleets_counts_members_and_hides_deleted(broker):
    a = broker.create_fleet("a")
    b = broker.create_fleet("b")
    c = broker.create_fleet("c")
    fid = a["fleet_id"]
    d = a["director"]["agent_id"]
    m1 = broker.register_agent(fid, "m1", role="member", parent_agent_id=d)
    broker.register_agent(fid, "m2", role="member", parent_agent_id=d)
    broker.register_agent(fid, "plain")  # an agent without a pane is not a member
    broker.deregister_agent(fid, m1["agent_id"])
    broker.delete_fleet(b["fleet_id"])
    rows = broker.list_fleets()
    assert [r["fleet_id"] for r in rows] == [fid, c["fleet_id"]]
    by_id = {r["fleet_id"]: r for r in rows}
    assert by_id[fid]["member_count"] == 1 and by_id[c["fleet_id"]]["member_count"] == 0
    assert by_id[fid]["director_agent_id"] == d and by_id[fid]["director_name"] == "Director"


def test_show_fleet_with_agents(broker, fleet):
    f = broker.get_fleet(fleet["fleet_id"])
    assert f["name"] == "team" and f["director_agent_id"] == fleet["director"]
    agents = broker.list_agents(fleet["fleet_id"])
    assert [a["agent_id"] for a in agents] == [fleet["director"], fleet["alice"], fleet["bob"]]
    with pytest.raises(NotFound):
        broker.get_fleet(broker_mod.new_id())


def test_delete_fleet_deregisters_everyone_and_is_idempotent(broker, db_path):
    f = broker.create_fleet("doomed", placement=dict(PLACEMENT))
    fid = f["fleet_id"]
    a = broker.register_agent(fid, "A")
    r = broker.delete_fleet(fid)
    assert r["already_deleted"] is False and set(r["deregistered"]) == {f["director"]["agent_id"], a["agent_id"]}
    with raw(db_path) as c:
        assert {s for (s,) in c.execute("SELECT status FROM agents WHERE fleet_id = ?", (fid,))} == {"deregistered"}
        assert c.execute("SELECT COUNT(*) FROM placements WHERE fleet_id = ?", (fid,)).fetchone()[0] == 0
        assert c.execute("SELECT deleted_at FROM fleets WHERE fleet_id = ?", (fid,)).fetchone()[0] is not None
    again = broker.delete_fleet(fid)
    assert again["already_deleted"] is True and again["deregistered"] == [] and again["deleted_at"] == r["deleted_at"]
    with pytest.raises(NotFound):
        broker.get_fleet(fid)
    assert broker.get_fleet(fid, include_deleted=True)["deleted_at"] == r["deleted_at"]
    assert fid not in [x["fleet_id"] for x in broker.list_fleets()]
    with pytest.raises(NotFound):
        broker.delete_fleet(broker_mod.new_id())


# ---------------------------------------------------------------- agents


def test_register_list_show_deregister(broker, fleet, db_path):
    fid = fleet["fleet_id"]
    c = broker.register_agent(fid, "Carol", "reviews things")
    assert_uuid4(c["agent_id"])
    assert (c["name"], c["description"], c["role"], c["status"], c["placement"]) == ("Carol", "reviews things", "agent", "active", None)
    assert c["agent_id"] in [a["agent_id"] for a in broker.list_agents(fid)]
    assert broker.get_agent(fid, c["agent_id"])["name"] == "Carol"
    gone = broker.deregister_agent(fid, c["agent_id"])
    assert gone["status"] == "deregistered" and gone["deregistered_at"]
    assert c["agent_id"] not in [a["agent_id"] for a in broker.list_agents(fid)]
    assert c["agent_id"] in [a["agent_id"] for a in broker.list_agents(fid, include_deregistered=True)]
    assert broker.get_agent(fid, c["agent_id"], active=False)["status"] == "deregistered"
    with pytest.raises(NotFound):
        broker.get_agent(fid, c["agent_id"])
    with pytest.raises(NotFound):
        broker.deregister_agent(fid, c["agent_id"])
    with raw(db_path) as conn:
        assert conn.execute("SELECT status FROM agents WHERE agent_id = ?", (c["agent_id"],)).fetchone() == ("deregistered",)


def test_register_rejects_bad_names(broker, fleet):
    for bad in ("", "   ", "two\nlines", "bell\x07", "x" * 201):
        with pytest.raises(UsageError):
            broker.register_agent(fleet["fleet_id"], bad, "d")
    with pytest.raises(UsageError):
        broker.register_agent(fleet["fleet_id"], "ok", "x" * (broker_mod.MAX_DESCRIPTION_CHARS + 1))
    assert len(broker.list_agents(fleet["fleet_id"])) == 3


def test_root_director_cannot_be_deregistered(broker, fleet):
    with pytest.raises(Forbidden) as e:
        broker.deregister_agent(fleet["fleet_id"], fleet["director"])
    assert "fleet delete" in e.value.message
    assert broker.get_agent(fleet["fleet_id"], fleet["director"])["status"] == "active"


def test_other_fleets_ids_are_not_found(broker, fleet):
    other = broker.create_fleet("other")
    oid, odir = other["fleet_id"], other["director"]["agent_id"]
    stranger = broker.register_agent(oid, "Stranger")["agent_id"]
    fid = fleet["fleet_id"]
    with pytest.raises(NotFound):
        broker.get_agent(fid, stranger)
    with pytest.raises(NotFound):
        broker.deregister_agent(fid, stranger)
    with pytest.raises(NotFound):
        broker.send(fid, fleet["alice"], stranger, "hi")
    with pytest.raises(NotFound):
        broker.send(fid, stranger, fleet["alice"], "hi")
    with pytest.raises(NotFound):
        broker.poll(fid, stranger)
    # a task of the other fleet is invisible from this one, even to an agent that exists here
    t = broker.send(oid, odir, stranger, "secret")["task_id"]
    for call in (lambda: broker.ack(fid, fleet["alice"], [t]), lambda: broker.cancel(fid, fleet["alice"], t),
                 lambda: broker.show_task(fid, fleet["alice"], t)):
        with pytest.raises(NotFound):
            call()
    assert broker.get_agent(oid, stranger)["status"] == "active"
    assert [x["task_id"] for x in broker.poll(oid, stranger)] == [t]


# ---------------------------------------------------------------- tasks


def test_send_poll_newest_first_with_full_rows(broker, fleet, db_path):
    fid, a, b, d = fleet["fleet_id"], fleet["alice"], fleet["bob"], fleet["director"]
    t1 = broker.send(fid, a, b, "first")
    t2 = broker.send(fid, d, b, "second")
    t3 = broker.send(fid, a, b, "third")
    for t in (t1, t2, t3):
        assert_uuid4(t["task_id"])
        assert t["state"] == "input_required" and t["recipient"]["agent_id"] == b
    polled = broker.poll(fid, b)
    assert [p["task_id"] for p in polled] == [t3["task_id"], t2["task_id"], t1["task_id"]]
    assert [p["body"] for p in polled] == ["third", "second", "first"]
    assert [p["sender_name"] for p in polled] == ["Alice", "Director", "Alice"]
    assert polled[0]["sender_agent_id"] == a and TIME_RE.match(polled[0]["created_at"])
    assert [p["task_id"] for p in broker.poll(fid, b, limit=2)] == [t3["task_id"], t2["task_id"]]
    assert broker.poll(fid, a) == []
    with pytest.raises(UsageError):
        broker.poll(fid, b, limit=0)
    assert [r[0] for r in task_rows(db_path)] == [t1["task_id"], t2["task_id"], t3["task_id"]]


def test_poll_is_read_only_apart_from_last_seen(broker, fleet, db_path):
    fid = fleet["fleet_id"]
    broker.send(fid, fleet["alice"], fleet["bob"], "x")
    before = task_rows(db_path)
    with raw(db_path) as c:
        agents_before = c.execute("SELECT agent_id, name, status FROM agents ORDER BY agent_id").fetchall()
    broker.poll(fid, fleet["bob"])
    broker.poll(fid, fleet["bob"])
    assert task_rows(db_path) == before
    with raw(db_path) as c:
        assert c.execute("SELECT agent_id, name, status FROM agents ORDER BY agent_id").fetchall() == agents_before


def test_ack_one_and_many(broker, fleet, db_path):
    fid, a, b = fleet["fleet_id"], fleet["alice"], fleet["bob"]
    ids = [broker.send(fid, a, b, f"m{i}")["task_id"] for i in range(4)]
    r = broker.ack(fid, b, [ids[0]])
    assert r == [{"task_id": ids[0], "state": "completed", "already_acked": False}]
    r = broker.ack(fid, b, [ids[1], ids[2], ids[1]])
    assert [x["task_id"] for x in r] == [ids[1], ids[2]]
    assert [p["task_id"] for p in broker.poll(fid, b)] == [ids[3]]
    states = {t: s for t, _, _, _, s in task_rows(db_path)}
    assert [states[i] for i in ids] == ["completed", "completed", "completed", "input_required"]


def test_ack_twice_is_harmless(broker, fleet, db_path):
    fid, a, b = fleet["fleet_id"], fleet["alice"], fleet["bob"]
    t = broker.send(fid, a, b, "once")["task_id"]
    broker.ack(fid, b, [t])
    after_first = task_rows(db_path)
    assert broker.ack(fid, b, [t]) == [{"task_id": t, "state": "completed", "already_acked": True}]
    assert task_rows(db_path) == after_first


@pytest.mark.parametrize("intruder", ["foreign", "unknown", "canceled", "other-fleet"])
def test_ack_batch_is_all_or_nothing(broker, fleet, db_path, intruder):
    fid, a, b, d = fleet["fleet_id"], fleet["alice"], fleet["bob"], fleet["director"]
    mine = [broker.send(fid, a, b, "mine 1")["task_id"], broker.send(fid, d, b, "mine 2")["task_id"]]
    if intruder == "foreign":
        bad, exc = broker.send(fid, b, a, "to alice")["task_id"], Forbidden
    elif intruder == "unknown":
        bad, exc = broker_mod.new_id(), NotFound
    elif intruder == "canceled":
        bad = broker.send(fid, a, b, "retracted")["task_id"]
        broker.cancel(fid, a, bad)
        exc = Conflict
    else:
        o = broker.create_fleet("o")
        bad, exc = broker.send(o["fleet_id"], o["director"]["agent_id"], o["director"]["agent_id"], "x")["task_id"], NotFound
    before = task_rows(db_path)
    with pytest.raises(exc):
        broker.ack(fid, b, [mine[0], bad, mine[1]])
    assert task_rows(db_path) == before
    assert {p["task_id"] for p in broker.poll(fid, b)} >= set(mine)


def test_ack_by_non_recipient_is_forbidden(broker, fleet, db_path):
    fid = fleet["fleet_id"]
    t = broker.send(fid, fleet["alice"], fleet["bob"], "for bob")["task_id"]
    for who in (fleet["alice"], fleet["director"]):
        with pytest.raises(Forbidden):
            broker.ack(fid, who, [t])
    assert task_rows(db_path)[0][4] == "input_required"


def test_cancel_rules(broker, fleet, db_path):
    fid, a, b = fleet["fleet_id"], fleet["alice"], fleet["bob"]
    t = broker.send(fid, a, b, "oops")["task_id"]
    for who in (b, fleet["director"]):
        with pytest.raises(Forbidden):
            broker.cancel(fid, who, t)
    assert broker.cancel(fid, a, t)["state"] == "canceled"
    assert broker.cancel(fid, a, t)["state"] == "canceled"  # twice is harmless
    assert broker.poll(fid, b) == []
    with pytest.raises(Conflict):
        broker.ack(fid, b, [t])
    assert task_rows(db_path)[0][4] == "canceled"

    t2 = broker.send(fid, a, b, "read it")["task_id"]
    broker.ack(fid, b, [t2])
    with pytest.raises(Conflict):
        broker.cancel(fid, a, t2)
    assert {r[0]: r[4] for r in task_rows(db_path)}[t2] == "completed"
    with pytest.raises(NotFound):
        broker.cancel(fid, a, broker_mod.new_id())


def test_show_only_for_sender_or_recipient(broker, fleet):
    fid, a, b = fleet["fleet_id"], fleet["alice"], fleet["bob"]
    t = broker.send(fid, a, b, "private")["task_id"]
    assert broker.show_task(fid, a, t)["body"] == "private"
    shown = broker.show_task(fid, b, t)
    assert (shown["sender_agent_id"], shown["recipient_agent_id"], shown["state"]) == (a, b, "input_required")
    with pytest.raises(Forbidden):
        broker.show_task(fid, fleet["director"], t)
    with pytest.raises(NotFound):
        broker.show_task(fid, a, broker_mod.new_id())


def test_broadcast_reaches_every_other_active_agent_once(broker, fleet, db_path):
    fid, d = fleet["fleet_id"], fleet["director"]
    gone = broker.register_agent(fid, "Gone")["agent_id"]
    broker.deregister_agent(fid, gone)
    tasks = broker.broadcast(fid, d, "all hands")
    assert sorted(t["recipient_agent_id"] for t in tasks) == sorted([fleet["alice"], fleet["bob"]])
    assert len({t["task_id"] for t in tasks}) == 2
    for t in tasks:
        assert_uuid4(t["task_id"])
    assert len({t["broadcast_id"] for t in tasks}) == 1 and tasks[0]["broadcast_id"]
    for who in (fleet["alice"], fleet["bob"]):
        assert [p["body"] for p in broker.poll(fid, who)] == ["all hands"]
    assert broker.poll(fid, d) == []
    assert len(task_rows(db_path)) == 2
    # alone in a fleet: nothing sent, nothing stored
    solo = broker.create_fleet("solo")
    assert broker.broadcast(solo["fleet_id"], solo["director"]["agent_id"], "echo?") == []
    assert len(task_rows(db_path)) == 2


def test_broadcast_is_one_transaction(broker, fleet, db_path, monkeypatch):
    """A failure part-way through a broadcast stores none of its tasks."""
    real = Broker._insert_task
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Broker, "_insert_task", flaky)
    with pytest.raises(CafleetError):
        broker.broadcast(fleet["fleet_id"], fleet["director"], "half?")
    assert task_rows(db_path) == []


BODY_OK = [
    "x",
    "a" * MAX_BODY_BYTES,
    "é" * (MAX_BODY_BYTES // 2),
    "😀" * (MAX_BODY_BYTES // 4),
    " padded ",
    "\x00nul",
]
BODY_BAD = [
    "",
    " ",
    "\n\t \r\n",
    "\u3000\u2003",
    "a" * (MAX_BODY_BYTES + 1),
    "é" * (MAX_BODY_BYTES // 2) + "a",
    "😀" * (MAX_BODY_BYTES // 4 + 1),  # far fewer characters than bytes
    "ok\ud800",
    "\udcff",
]


@pytest.mark.parametrize("body", BODY_OK, ids=lambda b: f"ok-{len(b)}")
def test_body_within_limit_is_stored_exactly(broker, fleet, db_path, body):
    t = broker.send(fleet["fleet_id"], fleet["alice"], fleet["bob"], body)
    assert task_rows(db_path)[0][3] == body
    assert broker.poll(fleet["fleet_id"], fleet["bob"])[0]["body"] == body
    assert broker.show_task(fleet["fleet_id"], fleet["alice"], t["task_id"])["body"] == body


@pytest.mark.parametrize("body", BODY_BAD, ids=lambda b: f"bad-{len(b)}")
def test_body_refused_and_nothing_stored(broker, fleet, db_path, body):
    with pytest.raises(UsageError) as e:
        broker.send(fleet["fleet_id"], fleet["alice"], fleet["bob"], body)
    assert e.value.exit_code == 2 and "--text" in e.value.message
    with pytest.raises(UsageError):
        broker.broadcast(fleet["fleet_id"], fleet["alice"], body)
    assert task_rows(db_path) == []
    assert broker.poll(fleet["fleet_id"], fleet["bob"]) == []


def test_body_limit_message_names_the_limit(broker, fleet):
    with pytest.raises(UsageError) as e:
        broker.send(fleet["fleet_id"], fleet["alice"], fleet["bob"], "a" * (MAX_BODY_BYTES + 1))
    assert str(MAX_BODY_BYTES) in e.value.message


class Clock:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return f"2031-01-01T00:00:{self.n // 1000:02d}.{self.n % 1000:03d}Z"


def test_last_seen_updated_by_send_poll_ack_cancel_show(broker, fleet, monkeypatch):
    fid, a, b = fleet["fleet_id"], fleet["alice"], fleet["bob"]
    clock = Clock()
    monkeypatch.setattr(broker_mod, "now", clock)

    def seen(agent):
        return broker.get_agent(fid, agent)["last_seen"]

    assert seen(b) is None  # registering is not "being seen"
    t = broker.send(fid, a, b, "ping")["task_id"]
    s_a = seen(a)
    assert s_a.startswith("2031-") and seen(b) is None
    broker.poll(fid, b)
    s_b = seen(b)
    assert s_b is not None and s_b > s_a
    broker.ack(fid, b, [t])
    assert seen(b) > s_b
    s_b = seen(b)
    t2 = broker.send(fid, a, b, "again")["task_id"]
    s_a2 = seen(a)
    assert s_a2 > s_b
    broker.cancel(fid, a, t2)
    assert seen(a) > s_a2
    s_a3 = seen(a)
    broker.show_task(fid, a, t2)
    assert seen(a) > s_a3
    # a failed call as someone else does not touch a
    s_a4 = seen(a)
    with pytest.raises(Forbidden):
        broker.ack(fid, fleet["director"], [t2])
    assert seen(a) == s_a4


def test_deregistered_agent_cannot_send_poll_or_ack(broker, fleet, db_path):
    fid, a, b = fleet["fleet_id"], fleet["alice"], fleet["bob"]
    t = broker.send(fid, a, b, "before")["task_id"]
    broker.deregister_agent(fid, b)
    before = task_rows(db_path)
    for call in (lambda: broker.send(fid, b, a, "hi"), lambda: broker.poll(fid, b), lambda: broker.ack(fid, b, [t]),
                 lambda: broker.broadcast(fid, b, "hi"), lambda: broker.send(fid, a, b, "to the departed")):
        with pytest.raises(NotFound):
            call()
    assert task_rows(db_path) == before


def test_deleted_fleet_is_not_found_everywhere(broker, fleet, db_path):
    fid, a, b = fleet["fleet_id"], fleet["alice"], fleet["bob"]
    t = broker.send(fid, a, b, "last words")["task_id"]
    broker.delete_fleet(fid)
    calls = [
        lambda: broker.send(fid, a, b, "x"),
        lambda: broker.broadcast(fid, a, "x"),
        lambda: broker.poll(fid, b),
        lambda: broker.ack(fid, b, [t]),
        lambda: broker.cancel(fid, a, t),
        lambda: broker.show_task(fid, a, t),
        lambda: broker.register_agent(fid, "late"),
        lambda: broker.list_agents(fid),
        lambda: broker.get_agent(fid, a),
        lambda: broker.deregister_agent(fid, a),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert len(task_rows(db_path)) == 1


def test_every_returned_id_is_a_canonical_uuid4(broker):
    f = broker.create_fleet()
    fid, d = f["fleet_id"], f["director"]["agent_id"]
    ids = [fid, d]
    agents = [broker.register_agent(fid, f"a{i}")["agent_id"] for i in range(5)]
    ids += agents
    ids += [broker.send(fid, d, x, "hi")["task_id"] for x in agents]
    ids += [t["task_id"] for t in broker.broadcast(fid, d, "all")]
    ids += [t["broadcast_id"] for t in broker.broadcast(fid, d, "all")]
    ids += [broker_mod.new_id() for _ in range(200)]
    for i in ids:
        assert_uuid4(i)
    assert len(set(ids)) == len(ids) - 4  # the second broadcast's id repeats 5x: 5 rows, 1 id


def test_is_uuid4_and_check_id():
    good = str(uuid.uuid4())
    assert broker_mod.is_uuid4(good)
    for bad in (good.upper(), good.replace("-", ""), "{" + good + "}", good + "\n", " " + good,
                str(uuid.uuid1()), "00000000-0000-0000-0000-000000000000", "", None, 5):
        assert not broker_mod.is_uuid4(bad), bad
    with pytest.raises(UsageError) as e:
        broker_mod.check_id("nope", "--task-id")
    assert "--task-id" in e.value.message and e.value.exit_code == 2


# ---------------------------------------------------------------- round trip


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    path = tmp_path_factory.mktemp("rt") / "cafleet.db"
    b = Broker.open(str(path))
    f = b.create_fleet("rt")
    fid = f["fleet_id"]
    a = b.register_agent(fid, "A")["agent_id"]
    r = b.register_agent(fid, "R")["agent_id"]
    yield b, fid, a, r, path
    b.close()


def _sendable(s: str) -> bool:
    return bool(s.strip()) and len(s.encode("utf-8")) <= MAX_BODY_BYTES


NASTY = st.sampled_from([
    "\x00", "\x01", "\x1b[31m", "\x7f", "\x9b", "\r\n", "\n", "\t", "\u2028", "\u2029", "\u202e", "\u2066",
    "שלום", "مرحبا", "👩‍👩‍👧‍👦", "🇺🇳", "e\u0301", "\ufeff", "\U0010ffff", "\U000e0001", "\ufffd", "'", '"', "\\",
    "%s", "?", ";--", "\x00DROP TABLE tasks;",
])
BODIES = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
    st.lists(st.one_of(NASTY, st.text(max_size=5)), min_size=1, max_size=30).map("".join),
).filter(_sendable)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_body_round_trips_exactly(shared, body):
    b, fid, a, r, path = shared
    t = b.send(fid, a, r, body)
    polled = b.poll(fid, r, limit=1)
    assert polled[0]["task_id"] == t["task_id"]
    assert polled[0]["body"] == body and type(polled[0]["body"]) is str
    with raw(path) as c:
        assert c.execute("SELECT body FROM tasks WHERE task_id = ?", (t["task_id"],)).fetchone()[0] == body
    b.ack(fid, r, [t["task_id"]])


def test_a_version_1_file_migrates_forward_keeping_its_data(db_path):
    """A DB written by schema 1 (no placements.pane_pid) opens, migrates to the current
    version, and keeps its fleets, agents, placements and tasks."""
    from cafleet import broker as broker_mod

    db_path.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(str(db_path))
    conn.executescript(MIGRATIONS[1])
    fid, did = broker_mod.new_id(), broker_mod.new_id()
    conn.execute("INSERT INTO fleets VALUES (?, 'old', ?, '2026-01-01T00:00:00.000Z', NULL)", (fid, did))
    conn.execute("INSERT INTO agents (agent_id, fleet_id, name, role, created_at) VALUES (?, ?, 'Director',"
                 " 'director', '2026-01-01T00:00:00.000Z')", (did, fid))
    conn.execute("INSERT INTO placements (agent_id, fleet_id, tmux_socket, session_name, window_id, pane_id,"
                 " coding_agent, created_at) VALUES (?, ?, '/tmp/s', 's', '@1', '%1', 'claude', 'x')", (did, fid))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Broker.open() as b:
        assert b.schema_version() == SCHEMA_VERSION >= 2
        d = b.get_agent(fid, did)
        assert d["placement"]["pane_id"] == "%1" and d["placement"]["pane_pid"] is None
        assert [f["name"] for f in b.list_fleets()] == ["old"]
