"""Whether a path is safe to use as the broker's SQLite file, and creating it safely.

The DB holds every message of every fleet and decides which pane a keystroke goes to, so
another local user who can write it, or swap it for a link, can drive the agents. Before
opening (`cafleet.broker.Broker.open`):

- the DB file, when it exists, must be a regular file (not a symlink, not a directory, not a
  device), owned by the user running cafleet (the effective uid), and not writable by group
  or others;
- its directory must be a real directory (not a symlink), owned by the user, and not
  writable by group or others (a 1777 `/tmp` is refused: anyone could plant a file there);
- a missing file is created 0600 with `O_EXCL | O_NOFOLLOW`, so a dangling symlink is never
  followed; a missing directory is created 0700, but for an explicit `$CAFLEET_DB` only its
  last component: a path under a directory that does not exist is refused rather than
  created as a tree (`CAFLEET_DB=/nonexistent/dir/x.db`).

Each refusal is a `DatabaseError` (exit 1) saying what is wrong and what to do. Standard
library only: hooks import the broker.
"""

from __future__ import annotations

import os
import stat

from cafleet.errors import DatabaseError


def _describe(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file" if stat.S_ISREG(mode) else "not a regular file"


def _check_owner_and_mode(path: str, st: os.stat_result, what: str, fix: str) -> None:
    uid = os.geteuid()
    if st.st_uid != uid:
        raise DatabaseError(f"the DB {what} {path} is owned by uid {st.st_uid}, not by you (uid {uid}); "
                            f"cafleet uses only a DB that you own. {fix}")
    if st.st_mode & 0o022:
        raise DatabaseError(f"the DB {what} {path} is writable by group or others (mode "
                            f"{stat.S_IMODE(st.st_mode):04o}), so another user could change or replace it; "
                            f"run `chmod go-w {path}` or {fix[0].lower() + fix[1:]}")


def check_directory(directory: str, *, create: bool, create_parents: bool) -> None:
    """Check (and, with `create`, make 0700) the DB's directory. Raises `DatabaseError`."""
    fix = "Point CAFLEET_DB at a file in a directory of your own (mode 0700)."
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        if not create:
            return
        parent = os.path.dirname(directory)
        if not create_parents and not os.path.isdir(parent):
            raise DatabaseError(f"the DB directory {directory} does not exist, and neither does {parent}; "
                                f"create it first (`mkdir -p -m 700 {directory}`) or point CAFLEET_DB elsewhere")
        try:
            if create_parents:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise DatabaseError(f"cannot create the DB directory {directory}: {e.strerror}") from None
        st = os.lstat(directory)
    except NotADirectoryError:
        raise DatabaseError(f"cannot create the DB directory {directory}: a component of it is a file") from None
    except OSError as e:
        raise DatabaseError(f"cannot use the DB directory {directory}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise DatabaseError(f"the DB directory {directory} is a symlink; cafleet does not follow links for its DB. "
                            f"{fix}")
    if not stat.S_ISDIR(st.st_mode):
        raise DatabaseError(f"cannot create the DB directory {directory}: it exists and is {_describe(st)}")
    _check_owner_and_mode(directory, st, "directory", fix)


def check_file(path: str) -> bool:
    """Check an existing DB file; False when there is none. Raises `DatabaseError`."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False  # the directory check says what is wrong with the directory
    except OSError as e:
        raise DatabaseError(f"cannot use the DB file {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DatabaseError(f"the DB path {path} is {_describe(st)}, not a regular file; point CAFLEET_DB at a "
                            "file path (the file is created on first use)")
    _check_owner_and_mode(path, st, "file", "Move it aside or point CAFLEET_DB elsewhere.")
    return True


def prepare(path: str, *, create: bool, explicit: bool) -> bool:
    """Check `path` and its directory; with `create`, make what is missing (directory 0700,
    file 0600). `explicit`: the path came from `$CAFLEET_DB` (only the last directory is made).
    Returns whether the file exists now. Raises `DatabaseError`."""
    directory = os.path.dirname(path)
    exists = check_file(path)
    check_directory(directory, create=create and not exists, create_parents=not explicit)
    if exists or not create:
        return exists
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return check_file(path) or True  # created by a racing process (or a link planted): check it
    except OSError as e:
        raise DatabaseError(f"cannot create the DB file {path}: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)
    return True
