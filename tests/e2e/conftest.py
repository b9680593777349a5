"""Fixtures for the end-to-end tests that run the real Claude Code in tmux, offline.

``fake_api``      a started FakeAPI (set ``fake_api.script = ...``); stopped at teardown; a
                  script exception fails the test at teardown.
``claude_bin``    path of the claude binary, or the test is skipped with the reason.
``claude_home``   a ClaudeHome in tmp_path/home, with ``project_dir`` trusted.
``project_dir``   tmp_path/proj: where claude starts by default.
``e2e_env``       the env dict for panes (offline, PATH with tools + python bin dirs,
                  CAFLEET_DB=tmp_path/data/cafleet.db).
``e2e_tmux``      a private TmuxServer started with ``e2e_env``; killed by socket at teardown.
``start_claude``  factory: ``start_claude(*args, cwd=None, env=None, wait=True, timeout=30)``
                  -> ClaudePane running in a new window of ``e2e_tmux``.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import claude_env as ce  # noqa: E402
from fakeapi import FakeAPI  # noqa: E402


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def claude_bin() -> str:
    path = ce.find_claude()
    if path is None:
        pytest.skip(f"claude {ce.e2e_tools.SKIP_REASON}")
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    return path


@pytest.fixture
def fake_api():
    api = FakeAPI().start()
    try:
        yield api
    finally:
        api.stop()
    if api.errors:
        pytest.fail(f"fake API script errors: {api.errors}")


@pytest.fixture
def project_dir(tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    return d


@pytest.fixture
def claude_home(tmp_path, project_dir) -> ce.ClaudeHome:
    return ce.ClaudeHome(tmp_path / "home").create(trusted=[project_dir])


@pytest.fixture
def e2e_path_prepend() -> list[str]:
    """Dirs put first on PATH in panes (override in a test module, e.g. a stub cafleet)."""
    return []


@pytest.fixture
def e2e_env(tmp_path, claude_home, fake_api, e2e_path_prepend) -> dict[str, str]:
    return ce.claude_env(claude_home, fake_api.url, path_prepend=e2e_path_prepend,
                         extra={"CAFLEET_DB": str(tmp_path / "data" / "cafleet.db")})


@pytest.fixture
def e2e_tmux(claude_bin, tmp_path, e2e_env, project_dir):
    server = ce.TmuxServer(tmp_path / "tmux", e2e_env).start(cwd=project_dir)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def start_claude(claude_bin, e2e_tmux, fake_api, project_dir):
    def start(*args: str, cwd=None, env=None, wait: bool = True,
              timeout: float = 30) -> ce.ClaudePane:
        return ce.start_claude(e2e_tmux, claude_bin, *args, cwd=cwd or project_dir,
                               api=fake_api, env=env, wait=wait, timeout=timeout)

    return start
