"""A fleet on a private tmux server, for tests that need real panes (shared by
test_faults, test_injection and test_reliability).

The server runs at a short socket path of its own (`tmux -S`), its first pane a stand-in
Director (`python -m cafleet.standin --director`); members are spawned through the real
claude backend path, an executable `claude` first on PATH that starts the stand-in and makes
it log every line and key it receives to `<logdir>/<agent_id>.log` (the Director to
`director.log`). Everything is driven through the real CLI with the Director pane's
`TMUX`/`TMUX_PANE`. `close()` kills the server by its socket.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable

STANDIN_WRAPPER = """#!/bin/sh
CAFLEET_STANDIN_LOG="$CAFLEET_TEST_LOGDIR/$CAFLEET_AGENT_ID.log"
export CAFLEET_STANDIN_LOG
exec {py} -m cafleet.standin "$@"
"""


def clean_env(db, **extra) -> dict:
    """This process's environment without tmux/cafleet settings that would leak in, with
    `CAFLEET_DB=db` and `extra` (values made strings)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TMUX", "TMUX_PANE", "CAFLEET_BUSY_TIMEOUT_MS", "CAFLEET_DEBUG")}
    env["CAFLEET_DB"] = str(db)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, env, timeout=30, **kw) -> subprocess.CompletedProcess:
    """`python -m cafleet ARGS` (the console script's code path); never a traceback."""
    p = subprocess.run([PY, "-m", "cafleet", *map(str, args)], env=env, capture_output=True, text=True,
                       timeout=timeout, **kw)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p


class TmuxFleet:
    """See the module docstring. `tmp` holds logs and the stand-in `claude`; `db` defaults
    to `tmp/db/cafleet.db`; `size` is the session's (columns, rows)."""

    def __init__(self, tmp: Path, db: Path | None = None, *, size=(200, 50), name="fleet"):
        self.tmp = tmp
        self.db = db or tmp / "db" / "cafleet.db"
        self.sock_dir = Path(tempfile.mkdtemp(prefix="cft-", dir="/tmp"))
        self.socket = str(self.sock_dir / "tmux")
        self.logdir = tmp / "logs"
        self.logdir.mkdir()
        self.bin = tmp / "bin"
        self.bin.mkdir()
        (self.bin / "claude").write_text(STANDIN_WRAPPER.format(py=PY))
        (self.bin / "claude").chmod(0o755)
        self.env = clean_env(self.db, PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}",
                             CAFLEET_TEST_LOGDIR=self.logdir)
        out = subprocess.run(
            ["tmux", "-S", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "fleet",
             "-x", str(size[0]), "-y", str(size[1]), "-e", f"CAFLEET_DB={self.db}",
             "-e", f"CAFLEET_TEST_LOGDIR={self.logdir}",
             "-e", f"CAFLEET_STANDIN_LOG={self.logdir / 'director.log'}", "-P", "-F", "#{pane_id}",
             "--", PY, "-m", "cafleet.standin", "--director"], capture_output=True, text=True, env=self.env,
            timeout=15)
        assert out.returncode == 0, out.stderr
        self.director_pane = out.stdout.strip()
        self.denv = {**self.env, "TMUX": f"{self.socket},0,0", "TMUX_PANE": self.director_pane}
        try:  # the fixture's teardown never runs for a failed setup: stop the server here
            lines = self.cafleet("fleet", "create", "--name", name).stdout.splitlines()
            self.fid, self.director = lines[0], lines[1]
        except BaseException:
            self.close()
            raise

    def cafleet(self, *args, env=None, code=0, timeout=60):
        """Run the CLI as the Director; check the exit code unless `code` is None."""
        p = run_cli(args, env or self.denv, timeout=timeout)
        if code is not None:
            assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        return p

    def fcli(self, *args, **kw):
        """`cafleet --fleet-id <this fleet> ARGS` as the Director."""
        return self.cafleet("--fleet-id", self.fid, *args, **kw)

    def add_member(self, name="M", description="a member") -> str:
        """Spawn a stand-in member and wait for its `ready`; returns its agent id."""
        mid = self.fcli("member", "create", "--name", name, "--description", description, "--",
                        "wait").stdout.splitlines()[0]
        self.wait(lambda: self.rows("SELECT 1 FROM tasks WHERE sender_agent_id = ? AND body = 'ready'", (mid,)),
                  f"{name!r} ready")
        return mid

    def rows(self, sql, params=()):
        """Rows of a read-only query on the fleet's DB."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    db_rows = rows

    def pane_of(self, mid) -> str:
        return self.rows("SELECT pane_id FROM placements WHERE agent_id = ?", (mid,))[0][0]

    def log(self, who) -> list[dict]:
        """What the stand-in `who` (an agent id, or "director") received, in order."""
        path = self.logdir / f"{who}.log"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=10)

    def alive(self, mid) -> bool:
        out = self.tmux("display-message", "-p", "-t", self.pane_of(mid), "#{pane_id} #{pane_dead}").stdout.split()
        return out == [self.pane_of(mid), "0"]

    def capture(self, mid) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.pane_of(mid), "-S", "-300").stdout

    def pane_pid(self, mid) -> int:
        return int(self.tmux("display-message", "-p", "-t", self.pane_of(mid), "#{pane_pid}").stdout.strip())

    def panes(self) -> list[str]:
        return self.tmux("list-panes", "-a", "-F", "#{pane_id}").stdout.split()

    @staticmethod
    def wait(pred, what, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def close(self):
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10)
        shutil.rmtree(self.sock_dir, ignore_errors=True)
