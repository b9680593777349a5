"""What a supervision tick reads: `member list`'s report columns and the trimmed `message
poll --json` shape, through the real CLI (click's CliRunner is not used: the console script
and its fast path are what a Director runs). Broker state is set up in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cafleet import render
from cafleet.broker import Broker

CAFLEET = [sys.executable, "-m", "cafleet"]


@pytest.fixture
def team(tmp_path):
    db = str(tmp_path / "c.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAFLEET_", "TMUX"))}
    env["CAFLEET_DB"] = db
    with Broker.open(db) as b:
        f = b.create_fleet("t")
        fid, d = f["fleet_id"], f["director_agent_id"]
        a = b.register_agent(fid, "alice", "a", role="member", parent_agent_id=d, coding_agent="claude")["agent_id"]
        bob = b.register_agent(fid, "bob", "b", role="member", parent_agent_id=d, coding_agent="codex")["agent_id"]
    return {"db": db, "env": env, "fid": fid, "d": d, "alice": a, "bob": bob}


def run(team, *args, code=0):
    p = subprocess.run([*CAFLEET, "--fleet-id", team["fid"], *args], capture_output=True, text=True,
                       env=team["env"], timeout=30)
    assert p.returncode == code, (args, p.stdout, p.stderr)
    return p.stdout


def test_member_list_says_when_each_member_last_reported_and_what_is_unacked(team):
    with Broker.open(team["db"]) as b:
        b.send(team["fid"], team["alice"], team["d"], "ready")
        t2 = b.send(team["fid"], team["alice"], team["d"], "done: 42")
        b.send(team["fid"], team["alice"], team["bob"], "not to the Director")  # not a report
        b.send(team["fid"], team["d"], team["bob"], "work")
        b.ack(team["fid"], team["d"], [t2["task_id"]])
    rows = {r["name"]: r for r in json.loads(run(team, "--json", "member", "list"))}
    assert rows["alice"]["last_report_at"] == t2["created_at"] and rows["alice"]["unacked_reports"] == 1
    assert rows["bob"]["last_report_at"] is None and rows["bob"]["unacked_reports"] == 0
    assert rows["bob"]["unread"] == 2 and rows["alice"]["unread"] == 0
    text = run(team, "member", "list").splitlines()
    assert text[0].split() == ["AGENT_ID", "NAME", "BACKEND", "STATE", "QUIET", "SEEN", "REPORTED", "TO_YOU",
                               "UNREAD", "HELD"]
    alice = text[1].split()  # no pane yet: pending, no quiet time
    assert alice[:5] == [team["alice"], "alice", "claude", "pending", "-"]
    assert alice[6].endswith("s") and alice[7:] == ["1", "0", "0"]
    assert text[2].split()[5:] == ["-", "-", "0", "2", "0"]
    # one short line per member: the tick pays for every byte
    assert all(len(line.encode()) <= 110 for line in text)


def test_age_formats():
    assert [render.age(s) for s in (None, -3, 0, 59.9, 60, 3599, 3600, 86400 * 2)] == \
        ["-", "0s", "0s", "59s", "1m", "59m", "1h", "2d"]
    assert render.age_of("2026-01-01T00:00:00.000Z", now=1767225600 + 125.5) == "2m"
    assert render.age_of(None) == "-" and render.age_of("yesterday") == "-"


def test_poll_json_is_trimmed_to_what_differs_per_task(team):
    with Broker.open(team["db"]) as b:
        t = b.send(team["fid"], team["alice"], team["d"], "done: 42")
    polled = json.loads(run(team, "--json", "message", "poll", "--agent-id", team["d"]))
    assert polled == {"tasks": [{"task_id": t["task_id"], "sender_agent_id": team["alice"], "sender_name": "alice",
                                 "created_at": t["created_at"], "body": "done: 42"}], "more": 0}
    # --limit keeps the shape (the fast path and the click path print the same: test_fastpath.py)
    slow = json.loads(run(team, "--json", "message", "poll", "--agent-id", team["d"], "--limit", "5"))
    assert slow == polled
    plain = run(team, "message", "poll", "--agent-id", team["d"])
    assert len(plain.encode()) < 250 and "done: 42" in plain
