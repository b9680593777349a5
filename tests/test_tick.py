"""`cafleet fleet tick`: the out-of-band supervision tick typed into a real Director pane.

See tests/test_members.py for `Rig`. The tick probes the Director's screen for
`tick.BUSY_PROBE_SECONDS` (1 s) before typing, so each tick takes a little over a second.
"""

from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_members import CAFLEET, fleet, rig, wait_for  # noqa: E402,F401  (fixtures)

from cafleet import tick  # noqa: E402


def test_tick_types_the_prompt_into_the_directors_pane(fleet):
    mark = fleet.mark(fleet.director_log)
    out = fleet.cli(*fleet.f, "fleet", "tick").stdout
    assert "tick typed into the Director's pane" in out
    prompt = tick.tick_prompt(fleet.fleet_id, fleet.director_id)
    wait_for(lambda: fleet.since(mark, fleet.director_log), "the Director to read the tick")
    assert fleet.since(mark, fleet.director_log) == [{"kind": "line", "value": prompt}]
    # literal ids, in the same command forms the monitoring skill uses
    assert f"`cafleet --fleet-id {fleet.fleet_id} member list`" in prompt
    assert f"message poll --agent-id {fleet.director_id}" in prompt
    assert "$" not in prompt.replace("<", "").replace(">", "")
    wait_for(lambda: "Director received: Monitor team health" in fleet.capture(fleet.director_pane),
             "the tick on the Director's screen")


def test_tick_skips_a_busy_director(rig, tmp_path):
    busy = "import time\nwhile True:\n    print(time.time(), flush=True)\n    time.sleep(0.1)\n"
    pane = rig.start([sys.executable, "-c", busy])
    rig.create_fleet()
    out = rig.cli(*rig.f, "fleet", "tick").stdout
    assert "tick skipped" in out and "busy" in out
    # the loop never reads stdin and the tty echoes, so anything typed would be on screen
    assert "supervision tick" not in rig.capture(pane, 2000)
    assert rig.pane_exists(pane)


def test_tick_every_stops_when_the_fleet_is_deleted(fleet):
    mark = fleet.mark(fleet.director_log)
    proc = subprocess.Popen(CAFLEET + [*fleet.f, "fleet", "tick", "--every", "1"], env=fleet.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=fleet.tmp)
    try:
        prompt = tick.tick_prompt(fleet.fleet_id, fleet.director_id)
        wait_for(lambda: {"kind": "line", "value": prompt} in fleet.since(mark, fleet.director_log),
                 "the first tick")
        assert proc.poll() is None
        fleet.cli("fleet", "delete", fleet.fleet_id)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert "tick typed into the Director's pane" in out
    assert out.rstrip().endswith(f"fleet {fleet.fleet_id} is gone; stopping")
    assert "Traceback" not in err


def test_tick_on_a_fleet_without_a_director_pane_fails(rig):
    rig.start(["sleep", "600"])
    rig.create_fleet()
    rig.tmux("split-window", "-d", "-t", rig.director_pane, "sleep", "600")
    rig.tmux("kill-pane", "-t", rig.director_pane)
    p = rig.cli(*rig.f, "fleet", "tick", code=1)
    assert p.stderr.startswith("Error: ") and rig.director_pane in p.stderr


def test_the_skills_loop_prompt_is_the_ticks_prompt():
    """The monitoring skill's CronCreate prompt and `fleet tick`'s prompt are one text."""
    from pathlib import Path

    skill = (Path(__file__).resolve().parents[1] / "skills" / "cafleet-agent-team-monitoring" / "SKILL.md").read_text()
    block = skill.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert block == tick.loop_prompt("<fleet-id>", "<director-agent-id>")
    assert tick.tick_prompt("F", "D") == " ".join(tick.loop_prompt("F", "D").splitlines())

