"""Several processes opening and writing one broker DB at once, the fresh file included
(CONTRACT.md "Identifiers and storage": WAL, a busy timeout, `BEGIN IMMEDIATE`): no process
ever sees "database is locked" or any other error. Exactly-once delivery under many senders
and a concurrent poller/acker is in test_reliability.py."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import time

from cafleet.broker import Broker
from test_reliability import _collect  # noqa: E402  (tests/ is on sys.path)

CTX = mp.get_context("fork")  # the workers open their own connections; none is inherited in use
DEADLINE_S = 20


def _open_and_write(db, fid, i, barrier, out):
    try:
        barrier.wait(10)
        with Broker.open(db) as b:
            a = b.register_agent(fid, f"P{i}")["agent_id"]
            t = b.send(fid, a, b.get_fleet(fid)["director_agent_id"], f"hello from {i}")["task_id"]
        out.put(("ok", t))
    except Exception as e:  # noqa: BLE001
        out.put(("error", f"{type(e).__name__}: {e}"))


def test_simultaneous_opens_of_an_existing_db(db_path):
    db = str(db_path)
    with Broker.open(db) as b:
        f = b.create_fleet("busy")
    n, rounds = 8, 3
    results = []
    for r in range(rounds):
        out = CTX.Queue()
        barrier = CTX.Barrier(n)
        procs = [CTX.Process(target=_open_and_write, args=(db, f["fleet_id"], r * n + i, barrier, out)) for i in range(n)]
        for p in procs:
            p.start()
        results += _collect(out, procs, 20)
    assert [r for r in results if r[0] != "ok"] == []
    assert len(results) == n * rounds
    with Broker.open(db) as b:
        inbox = b.poll(f["fleet_id"], f["director"]["agent_id"])
    assert sorted(t["task_id"] for t in inbox) == sorted(r[1] for r in results)


def _hold_write_lock(db, ready, hold_s):
    """Stand-in for another cafleet process in the middle of its first open of a fresh DB
    (it holds the write lock while it switches the file to WAL and writes the schema)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    ready.set()
    time.sleep(hold_s)
    conn.execute("COMMIT")
    conn.close()


def _first_open(db, barrier, out):
    try:
        barrier.wait(10)
        with Broker.open(db) as b:
            b.create_fleet("first")
        out.put(("ok",))
    except Exception as e:  # noqa: BLE001
        out.put(("error", f"{type(e).__name__}: {e}"))


def _race_first_open(db, n: int) -> list:
    """`n` processes released together by a barrier, each running `_first_open` on `db`;
    their results."""
    out = CTX.Queue()
    barrier = CTX.Barrier(n)
    procs = [CTX.Process(target=_first_open, args=(db, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    return _collect(out, procs, 20)


def test_concurrent_first_use_of_a_fresh_db(db_path):
    """Processes opening a brand-new DB while another process holds its write lock (as a
    cafleet process does while it switches the file to WAL and writes the schema) wait
    for it: SQLite does not call the busy handler for `PRAGMA journal_mode = WAL`, so a
    bare pragma fails at once with "database is locked"."""
    db = str(db_path)
    db_path.parent.mkdir(mode=0o700)
    os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # as _ensure_file leaves it
    ready = CTX.Event()
    holder = CTX.Process(target=_hold_write_lock, args=(db, ready, 0.4))
    holder.start()
    assert ready.wait(10)
    n = 4
    results = _race_first_open(db, n)
    holder.join(10)
    assert [r for r in results if r[0] != "ok"] == [] and len(results) == n
    with Broker.open(db) as b:
        assert len(b.list_fleets()) == n


# ---------------------------------------------------------------- through the CLI


def test_racing_first_use_without_a_stand_in(tmp_path):
    """The same race as above with nothing but cafleet: 8 processes released together on
    a path that does not exist yet, several rounds. (Probabilistic: before the WAL-switch
    retry it failed about one round in ten.)"""
    n, rounds = 8, 6
    failures = []
    for r in range(rounds):
        db = str(tmp_path / f"r{r}" / "cafleet.db")
        results = _race_first_open(db, n)
        failures += [x for x in results if x[0] != "ok"]
        assert len(results) == n
        with Broker.open(db) as b:
            assert len(b.list_fleets()) == n and b.schema_version() >= 1
    assert failures == []
