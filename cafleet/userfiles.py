"""Reading a file a user named on the command line (`--prompt-file`, `--text-file`,
`permissions --write`): bounded, and only a regular file.

A device, a FIFO or a directory is refused before anything is read (`/dev/zero` and
`/dev/full` never end, a FIFO blocks until someone writes), so the open itself uses
`O_NONBLOCK` and the type is checked with `fstat` on the open descriptor (no race with a
swapped path). At most `max_bytes` are read; a longer file is refused, never cut. `-` means
standard input, read the same bounded way. Errors are `UsageError` (exit 2) naming the flag.
"""

from __future__ import annotations

import os
import stat
import sys

from cafleet.errors import UsageError

MAX_PROMPT_BYTES = 96 * 1024
"""Largest `--prompt-file`: the prompt becomes one argument of the backend's argv, and Linux
refuses a single argument over 128 KiB (MAX_ARG_STRLEN, execve(2) "Limits on size of
arguments and environment"); the margin is for the identity text cafleet adds."""
MAX_SETTINGS_BYTES = 1024 * 1024
"""Largest Claude Code settings file `permissions --write` reads and merges."""


def read_text(path: str, flag: str, max_bytes: int, *, allow_stdin: bool = False) -> str:
    """The UTF-8 text of `path` (`-`: stdin when `allow_stdin`), at most `max_bytes` bytes.

    Raises `FileNotFoundError` when the path does not exist (callers decide whether that is
    fine), `UsageError` for anything else that cannot be read as asked: not a regular file,
    larger than `max_bytes`, not UTF-8, unreadable."""
    if allow_stdin and path == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)  # BufferedReader.read(n): up to n bytes or EOF
        return _decode(data, flag, "standard input", max_bytes)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise UsageError(f"cannot read {flag} {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
            raise UsageError(f"{flag} {path} is {kind}; give a regular file")
        if st.st_size > max_bytes:
            raise UsageError(f"{flag} {path} is {st.st_size} bytes; the limit is {max_bytes}")
        data = _read_bounded(fd, max_bytes)
    except OSError as e:
        raise UsageError(f"cannot read {flag} {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    return _decode(data, flag, path, max_bytes)


def _read_bounded(fd: int, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while size <= max_bytes:
        chunk = os.read(fd, min(65536, max_bytes + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _decode(data: bytes, flag: str, where: str, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise UsageError(f"{flag} {where} holds more than {max_bytes} bytes; that is the limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{flag} {where} is not UTF-8 text ({e.reason} at byte {e.start})") from None
