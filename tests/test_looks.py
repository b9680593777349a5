"""`cafleet.looks` (the compact view and what changed since the last look) and `member
capture` with real tmux: wrapped lines joined, `--changed` against a stand-in member.

See tests/test_members.py for `Rig` and its fixtures.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_members import fleet, one, rig, wait_for  # noqa: E402,F401  (fixtures)

from cafleet import looks  # noqa: E402

SCREENS = Path(__file__).parent / "screens"


# ------------------------------------------------------------------------ compact


def test_compact_squeezes_blank_runs_rules_and_padding():
    rule = "─" * 250
    text = "\n\nhello\n\n\n\nworld   \n" + rule + "\n" + "x" + " " * 170 + "status\n" + "a        b\n\n\n"
    assert looks.compact(text) == ["hello", "", "world", "─" * looks.RULE_KEEP,
                                   "x" + " " * looks.SPACE_KEEP + "status", "a        b"]
    # the last N lines with content (a blank line left at the top is dropped)
    assert looks.compact(text, 3) == ["─" * looks.RULE_KEEP, "x    status", "a        b"]
    assert looks.compact("", 5) == [] and looks.compact("\n \n") == []


def test_compact_keeps_short_runs_and_text():
    assert looks.compact("--- task 1\n│ a │\n──── x ────") == ["--- task 1", "│ a │", "──── x ────"]


def test_compact_of_a_real_claude_code_screen_is_small():
    screen = (SCREENS / "claude-2.1.332-idle.txt").read_text(encoding="utf-8")
    view = looks.compact(screen, 40)
    assert len("\n".join(view).encode()) * 4 < len(screen.encode())
    assert any(line.startswith("❯") for line in view) and "Claude Code v2.1.332" in view[0]


# ------------------------------------------------------------------------ changes


def test_changes_first_look_unchanged_and_changed():
    old = [f"line {i}" for i in range(10)]
    assert looks.changes(None, old) == old
    assert looks.changes(old, list(old)) is None
    new = old[:5] + ["NEW"] + old[5:]
    assert looks.changes(old, new) == ["⋯ 4 unchanged lines", "line 4", "NEW", "line 5", "⋯ 4 unchanged lines"]
    replaced = old[:9] + ["line 9 done"]
    assert looks.changes(old, replaced) == ["⋯ 8 unchanged lines", "line 8", "line 9 done"]
    scrolled = old[3:] + ["a", "b", "c"]
    assert looks.changes(old, scrolled) == ["⋯ 6 unchanged lines", "line 9", "a", "b", "c"]


def test_changes_short_runs_are_shown_whole_and_deletions_are_named():
    old = ["a", "b", "c", "d"]
    assert looks.changes(old, ["a", "X", "c", "d"]) == ["a", "X", "c", "d"]
    assert looks.changes(old, ["a", "b"]) == ["⋯ 2 line(s) gone; the other 2 unchanged"]


def test_last_look_store_roundtrip_and_faults(tmp_path):
    db = str(tmp_path / "c.db")
    agent = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    assert looks.last_look(db, agent) is None
    looks.record_look(db, agent, ["x", "ÿ"], at=100.5)
    assert looks.last_look(db, agent) == {"at": 100.5, "lines": ["x", "ÿ"]}
    path = Path(looks.store_dir(db)) / agent
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(Path(looks.store_dir(db)).stat().st_mode & 0o777) == "0o700"
    path.write_text('{"at": "soon", "lines": 3}')
    assert looks.last_look(db, agent) is None          # unreadable: as if never looked
    path.write_text("not json")
    assert looks.last_look(db, agent) is None
    looks.forget(db, agent)
    looks.forget(db, agent)                            # missing is fine
    assert not path.exists()



# ------------------------------------------------------------------------ member capture, real tmux


def test_capture_joins_wrapped_lines(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    fleet.tmux("resize-window", "-t", fleet.window, "-x", "60")
    long = "W" * 40 + "-" + "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    fleet.cli(*fleet.f, "member", "exec", "--member-id", member_id, f"echo {long}")
    wait_for(lambda: "4e5f" in fleet.capture(pane).split("echo")[-1], "the echo output")
    out = fleet.cli(*fleet.f, "member", "capture", "--member-id", member_id, "--lines", "5").stdout
    assert long in out.splitlines()


def test_capture_changed_shows_only_news_and_forgets_on_delete(one):
    fleet, member_id = one
    pane = fleet.pane_of(member_id)
    cap = [*fleet.f, "member", "capture", "--member-id", member_id, "--changed"]
    fleet.cli(*fleet.f, "member", "exec", "--member-id", member_id, "seq 101 120")
    wait_for(lambda: fleet.capture(pane).rstrip().endswith("120"), "the seq output")
    first = fleet.cli(*cap).stdout
    assert "stand-in agent" in first and "120" in first and not first.startswith("(")
    again = fleet.cli(*cap).stdout
    assert again.startswith("(unchanged since your last look ") and again.count("\n") == 1
    fleet.cli(*fleet.f, "member", "exec", "--member-id", member_id, "echo fresh-output-42")
    wait_for(lambda: "fresh-output-42" in fleet.capture(pane).split("echo")[-1], "the echo output")
    news = fleet.cli(*cap).stdout
    assert news.startswith("(changed since your last look ") and "fresh-output-42" in news
    assert "stand-in agent" not in news and "⋯ " in news and "110" not in news  # old lines folded
    data = json.loads(fleet.cli("--json", *cap).stdout)
    assert data["unchanged"] is True and data["content"] == "" and data["previous_look_at"].endswith("Z")
    # a plain capture (the user's, a script's) is not the Director's look: it moves nothing
    fleet.cli(*fleet.f, "member", "exec", "--member-id", member_id, "echo later-99")
    wait_for(lambda: "later-99" in fleet.capture(pane).split("echo")[-1], "the echo output")
    assert "later-99" in fleet.cli(*fleet.f, "member", "capture", "--member-id", member_id).stdout
    later = fleet.cli(*cap).stdout
    assert later.startswith("(changed since") and "later-99" in later
    store = Path(looks.store_dir(str(fleet.db))) / member_id
    assert store.exists()
    fleet.cli(*fleet.f, "member", "delete", "--member-id", member_id, "--force")
    assert not store.exists()


def test_fleet_delete_forgets_the_looks_at_its_members(one):
    fleet, member_id = one
    fleet.cli(*fleet.f, "member", "capture", "--member-id", member_id, "--changed")
    store = Path(looks.store_dir(str(fleet.db))) / member_id
    assert store.exists()
    fleet.cli("fleet", "delete", fleet.fleet_id, "--force")
    assert not store.exists()

