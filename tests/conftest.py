"""Shared fixtures: a private DB per test and a private tmux server per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    """A fresh DB path for this test, exported as CAFLEET_DB for code and subprocesses."""
    path = tmp_path / "data" / "cafleet.db"
    monkeypatch.setenv("CAFLEET_DB", str(path))
    return path


@pytest.fixture
def tmux_server(tmp_path):
    """A private tmux server (`tmux -L <unique>`), killed by its socket at teardown.

    Yields a `libtmux.Server`; its `socket_path` is what placements record.
    """
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    import libtmux

    name = f"cafleet-test-{uuid.uuid4().hex[:10]}"
    server = libtmux.Server(socket_name=name)
    try:
        yield server
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)
