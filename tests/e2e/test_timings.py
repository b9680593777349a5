"""Timings of the real claude here (reported with -s; bounds are loose sanity checks)."""

from __future__ import annotations

import statistics
import time

import pytest

from fakeapi import Reply

pytestmark = pytest.mark.e2e


def test_start_and_bash_round_trip_timings(start_claude, fake_api):
    n = 4

    def script(req):
        results = req.latest_tool_results()
        done = sum(1 for m in req.messages if m.get("role") == "assistant")
        if "TIMINGS" in req.latest_user_text() or (results and done < n):
            return Reply.bash(f"echo round-{done}")
        if results:
            return Reply.say("TIMINGS-DONE")
        return None

    fake_api.script = script
    t0 = time.monotonic()
    claude = start_claude()
    ready = time.monotonic() - t0
    mark = fake_api.mark()
    t_enter = time.monotonic()
    claude.type("TIMINGS", pause=0.3)
    t_enter += 0.3
    claude.wait_for("TIMINGS-DONE", timeout=30)
    reqs = fake_api.snapshot()[mark:]
    first = reqs[0].t - t_enter
    rounds = [b.t - a.t for a, b in zip(reqs, reqs[1:])]
    t_exit = time.monotonic()
    claude.exit()
    exit_s = time.monotonic() - t_exit
    print(f"\ninput box drawn after {ready:.2f}s; Enter -> first request {first:.2f}s; "
          f"Bash round trips {', '.join(f'{r:.2f}' for r in rounds)}s "
          f"(median {statistics.median(rounds):.2f}s); /exit {exit_s:.2f}s")
    assert ready < 15 and statistics.median(rounds) < 5
