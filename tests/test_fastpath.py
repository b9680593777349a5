"""The click-free fast path (`cafleet.fastpath`) must behave exactly like the click CLI:
same stdout, stderr and exit code for the forms it takes, and decline every other form."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from cafleet import fastpath

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
CLICK_ONLY = "import sys; from cafleet.cli import main; sys.argv[0] = 'cafleet'; main()"


def run_entry(args, env):
    """Through the console-script entry (fast path first)."""
    return subprocess.run([sys.executable, "-m", "cafleet", *args], env=env, capture_output=True, text=True)


def run_click(args, env):
    """Through the click CLI only."""
    return subprocess.run([sys.executable, "-c", CLICK_ONLY, *args], env=env, capture_output=True, text=True)


@pytest.fixture
def fleet(db_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    out = run_click(["fleet", "create"], env).stdout.splitlines()
    fid, director = out[0], out[1]
    member = run_click(["--fleet-id", fid, "agent", "register", "--name", "m", "--description", "d"], env).stdout.strip()
    return env, fid, director, member


def test_canonical_forms_are_taken_and_others_declined():
    f, a, t = ("3f2b8c1e-0000-4000-8000-000000000001", "3f2b8c1e-0000-4000-8000-000000000002",
               "3f2b8c1e-0000-4000-8000-000000000003")
    taken = [
        ["--fleet-id", f, "message", "poll", "--agent-id", a],
        ["--json", "--fleet-id", f, "message", "poll", "--agent-id", a, "--limit", "3"],
        [f"--fleet-id={f}", "message", "poll", f"--agent-id={a}"],
        ["--fleet-id", f, "message", "ack", "--agent-id", a, "--task-id", t, "--task-id", t],
        ["--fleet-id", f, "message", "send", "--text", "--text", "--to", a, "--agent-id", a],
        ["--fleet-id", f, "message", "poll", "--agent-id", a, "--json"],        # --json after the subcommand
        ["--fleet-id", f, "message", "send", "--agent-id", a, "--to", a, "--text", "--json"],  # a body
    ]
    for argv in taken:
        assert fastpath._parse(argv) is not None, argv
    declined = [
        ["message", "poll", "--agent-id", a],                                   # no --fleet-id
        ["--fleet-id", "nope", "message", "poll", "--agent-id", a],             # malformed id
        ["--fleet-id", f, "message", "poll", "--agent-id", a.upper()],
        ["--fleet-id", f, "message", "poll", "--agent-id", a, "--help"],
        ["--fleet-id", f, "message", "poll", "--agent-id", a, "--agent-id", a],  # repeated
        ["--fleet-id", f, "message", "poll", "--agent-id", a, "--limit", "0"],
        ["--fleet-id", f, "message", "poll", "--agent-id"],                     # missing value
        ["--fleet-id", f, "message", "send", "--agent-id", a, "--to", a],       # missing --text
        ["--fleet-id", f, "message", "show", "--agent-id", a, "--task-id", t],  # not a hot command
        ["--fleet-id", f, "--fleet-id", f, "message", "poll", "--agent-id", a],
        ["--version"], [],
        # issue 10: what click refuses or reads differently, the fast path leaves to click
        ["--fleet-id", f, "message", "poll", "--agent-id", a, "--limit", "\u00b2"],
        ["--fleet-id", f, "message", "poll", "--agent-id", a, "--limit", "1" + "0" * 23],
        ["--fleet-id", f, "message", "poll", "--agent-id", a, "--limit", "1001"],
        ["--fleet-id", f, "--", "message", "poll", "--agent-id", a],
        ["--", "--fleet-id", f, "message", "poll", "--agent-id", a],
        ["--fleet-id", f, "message", "--", "poll", "--agent-id", a],
        ["--fleet-id", f, "message", "poll", "--agent-id", a, "--", "--limit", "1"],
        ["message", "poll", "--agent-id", a, "--fleet-id", f],
        ["--fleet-id", f, "message", "send", "--agent-id", a, "--to", a, "--text-file", "-"],
    ]
    for argv in declined:
        assert fastpath._parse(argv) is None, argv


def _same(args, env, normalise=lambda s: s):
    fast, slow = run_entry(args, env), run_click(args, env)
    assert (fast.returncode, normalise(fast.stdout), fast.stderr) == (slow.returncode, normalise(slow.stdout), slow.stderr)
    return fast


def test_both_paths_print_the_same(fleet):
    env, fid, director, member = fleet
    base = ["--fleet-id", fid, "message"]
    ids = lambda s: UUID_RE.sub("<id>", re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<t>", s))  # noqa: E731
    _same(base + ["poll", "--agent-id", director], env)                     # empty inbox
    for body in ("plain", "multi\nline ⏎ 😀 \x1b[31mred\x1b[0m", "--text"):
        r = _same(base + ["send", "--agent-id", director, "--to", member, "--text", body], env, ids)
        assert r.returncode == 0
        _same(["--json", *base, "send", "--agent-id", director, "--to", member, "--text", body], env, ids)
    _same(base + ["poll", "--agent-id", member], env)
    _same(["--json", *base, "poll", "--agent-id", member, "--limit", "2"], env)
    tasks = UUID_RE.findall(run_click(base + ["poll", "--agent-id", member], env).stdout)
    task = tasks[0]
    run_click(base + ["ack", "--agent-id", member, "--task-id", task], env)
    _same(base + ["ack", "--agent-id", member, "--task-id", task, "--task-id", task], env)  # already acked
    # runtime errors: not found, forbidden, oversized body, unknown fleet
    _same(base + ["ack", "--agent-id", director, "--task-id", tasks[1]], env)
    _same(["--json", *base, "ack", "--agent-id", director, "--task-id", tasks[1]], env)
    _same(base + ["send", "--agent-id", director, "--to", member, "--text", "x" * 70000], env)
    _same(["--fleet-id", "3f2b8c1e-0000-4000-8000-000000000009", "message", "poll", "--agent-id", director], env)
    # issue 10: --json after the subcommand, bad limits, `--`, a page that says more wait
    _same(base + ["poll", "--agent-id", member, "--json"], env)
    _same(base + ["poll", "--agent-id", member, "--json", "--limit", "1"], env)
    _same(base + ["poll", "--agent-id", member, "--limit", "1"], env)
    for limit in ("\u00b2", "1" + "0" * 23, "1001", "0"):
        r = _same(base + ["poll", "--agent-id", member, "--limit", limit], env)
        assert r.returncode == 2 and "Traceback" not in r.stderr
    r = _same(["--fleet-id", fid, "--", "message", "poll", "--agent-id", member], env)
    assert r.returncode == 2 and "`--`" in r.stderr


def test_hot_commands_do_not_import_click(fleet):
    env, fid, director, _ = fleet
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "cafleet", "--fleet-id", fid, "message", "poll",
                        "--agent-id", director], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "No un-acked messages."
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "cafleet.broker" in imported
    assert "click" not in imported and "libtmux" not in imported
