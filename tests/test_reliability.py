"""Load and crash reliability of the broker (CONTRACT.md "Identifiers and storage": WAL, busy
timeout, `BEGIN IMMEDIATE`; "Messages": a task is delivered once, bodies round-trip).

- 8 processes x 100 sends to one recipient through the Broker API (multiprocessing,
  spawn) while another process polls and acks: every task delivered exactly once, no error;
  the same while `member list` / `member capture` / pushes run against a stand-in member in
  a private tmux server; a smaller variant through the CLI as separate processes.
- kill -9 of a writer at random points, many times: `PRAGMA integrity_check` is ok, every
  task id the writer printed (after its commit) is there with the right body, and no task
  is half-written (each row complete, each broadcast all-or-nothing).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter

import pytest

from cafleet.broker import Broker
from tmux_fleet import TmuxFleet  # noqa: E402  (tests/ is on sys.path)

CTX = mp.get_context("spawn")
PY = sys.executable
PROCS, PER_PROC = 8, 100
DEADLINE_S = 90
UUID4 = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
TIME = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


# ---------------------------------------------------------------- workers (spawned: module level)


def _sender(db, fid, me, to, n, start, out):
    sent, errors = [], []
    try:
        start.wait(30)
        b = Broker.open(db)
        for i in range(n):
            try:
                if i % 25 == 24:  # re-open now and then, as separate CLI calls do
                    b.close()
                    b = Broker.open(db)
                sent.append(b.send(fid, me, to, f"{me}#{i}")["task_id"])
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(f"send {i}: {type(e).__name__}: {e}")
        b.close()
    except Exception:  # noqa: BLE001
        errors.append(traceback.format_exc())
    out.put(("sender", me, sent, errors))


def _poller(db, fid, me, expected, start, out):
    acked, dupes, errors, batches = [], [], [], 0
    seen = set()
    try:
        start.wait(30)
        b = Broker.open(db)
        end = time.monotonic() + DEADLINE_S
        while len(seen) < expected and time.monotonic() < end:
            try:
                batch = b.poll(fid, me, limit=50)
                if not batch:
                    time.sleep(0.005)
                    continue
                ids = [t["task_id"] for t in batch]
                dupes += [t for t in ids if t in seen]
                bad = [t for t in batch if t["body"] != f"{t['sender_agent_id']}#{t['body'].split('#')[-1]}"]
                errors += [f"wrong body {t['body']!r}" for t in bad]
                results = b.ack(fid, me, ids)
                dupes += [r["task_id"] for r in results if r["already_acked"]]
                acked += ids
                seen.update(ids)
                batches += 1
            except Exception as e:  # noqa: BLE001
                errors.append(f"poll/ack: {type(e).__name__}: {e}")
        b.close()
    except Exception:  # noqa: BLE001
        errors.append(traceback.format_exc())
    out.put(("poller", me, acked, errors, dupes, batches))


def _collect(out, procs, timeout):
    results = []
    end = time.monotonic() + timeout
    while len(results) < len(procs) and time.monotonic() < end:
        try:
            results.append(out.get(timeout=0.5))
        except Exception:  # noqa: BLE001 - queue.Empty
            if not any(p.is_alive() for p in procs) and out.empty():
                break
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join(5)
    return results


# ---------------------------------------------------------------- a stand-in member in tmux


def _count(db, sql, params=()) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


class MemberTraffic:
    """Three threads looping `member list`, `member capture` and a pushed `message send` to
    the stand-in member (each a CLI process) until stopped; records every failure and when
    each call ran."""

    KINDS = ("list", "capture", "send")

    def __init__(self, tf: TmuxFleet, member: str):
        self.tf, self.member = tf, member
        self.stop = threading.Event()
        self.problems: list = []
        self.spans: list[tuple[str, float, float]] = []
        self.pushed: list[str] = []
        self.threads = [threading.Thread(target=self._loop, args=(k,), daemon=True) for k in self.KINDS]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self, timeout):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)

    def _loop(self, kind):
        F = ["--fleet-id", self.tf.fid]
        args = {"list": [*F, "--json", "member", "list"],
                "capture": [*F, "member", "capture", "--member-id", self.member, "--lines", "5"],
                "send": [*F, "message", "send", "--agent-id", self.tf.director, "--to", self.member]}[kind]
        i = 0
        while not self.stop.is_set():
            i += 1
            argv = args + (["--text", f"push {i}"] if kind == "send" else [])
            t0 = time.monotonic()
            p = subprocess.run([PY, "-m", "cafleet", *argv], env=self.tf.denv, capture_output=True, text=True,
                               timeout=60)
            self.spans.append((kind, t0, time.monotonic()))
            if p.returncode != 0 or "Traceback" in p.stderr or p.stderr:
                self.problems.append((kind, p.returncode, p.stderr[-300:]))
            elif kind == "list":
                rows = json.loads(p.stdout)
                if [r["pane_status"] for r in rows] != ["alive"]:
                    self.problems.append(("list", rows))
            elif kind == "send":
                self.pushed.append(p.stdout.split()[0])
                if "notified pane" not in p.stdout:
                    self.problems.append(("send", p.stdout))

    def overlapping(self, start, end) -> Counter:
        return Counter(k for k, a, b in self.spans if a < end and b > start)


# ---------------------------------------------------------------- load: exactly once


@pytest.mark.parametrize("with_members", [False, True], ids=["broker-only", "with-member-commands"])
def test_8_processes_x_100_sends_delivered_exactly_once(db_path, tmp_path, with_members):
    db = str(db_path)
    traffic = tf = None
    if with_members:
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed")
        tf = TmuxFleet(tmp_path, db_path)
    try:
        with Broker.open(db) as b:
            if tf is not None:
                fid = tf.fid
            else:
                fid = b.create_fleet("load")["fleet_id"]
            inbox = b.register_agent(fid, "Inbox", "the one recipient")["agent_id"]
            senders = [b.register_agent(fid, f"S{i}", "sender")["agent_id"] for i in range(PROCS)]
        if tf is not None:
            member = tf.add_member("Busy")
            traffic = MemberTraffic(tf, member)
            traffic.start()
            time.sleep(0.3)
        total = PROCS * PER_PROC
        out = CTX.Queue()
        start = CTX.Event()
        procs = [CTX.Process(target=_sender, args=(db, fid, s, inbox, PER_PROC, start, out)) for s in senders]
        procs.append(CTX.Process(target=_poller, args=(db, fid, inbox, total, start, out)))
        for p in procs:
            p.start()
        time.sleep(0.5)  # let the spawned interpreters import before the gun
        t0 = time.monotonic()
        start.set()
        results = _collect(out, procs, DEADLINE_S + 30)
        t1 = time.monotonic()
        elapsed = t1 - t0
    finally:
        if traffic is not None:
            traffic.join(60)
    try:
        assert len(results) == len(procs), f"only {len(results)} of {len(procs)} workers reported"
        errors = [e for r in results for e in r[3]]
        assert errors == [], errors[:5]
        sent = [t for r in results if r[0] == "sender" for t in r[2]]
        [poller] = [r for r in results if r[0] == "poller"]
        acked, dupes = poller[2], poller[4]
        assert len(sent) == len(set(sent)) == total
        assert dupes == [], f"delivered more than once: {dupes[:5]}"
        assert len(acked) == len(set(acked)) == total and set(acked) == set(sent)
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("SELECT COUNT(*), SUM(state = 'completed') FROM tasks WHERE recipient_agent_id = ?",
                                (inbox,)).fetchone() == (total, total)
            per_sender = Counter(s for (s,) in conn.execute(
                "SELECT sender_agent_id FROM tasks WHERE recipient_agent_id = ?", (inbox,)))
            assert per_sender == {s: PER_PROC for s in senders}
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        assert elapsed < DEADLINE_S
        if traffic is not None:
            assert traffic.problems == [], traffic.problems[:5]
            during = traffic.overlapping(t0, t1)
            assert all(during[k] >= 1 for k in MemberTraffic.KINDS), (during, elapsed)
            # the stand-in polled, acked and answered every pushed message
            TmuxFleet.wait(lambda: _count(db, "SELECT COUNT(*) FROM tasks WHERE recipient_agent_id = ? AND state = "
                                               "'input_required'", (member,)) == 0, "the member to ack its pushes", 30)
            assert _count(db, "SELECT COUNT(*) FROM tasks WHERE recipient_agent_id = ? AND state = 'completed'",
                          (member,)) == len(traffic.pushed)
    finally:
        if tf is not None:
            tf.close()


def test_cli_processes_send_while_the_cli_polls_and_acks(db_path):
    """The same through `cafleet` processes: 4 senders x 12 sends, one poll/ack loop."""
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CAFLEET_BUSY_TIMEOUT_MS")}
    env["CAFLEET_DB"] = str(db_path)

    def cafleet(*args):
        return subprocess.run([PY, "-m", "cafleet", *args], capture_output=True, text=True, env=env, timeout=60)

    fid, director = cafleet("fleet", "create").stdout.splitlines()[:2]
    senders = [cafleet("--fleet-id", fid, "agent", "register", "--name", f"S{i}", "--description", "s").stdout.strip()
               for i in range(4)]
    per = 12
    problems, sent = [], []
    lock = threading.Lock()

    def send_loop(s):
        for i in range(per):
            p = cafleet("--fleet-id", fid, "message", "send", "--agent-id", s, "--to", director,
                        "--text", f"{s} says {i}")
            with lock:
                if p.returncode != 0 or "Traceback" in p.stderr:
                    problems.append(("send", p.returncode, p.stderr))
                else:
                    sent.append(p.stdout.splitlines()[0])

    threads = [threading.Thread(target=send_loop, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    acked, dupes = [], []
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        done = not any(t.is_alive() for t in threads)
        p = cafleet("--json", "--fleet-id", fid, "message", "poll", "--agent-id", director)
        if p.returncode != 0 or p.stderr:
            problems.append(("poll", p.returncode, p.stderr))
            continue
        tasks = json.loads(p.stdout)["tasks"]
        if not tasks:
            if done:
                break
            time.sleep(0.05)
            continue
        batch = [t["task_id"] for t in tasks]
        dupes += [t for t in batch if t in acked]
        p = cafleet("--json", "--fleet-id", fid, "message", "ack", "--agent-id", director,
                    *[a for t in batch for a in ("--task-id", t)])
        if p.returncode != 0 or p.stderr:
            problems.append(("ack", p.returncode, p.stderr))
            continue
        dupes += [r["task_id"] for r in json.loads(p.stdout) if r["already_acked"]]
        acked += batch
    for t in threads:
        t.join(60)
    assert problems == [], problems[:5]
    assert dupes == []
    assert len(sent) == len(set(sent)) == len(senders) * per
    assert sorted(acked) == sorted(sent)


# ---------------------------------------------------------------- kill -9 mid-stream


WRITER = r"""
import hashlib, os, random, sys
from cafleet.broker import Broker
db, fid, sender, iteration = sys.argv[1:5]
recipients = sys.argv[5:]
rng = random.Random(int(iteration))

def body(i):
    head = f"k{iteration}-{i}|"
    filler = chr(0x61 + i % 26) * rng.choice([1, 50, 3000, 9000, 40000])
    return head + filler + "|" + hashlib.sha256((head + filler).encode()).hexdigest()

b = Broker.open(db)
i = 0
while True:
    i += 1
    if i % 7 == 0:
        tasks = b.broadcast(fid, sender, body(i))
        print("B", " ".join(t["task_id"] for t in tasks), flush=True)
    else:
        t = b.send(fid, sender, rng.choice(recipients), body(i))
        print("S", t["task_id"], flush=True)
"""


def _body_ok(body: str) -> bool:
    m = re.fullmatch(r"(k\d+-\d+\|)([a-z]+)\|([0-9a-f]{64})", body, re.S)
    return bool(m) and len(set(m.group(2))) == 1 and \
        hashlib.sha256((m.group(1) + m.group(2)).encode()).hexdigest() == m.group(3)


def _check_db_after_kills(db, fid, printed_single, printed_broadcast, recipients_count):
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = conn.execute("SELECT task_id, fleet_id, sender_agent_id, recipient_agent_id, body, state, "
                            "broadcast_id, created_at, updated_at FROM tasks").fetchall()
    finally:
        conn.close()
    by_id = {r[0]: r for r in rows}
    for r in rows:  # every row complete and valid
        task_id, f, s, rcp, body, state, bid, created, updated = r
        assert UUID4.match(task_id) and f == fid and UUID4.match(s) and UUID4.match(rcp), r[:4]
        assert state == "input_required" and TIME.match(created) and TIME.match(updated)
        assert _body_ok(body), f"half-written body in {task_id}: {body[:60]!r}…{body[-70:]!r}"
    groups = Counter(r[6] for r in rows if r[6] is not None)
    assert all(n == recipients_count for n in groups.values()), groups  # broadcasts are all-or-nothing
    missing = [t for t in printed_single if t not in by_id]
    missing += [t for group in printed_broadcast for t in group if t not in by_id]
    assert missing == [], f"{len(missing)} printed task ids were lost"
    return by_id


def test_kill_9_of_a_writer_at_random_points(db_path):
    db = str(db_path)
    with Broker.open(db) as b:
        f = b.create_fleet("crash")
        fid = f["fleet_id"]
        sender = b.register_agent(fid, "Writer", "w")["agent_id"]
        recipients = [f["director"]["agent_id"]] + [b.register_agent(fid, f"R{i}", "r")["agent_id"]
                                                    for i in range(3)]
    env = {k: v for k, v in os.environ.items() if k != "CAFLEET_BUSY_TIMEOUT_MS"}
    rng = random.Random(20261121)
    printed_single, printed_broadcast = [], []
    kills_mid_stream = 0
    for iteration in range(20):
        p = subprocess.Popen([PY, "-c", WRITER, db, fid, sender, str(iteration), *recipients],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
        reader.start()
        time.sleep(rng.uniform(0.15, 0.7))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            kills_mid_stream += 1
        p.wait(10)
        reader.join(10)
        err = p.stderr.read()
        assert p.returncode == -signal.SIGKILL, (p.returncode, err[-500:])
        for line in lines:
            if not line.endswith("\n"):
                continue  # cut mid-print: the task may or may not be known to the writer's reader
            kind, *ids = line.split()
            if kind == "S":
                printed_single += ids
            else:
                printed_broadcast.append(ids)
    assert kills_mid_stream == 20
    assert len(printed_single) > 40, "the writers barely wrote anything before being killed"
    by_id = _check_db_after_kills(db, fid, printed_single, printed_broadcast, len(recipients))
    # every printed task is pollable by its recipient, with its full body
    with Broker.open(db) as b:
        polled = {t["task_id"]: t for r in [sender, *recipients] for t in b.poll(fid, r)}
    for t in printed_single + [t for g in printed_broadcast for t in g]:
        assert t in polled and polled[t]["body"] == by_id[t][4] and _body_ok(polled[t]["body"])
    # and the DB is still fully usable for writes
    with Broker.open(db) as b:
        b.send(fid, sender, recipients[0], "after the storm")


def test_kill_9_of_cli_senders_and_ackers(db_path):
    """The same with `cafleet message send` / `message ack` processes killed at random
    points of their (short) lives, several at once."""
    db = str(db_path)
    with Broker.open(db) as b:
        f = b.create_fleet("cli-crash")
        fid, d = f["fleet_id"], f["director"]["agent_id"]
        a = b.register_agent(fid, "A", "a")["agent_id"]
        seeded = [b.send(fid, d, a, f"seed {i}")["task_id"] for i in range(30)]
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CAFLEET_BUSY_TIMEOUT_MS")}
    env["CAFLEET_DB"] = db
    rng = random.Random(7)
    printed = []
    for round_ in range(6):
        procs = []
        for j in range(4):
            body = f"cli {round_}-{j}|" + "q" * rng.choice([10, 20000, 60000])
            args = ["--fleet-id", fid, "message", "send", "--agent-id", d, "--to", a, "--text", body]
            if j == 3:
                args = ["--fleet-id", fid, "message", "ack", "--agent-id", a,
                        *[x for t in rng.sample(seeded, 5) for x in ("--task-id", t)]]
            procs.append((subprocess.Popen([PY, "-m", "cafleet", *args], env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True), body if j < 3 else None))
        time.sleep(rng.uniform(0.05, 0.35))
        for p, body in procs:
            if p.poll() is None:
                p.kill()
            out, err = p.communicate(timeout=20)
            assert "Traceback" not in err, err
            if p.returncode == 0 and body is not None:  # a send that finished: it printed its task id
                printed.append((out.split()[0], body))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(conn.execute("SELECT task_id, body FROM tasks").fetchall())
        states = Counter(s for (s,) in conn.execute("SELECT state FROM tasks"))
    finally:
        conn.close()
    for task_id, body in printed:
        assert rows[task_id] == body
    for task_id, body in rows.items():
        assert body.startswith("seed ") or re.fullmatch(r"cli \d-\d\|q+", body), body[:40]
    assert set(states) <= {"input_required", "completed"}
