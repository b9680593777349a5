"""Install by plugin alone (issue 11): what `bin/cafleet` costs.

Run: `python bench/install.py [--runs N]`. Prints, from one run:

- per-tick command latency through the plugin's `bin/cafleet` (sh -> `python3 -I -S`, the
  stdlib fast path) against a bare `python3 -I -S -c pass` and against the console script
  (`cafleet` as pip installs it), round-robin, medians and ratios (goal: bin/cafleet poll
  <= 1.3x the bare floor);
- first-use setup time: `bin/cafleet --version` with no env yet, building it from a local
  wheel directory (pip; and uv when it is on PATH), median of a few runs;
- the installed plugin's size: what `claude plugin install` copies from a clean checkout
  (every file git would ship), and from this working tree as it is on disk.

`python3` for bin/cafleet is the real interpreter (a temp dir with a symlink first on PATH),
not a pyenv shim, so the launcher is measured, not the shim.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = Path(HERE).parent
sys.path.insert(0, HERE)
sys.path.insert(0, str(ROOT / "tests"))
from _common import cafleet_argv, compile_package, median, python_bin, table, time_interleaved  # noqa: E402


def tree_size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _env(tmp: Path) -> dict[str, str]:
    pybin = tmp / "pybin"
    pybin.mkdir(parents=True, exist_ok=True)
    if not (pybin / "python3").exists():
        (pybin / "python3").symlink_to(python_bin())
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CLAUDE_PLUGIN_DATA")}
    env.update({"PATH": f"{pybin}:/usr/bin:/bin", "CAFLEET_DB": str(tmp / "cafleet.db"),
                "XDG_DATA_HOME": str(tmp / "data")})
    return env


def latency(runs: int, plugin: Path, wheels: Path, tmp: Path) -> list[dict]:
    import wheelhouse

    env = {**_env(tmp), **wheelhouse.pip_env(wheels)}
    launcher = [str(plugin / "bin" / "cafleet")]
    subprocess.run(launcher + ["--version"], env=env, capture_output=True, check=True)  # build the env once
    # warm the plugin copy's bytecode (written on first import, as on a user's first call)
    script = os.path.join(os.path.dirname(sys.executable), "cafleet")  # what pip installs, run by its shebang
    cf = [script] if os.path.exists(script) else cafleet_argv()
    created = json.loads(subprocess.run(launcher + ["--json", "fleet", "create"], env=env, capture_output=True,
                                        text=True, check=True).stdout)
    fleet, director = created["fleet_id"], created["director"]["agent_id"]
    member = subprocess.run(launcher + ["--fleet-id", fleet, "agent", "register", "--name", "m", "--description",
                                        "d"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    tasks = [subprocess.run(launcher + ["--fleet-id", fleet, "message", "send", "--agent-id", director, "--to",
                                        member, "--text", "x"], env=env, capture_output=True, text=True,
                            check=True).stdout.split()[0] for _ in range(2 * runs)]
    poll = ["--fleet-id", fleet, "message", "poll", "--agent-id", director]
    cases = [
        ("python3 -I -S -c pass (floor)", lambda i: [python_bin(), "-I", "-S", "-c", "pass"]),
        ('python3 -I -S -c "import sqlite3"', lambda i: [python_bin(), "-I", "-S", "-c", "import sqlite3"]),
        ("bin/cafleet message poll", lambda i: launcher + poll),
        ("  same, python3 -I -S bin/cafleet (no sh)", lambda i: [python_bin(), "-I", "-S"] + launcher + poll),
        ("console script message poll", lambda i: cf + poll),
        ("bin/cafleet message ack", lambda i: launcher + ["--fleet-id", fleet, "message", "ack", "--agent-id",
                                                          member, "--task-id", tasks[i]]),
        ("console script message ack", lambda i: cf + ["--fleet-id", fleet, "message", "ack", "--agent-id",
                                                       member, "--task-id", tasks[runs + i]]),
        ("bin/cafleet message send", lambda i: launcher + ["--fleet-id", fleet, "message", "send", "--agent-id",
                                                           member, "--to", director, "--text", "hi"]),
        ("console script message send", lambda i: cf + ["--fleet-id", fleet, "message", "send", "--agent-id",
                                                        member, "--to", director, "--text", "hi"]),
        ("bin/cafleet fleet list (click, private env)", lambda i: launcher + ["fleet", "list"]),
        ("console script fleet list", lambda i: cf + ["fleet", "list"]),
    ]
    times = time_interleaved(cases, runs, env)
    fm = median(times[cases[0][0]])
    return [{"command": name, "median_ms": round(median(t), 1), "ratio": round(median(t) / fm, 2)}
            for name, t in times.items()]


def first_use(runs: int, plugin: Path, wheels: Path, tmp: Path) -> list[dict]:
    import wheelhouse

    out = []
    tools = [("pip (venv + pip install)", {})]
    uv = shutil.which("uv")
    if uv:
        uvbin = tmp / "uvbin"
        uvbin.mkdir(exist_ok=True)
        if not (uvbin / "uv").exists():
            (uvbin / "uv").symlink_to(uv)
        tools.append(("uv (uv venv + uv pip install)", {"UV_OFFLINE": "1", "UV_FIND_LINKS": str(wheels),
                                                       "UV_CACHE_DIR": str(tmp / "uv-cache"), "UV_NO_CONFIG": "1",
                                                       "PATH_PREPEND": str(uvbin)}))
    for label, extra in tools:
        samples = []
        for i in range(runs):
            env = {**_env(tmp / f"fu-{len(out)}-{i}"), **wheelhouse.pip_env(wheels), **extra}
            if "PATH_PREPEND" in env:
                env["PATH"] = env.pop("PATH_PREPEND") + ":" + env["PATH"]
            Path(env["XDG_DATA_HOME"]).parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            subprocess.run([str(plugin / "bin" / "cafleet"), "--version"], env=env, capture_output=True, check=True)
            samples.append(time.perf_counter() - t0)
        out.append({"what": f"first use, {label}, local wheels", "median_s": round(median(samples), 2), "n": runs})
    return out


def sizes(plugin: Path) -> list[dict]:
    return [{"what": "installed plugin (clean checkout: files git ships)", "mb": tree_size(plugin) / 1e6},
            {"what": "this working tree as it is on disk", "mb": tree_size(ROOT) / 1e6}]


def measure(runs: int = 25, setup_runs: int = 3) -> dict:
    from checkout import clean_copy
    import wheelhouse

    compile_package()
    tmp = Path(tempfile.mkdtemp(prefix="cafleet-bench-install-"))
    try:
        plugin = clean_copy(tmp / "plugin")
        wheels = wheelhouse.build(tmp / "wheels")
        return {"latency": latency(runs, plugin, wheels, tmp), "first_use": first_use(setup_runs, plugin, wheels, tmp),
                "sizes": sizes(plugin)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=25)
    ap.add_argument("--setup-runs", type=int, default=3)
    args = ap.parse_args()
    r = measure(args.runs, args.setup_runs)
    print(f"bin/cafleet latency, {args.runs} runs each, medians in ms (ratio to python3 -I -S -c pass)")
    print(table([[x["command"], f"{x['median_ms']:.1f}", f"{x['ratio']:.2f}x"] for x in r["latency"]],
                ["command", "median ms", "vs floor"]))
    print()
    print(table([[x["what"], f"{x['median_s']:.2f} s", str(x["n"])] for x in r["first_use"]], ["setup", "median", "n"]))
    print()
    print(table([[x["what"], f"{x['mb']:.2f} MB"] for x in r["sizes"]], ["size", "MB"]))


if __name__ == "__main__":
    main()
