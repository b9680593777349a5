"""Shared fixtures: a private DB per test and a private tmux server per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    """A fresh DB path for this test, exported as CAFLEET_DB for code and subprocesses."""
    path = tmp_path / "data" / "cafleet.db"
    monkeypatch.setenv("CAFLEET_DB", str(path))
    return path


@pytest.fixture
def tmux_server():
    """A private tmux server on its own socket, killed by that socket at teardown.

    Yields a `libtmux.Server` whose `socket_path` (a short absolute path under /tmp, well
    below the 108-byte limit of a unix socket path) is what placements record and what
    `cafleet.tmux` functions take. The server is not started: create a session first
    (`server.new_session(...)` or `tmux -S <socket_path> new-session -d ...`). It runs with
    `-f /dev/null`, so no user tmux.conf changes its behaviour. Teardown runs
    `tmux -S <socket_path> kill-server` (never kills anything by name) and removes the dir.
    """
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    import libtmux

    sock_dir = tempfile.mkdtemp(prefix="cft-", dir="/tmp")
    socket_path = os.path.join(sock_dir, "tmux")
    server = libtmux.Server(socket_path=socket_path, config_file="/dev/null")
    try:
        yield server
    finally:
        subprocess.run(
            ["tmux", "-S", socket_path, "kill-server"], capture_output=True, check=False
        )
        shutil.rmtree(sock_dir, ignore_errors=True)
