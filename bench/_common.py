"""Small helpers shared by the bench scripts: timing commands and printing tables."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time


def python_bin() -> str:
    """The real interpreter (not a pyenv shim), so a run measures cafleet, not the shim. In a
    venv, the venv's own python (resolving its symlink would leave the venv and its cafleet)."""
    if sys.prefix != sys.base_prefix:
        return sys.executable
    return os.path.realpath(sys.executable)


def cafleet_argv() -> list[str]:
    """How to start the installed console script with the real interpreter: the script
    `cafleet` next to the interpreter (what pip/pipx/uv install), else `python -m cafleet`."""
    script = os.path.join(os.path.dirname(python_bin()), "cafleet")
    if os.path.exists(script):
        return [python_bin(), script]
    found = shutil.which("cafleet")
    return [python_bin(), found] if found else [python_bin(), "-m", "cafleet"]


def compile_package() -> None:
    """Byte-compile the cafleet package, as pip/pipx/uv do at install time. Without it an
    editable checkout run with PYTHONDONTWRITEBYTECODE recompiles every module on every call."""
    import compileall

    import cafleet

    compileall.compile_dir(os.path.dirname(cafleet.__file__), quiet=1)


def time_runs(argv_factory, runs: int, env=None, stdin: bytes | None = None) -> list[float]:
    """Wall times in milliseconds of `runs` runs of `argv_factory(i)` (a list), each checked."""
    out = []
    for i in range(runs):
        argv = argv_factory(i)
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=env, input=stdin, capture_output=True)
        out.append((time.perf_counter() - t0) * 1000)
        if r.returncode != 0:
            raise SystemExit(f"{argv} exited {r.returncode}: {r.stderr.decode()[-500:]}")
    return out


def time_interleaved(cases: list[tuple[str, object]], runs: int, env=None) -> dict[str, list[float]]:
    """Like `time_runs` for several commands at once, run round-robin (one of each per round)
    so that load from elsewhere on the machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for i in range(runs):
        for name, factory in cases:
            times[name].extend(time_runs(lambda _j, f=factory, k=i: f(k), 1, env))
    return times


def median(xs) -> float:
    return statistics.median(xs)


def p90(xs) -> float:
    """The 90th percentile of `xs` (nearest rank)."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def table(rows: list[list], headers: list[str]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *cells)]
    fmt = lambda r: "  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])
