"""Backend probing where the real binaries cannot run here: `<binary> --version` that fails,
hangs or prints oddly, faked with pytest-subprocess (`fp`), and the argv it is given.

The binaries themselves are real files on a private PATH (so `shutil.which` finds them as it
would in production); only the process they would start is faked.
"""

from __future__ import annotations

import subprocess

import pytest

from cafleet import backends, doctor
from cafleet.broker import Broker
from cafleet.errors import CafleetError


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """A PATH holding only executables `claude`, `codex`, `opencode` (never run: `fp` fakes
    their processes). Returns the dir."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in backends.BACKENDS:
        (d / name).write_text("#!/bin/sh\nexit 99\n")
        (d / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(d))
    return d


@pytest.mark.parametrize("name", backends.BACKENDS)
def test_version_argv_is_the_found_binary_and_flag(fp, fake_bin, name):
    fp.register([str(fake_bin / name), "--version"], stdout=["", "  1.2.3 (tool)  ", "extra"])
    assert backends.version(name) == "1.2.3 (tool)"
    assert fp.call_count([str(fake_bin / name), "--version"]) == 1


def test_version_is_none_when_the_binary_exits_non_zero(fp, fake_bin):
    fp.register([str(fake_bin / "claude"), "--version"], stdout="9.9.9\n", returncode=1)
    assert backends.version("claude") is None


def _hang(process):
    # pytest-subprocess's communicate() ignores its timeout: raise what subprocess.run would
    raise subprocess.TimeoutExpired(process.args, 0.2)


def test_version_is_none_when_the_binary_hangs(fp, fake_bin):
    fp.register([str(fake_bin / "codex"), "--version"], stdout="0.1\n", callback=_hang)
    assert backends.version("codex", timeout=0.2) is None


@pytest.mark.parametrize("script", ["echo 1.0; exit 3", "echo 1.0; exec sleep 10"], ids=["fails", "hangs"])
def test_version_with_real_failing_binaries(tmp_path, monkeypatch, script):
    """The same two faults with real processes (cheap here: a shell script)."""
    (tmp_path / "claude").write_text(f"#!/bin/sh\n{script}\n")
    (tmp_path / "claude").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert backends.version("claude", timeout=0.3) is None


def test_version_is_none_when_the_binary_cannot_start(fp, fake_bin):
    def refuse(process):
        raise PermissionError(13, "Permission denied")

    fp.register([str(fake_bin / "opencode"), "--version"], callback=refuse)
    assert backends.version("opencode") is None


@pytest.mark.parametrize("stdout", ["", "\n  \n"])
def test_version_is_none_for_blank_output(fp, fake_bin, stdout):
    fp.register([str(fake_bin / "claude"), "--version"], stdout=stdout)
    assert backends.version("claude") is None


def test_version_of_a_missing_binary_starts_nothing(fp, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # empty dir: nothing on PATH
    # fp has nothing registered: any subprocess call would raise ProcessNotRegisteredError
    for name in backends.BACKENDS:
        assert backends.which(name) is None
        assert backends.version(name) is None


def test_version_passes_stdin_devnull_and_a_timeout(fake_bin, monkeypatch):
    seen = {}

    def fake_run(argv, **kw):
        seen.update(argv=argv, **kw)
        return subprocess.CompletedProcess(argv, 0, stdout="v1\n", stderr="")

    monkeypatch.setattr(backends.subprocess, "run", fake_run)
    assert backends.version("claude", timeout=1.5) == "v1"
    assert seen["argv"] == [str(fake_bin / "claude"), "--version"]
    assert seen["stdin"] is subprocess.DEVNULL and seen["timeout"] == 1.5
    assert seen["capture_output"] is True and seen["text"] is True


def test_doctor_reports_each_backend_with_its_version(fp, fake_bin, tmp_path, monkeypatch):
    fp.register([str(fake_bin / "claude"), "--version"], stdout="2.1.330 (Claude Code)\n")
    fp.register([str(fake_bin / "codex"), "--version"], returncode=2)
    fp.register([str(fake_bin / "opencode"), "--version"], callback=_hang)
    env = {"CAFLEET_DB": str(tmp_path / "db" / "cafleet.db"), "PATH": str(fake_bin)}
    real_version = backends.version
    monkeypatch.setattr(backends, "version", lambda name, timeout=0.2: real_version(name, timeout))
    r = doctor.report(env)
    assert r["backends"] == {
        "claude": {"path": str(fake_bin / "claude"), "version": "2.1.330 (Claude Code)"},
        "codex": {"path": str(fake_bin / "codex"), "version": None},
        "opencode": {"path": str(fake_bin / "opencode"), "version": None},
    }
    assert r["ok"] is False and "not inside tmux" in r["problem"]
    text = doctor.format_report(r)
    assert f"backend claude:   {fake_bin / 'claude'}  2.1.330 (Claude Code)" in text
    assert f"backend codex:    {fake_bin / 'codex'}  (version unknown)" in text


@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_member_create_without_the_binary_registers_nothing(fp, tmp_path, monkeypatch, backend):
    """In-process: the PATH check comes before the broker is touched, and no process starts."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with Broker.open(str(tmp_path / "cafleet.db")) as b:
        f = b.create_fleet("t", placement={"tmux_socket": "/tmp/none", "session_name": "s",
                                           "window_id": "@0", "pane_id": "%0"})
        from cafleet import members

        with pytest.raises(CafleetError) as e:
            members.create(b, f["fleet_id"], name="X", description="d", coding_agent=backend, prompt="hi")
        assert e.value.exit_code == 1 and "not on PATH" in e.value.message
        assert [a["agent_id"] for a in b.list_agents(f["fleet_id"], include_deregistered=True)] == [
            f["director"]["agent_id"]]
