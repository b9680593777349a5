"""The DB path is checked before it is opened (issue 10): no links, owned by you, not writable
by others, created 0700/0600 whatever the umask, and an explicit `$CAFLEET_DB` under a missing
tree is refused instead of created. Each case runs the real CLI in a subprocess."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def cafleet(db, *args, umask=0o022):
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["CAFLEET_DB"] = str(db)
    return subprocess.run([sys.executable, "-m", "cafleet", *args], env=env, capture_output=True, text=True,
                          timeout=60, preexec_fn=lambda: os.umask(umask))


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def refused(p, *words):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("Error: ") and "Traceback" not in p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def test_dangling_symlink_is_refused_and_its_target_not_created(tmp_path):
    (tmp_path / "d").mkdir(mode=0o700)
    target = tmp_path / "elsewhere.db"
    db = tmp_path / "d" / "cafleet.db"
    db.symlink_to(target)
    refused(cafleet(db, "fleet", "list"), "symlink", str(db))
    assert not target.exists()


def test_symlink_to_a_real_db_is_refused(tmp_path):
    real = tmp_path / "real" / "cafleet.db"
    assert cafleet(real, "db", "init").returncode == 0
    (tmp_path / "d").mkdir(mode=0o700)
    link = tmp_path / "d" / "cafleet.db"
    link.symlink_to(real)
    refused(cafleet(link, "fleet", "list"), "symlink")


def test_symlinked_directory_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    refused(cafleet(tmp_path / "link" / "cafleet.db", "fleet", "list"), "symlink")
    assert list((tmp_path / "real").iterdir()) == []


def test_world_writable_directory_is_refused(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o1777)
    refused(cafleet(d / "cafleet.db", "fleet", "list"), "writable by group or others", "1777")
    assert list(d.iterdir()) == []


def test_group_writable_db_file_is_refused(tmp_path):
    db = tmp_path / "d" / "cafleet.db"
    assert cafleet(db, "db", "init").returncode == 0
    db.chmod(0o666)
    refused(cafleet(db, "fleet", "list"), "writable by group or others", "chmod go-w")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_db_owned_by_another_user_is_refused(tmp_path):
    db = tmp_path / "d" / "cafleet.db"
    assert cafleet(db, "db", "init").returncode == 0
    os.chown(db, 12345, -1)
    refused(cafleet(db, "fleet", "list"), "uid 12345", "not by you")


def test_missing_tree_is_refused_not_created(tmp_path):
    db = tmp_path / "nonexistent" / "dir" / "x.db"
    refused(cafleet(db, "fleet", "list"), "does not exist", "mkdir -p")
    assert not (tmp_path / "nonexistent").exists()


def test_a_directory_given_as_the_db_says_so(tmp_path):
    p = cafleet(tmp_path, "fleet", "list")
    refused(p, "is a directory, not a regular file")
    assert "permissions and free space" not in p.stderr


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_file_is_0600_and_directory_0700_whatever_the_umask(tmp_path, umask):
    db = tmp_path / "d" / "cafleet.db"
    assert cafleet(db, "fleet", "list", umask=umask).returncode == 0
    assert (mode(db.parent), mode(db)) == (0o700, 0o600)


def test_default_location_still_creates_its_tree(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CAFLEET_DB")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg" / "deep")
    p = subprocess.run([sys.executable, "-m", "cafleet", "fleet", "list"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert mode(tmp_path / "xdg" / "deep" / "cafleet") == 0o700
    assert Path(tmp_path / "xdg" / "deep" / "cafleet" / "cafleet.db").is_file()
