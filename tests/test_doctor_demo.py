"""`cafleet doctor` inside and outside a real tmux pane, and `cafleet demo` end to end.

See tests/test_members.py for `Rig`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_members import CAFLEET, rig  # noqa: E402,F401  (fixtures)

from cafleet.schema import SCHEMA_VERSION  # noqa: E402


def test_doctor_inside_a_pane(rig):
    pane = rig.start()
    out = rig.cli("doctor").stdout
    assert "tmux session: fleet\n" in out
    assert f"tmux window:  {rig.window}\n" in out
    assert f"tmux pane:    {pane}  (TMUX_PANE={pane})" in out
    assert f"tmux socket:  {rig.socket}\n" in out
    assert f"database:     {rig.db}  schema {SCHEMA_VERSION}" in out
    assert re.search(r"^backend claude: +" + re.escape(os.path.join(rig.bin, "claude")), out, re.M)
    assert out.rstrip().endswith("ok")
    data = json.loads(rig.cli("--json", "doctor").stdout)
    assert data["ok"] is True and data["problem"] is None
    assert data["tmux"] == {"TMUX": f"{rig.socket},0,0", "TMUX_PANE": pane, "socket_path": rig.socket,
                            "session_name": "fleet", "window_id": rig.window, "pane_id": pane}
    assert data["db"] == {"path": str(rig.db), "schema_version": SCHEMA_VERSION, "error": None}
    assert set(data["backends"]) == {"claude", "codex", "opencode"}
    assert data["backends"]["claude"]["path"] == os.path.join(rig.bin, "claude")


@pytest.mark.parametrize("missing", ["both", "TMUX_PANE", "TMUX"])
def test_doctor_outside_tmux_fails(rig, missing):
    env = dict(rig.base_env)
    if missing != "TMUX":
        env["TMUX"] = "/tmp/nowhere,0,0"
    if missing != "TMUX_PANE":
        env["TMUX_PANE"] = "%0"
    if missing == "both":
        env.pop("TMUX"), env.pop("TMUX_PANE")
    p = rig.cli("doctor", env=env, code=1)
    assert "problem: not inside tmux" in p.stdout
    assert p.stderr.startswith("Error: not inside tmux")


def test_doctor_with_a_pane_that_is_gone(rig):
    rig.start(["sleep", "600"])
    env = {**rig.env, "TMUX_PANE": "%99"}
    p = rig.cli("doctor", env=env, code=1)
    assert "cannot resolve the calling pane" in p.stderr


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One `cafleet demo` run with its own TMUX_TMPDIR and TMPDIR (so the socket and temp dir
    it uses can be checked afterwards): `(completed process, socket path)`."""
    base = tmp_path_factory.mktemp("demo")
    tmux_tmp, tmp = base / "tmuxtmp", base / "tmp"
    tmux_tmp.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("TMUX", "TMUX_PANE") and not k.startswith("CAFLEET_")}
    env.update(TMUX_TMPDIR=str(tmux_tmp), TMPDIR=str(tmp), CAFLEET_DB=str(base / "unused.db"))
    try:
        p = subprocess.run(CAFLEET + ["demo"], env=env, capture_output=True, text=True, timeout=60)
        m = re.search(r"tmux -L (cafleet-demo-[0-9a-f]+): Director pane %\d+", p.stdout)
        socket = tmux_tmp / f"tmux-{os.getuid()}" / (m.group(1) if m else "?")
        yield p, socket, tmp, base
    finally:
        for sock in tmux_tmp.glob("tmux-*/*"):
            subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
            sock.unlink(missing_ok=True)


def test_demo_runs_and_cleans_up(demo_run):
    p, socket, tmp, base = demo_run
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr)
    assert "Traceback" not in p.stderr
    assert re.search(r"^demo finished in [0-9.]+ s$", p.stdout, re.M), p.stdout[-2000:]
    assert socket.name.startswith("cafleet-demo-")
    # the demo's server is gone and it left no temp dir (DB, stand-in log, bin) behind
    assert subprocess.run(["tmux", "-S", str(socket), "list-sessions"], capture_output=True).returncode != 0
    assert list(tmp.iterdir()) == []
    assert not (base / "unused.db").exists()  # it used its own DB, not the caller's


def test_demo_leaves_no_socket_behind(demo_run):
    """tmux 3.3a does not unlink its socket on kill-server: the demo must remove it."""
    p, socket, tmp, base = demo_run
    assert p.returncode == 0
    assert socket.name.startswith("cafleet-demo-")
    assert not socket.exists()
