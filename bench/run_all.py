"""Run every cafleet bench and print ONE table.

Run: `python bench/run_all.py [--quick]`. Imports each bench script's `measure()` and calls it
in turn (cli_latency, hook_latency, push_latency if present, throughput, memory, install); a bench
that fails is shown as a FAILED row and the others still run. At the top: date, CPUs
(`nproc`), total memory, Python, SQLite and tmux versions. All medians and ratios come from
this one run. Default settings finish in under ~3 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sqlite3
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from _common import compile_package, median, p90  # noqa: E402

# runs per bench: (default, --quick)
RUNS = {"cli_latency": (25, 7), "hook_latency": (30, 7), "push_latency": (12, 3), "memory": (5, 2), "install": (25, 7),
        "install_setup": (3, 1), "throughput_cycles": (3000, 1000), "throughput_per_proc": (500, 200),
        "wake_latency": (15, 5)}


def _first_line(argv) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not found"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def environment() -> list[str]:
    import cafleet

    nproc = _first_line(["nproc"])
    return [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"nproc: {nproc}   total memory: {_mem_total()}   machine: {platform.machine()} {platform.system()} "
        f"{platform.release()}",
        f"python: {platform.python_version()} ({os.path.realpath(sys.executable)})   sqlite: {sqlite3.sqlite_version}"
        f"   tmux: {_first_line(['tmux', '-V'])}   cafleet: {cafleet.__version__}",
    ]


def _load(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            return None
        raise


def _fmt_ms(x: float) -> str:
    return f"{x:.1f} ms"


def bench_cli(runs: int) -> list[list[str]]:
    mod = _load("cli_latency")
    results = mod.measure(runs)
    return [["CLI latency", r["command"], _fmt_ms(r["median_ms"]), f"{r['ratio']:.2f}x floor"] for r in results]


def bench_hook(runs: int) -> list[list[str]]:
    mod = _load("hook_latency")
    results = mod.measure(runs)
    return [["hook latency", r["case"], _fmt_ms(r["median_ms"]), f"{r['ratio']:.2f}x floor"] for r in results]


def bench_push(runs: int) -> list[list[str]]:
    mod = _load("push_latency")
    if mod is None or not hasattr(mod, "measure"):
        return [["push latency", "(bench/push_latency.py not present)", "-", ""]]
    results = mod.measure(runs)
    rows = []
    if isinstance(results, dict):
        for name, times in results.items():
            if isinstance(times, (list, tuple)) and times:
                rows.append(["push latency", name, _fmt_ms(median(times)), f"p90 {p90(times):.0f} ms, n={len(times)}"])
            else:
                rows.append(["push latency", name, str(times), ""])
    else:  # a list of dicts, like the other benches
        for r in results:
            name = r.get("case") or r.get("measure") or r.get("command") or "?"
            value = r.get("median_ms")
            rows.append(["push latency", name, _fmt_ms(value) if value is not None else str(r), ""])
    return rows


def bench_wake(runs: int) -> list[list[str]]:
    results = _load("wake_latency").measure(runs)
    rows = []
    for name, xs in results.items():
        if "CPU share" in name:
            rows.append(["wake-up (mcp)", name, f"{xs[0] * 100:.2f} %", ""])
        else:
            rows.append(["wake-up (mcp)", name, _fmt_ms(median(xs) * 1000),
                         f"p90 {p90(xs) * 1000:.0f} ms, n={len(xs)}"])
    return rows


def bench_throughput(cycles: int, per_proc: int) -> list[list[str]]:
    mod = _load("throughput")
    result = mod.measure(cycles=cycles, per_proc=per_proc)
    ip = result["inprocess"]
    rows = [["broker throughput", "in-process send+poll+ack cycles/s", f"{ip['cycles_per_s']:.0f}/s",
             f"target >= {ip['target']}/s: {'met' if ip['cycles_per_s'] >= ip['target'] else 'NOT met'}"]]
    rows += [["broker throughput", f"  {k} alone (median per call)", f"{us:.0f} µs", ""]
             for k, us in ip["median_us"].items()]
    base = result["concurrent"][0]["sends_per_s"]
    rows += [["concurrent throughput", f"{c['procs']} process(es) x {c['sends'] // c['procs']} sends",
              f"{c['sends_per_s']:.0f} sends/s", f"{c['sends_per_s'] / base:.2f}x of 1 process"]
             for c in result["concurrent"]]
    return rows


def bench_memory(runs: int) -> list[list[str]]:
    mod = _load("memory")
    results = mod.measure(runs)
    return [["peak memory", r["case"], f"{r['median_mib']:.1f} MiB",
             f"{r['delta_mib']:+.1f} MiB, {r['ratio']:.2f}x {r['floor']}"] for r in results]


def bench_install(runs: int, setup_runs: int) -> list[list[str]]:
    mod = _load("install")
    r = mod.measure(runs, setup_runs)
    rows = [["plugin bin/cafleet", x["command"], _fmt_ms(x["median_ms"]), f"{x['ratio']:.2f}x -I -S floor"]
            for x in r["latency"]]
    rows += [["plugin bin/cafleet", x["what"], f"{x['median_s']:.2f} s", f"n={x['n']}"] for x in r["first_use"]]
    rows += [["plugin bin/cafleet", x["what"], f"{x['mb']:.2f} MB", "goal <= 2 MB" if "installed" in x["what"] else ""]
             for x in r["sizes"]]
    return rows


def table(rows: list[list[str]], headers: list[str], right=(2,)) -> str:
    """Like `_common.table`, but text columns left-aligned and only `right` ones right-aligned."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *cells)]

    def fmt(r):
        return "  ".join(x.rjust(w) if i in right else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs per bench (about a minute)")
    args = ap.parse_args()
    pick = 1 if args.quick else 0
    runs = {k: v[pick] for k, v in RUNS.items()}
    compile_package()
    header = environment()
    started = time.monotonic()
    benches = [
        ("CLI latency", lambda: bench_cli(runs["cli_latency"]), f"{runs['cli_latency']} runs"),
        ("hook latency", lambda: bench_hook(runs["hook_latency"]), f"{runs['hook_latency']} runs"),
        ("push latency", lambda: bench_push(runs["push_latency"]), f"{runs['push_latency']} runs"),
        ("broker throughput", lambda: bench_throughput(runs["throughput_cycles"], runs["throughput_per_proc"]),
         f"{runs['throughput_cycles']} cycles, {runs['throughput_per_proc']} sends/process"),
        ("peak memory", lambda: bench_memory(runs["memory"]), f"{runs['memory']} runs"),
        ("wake-up (mcp)", lambda: bench_wake(runs["wake_latency"]), f"{runs['wake_latency']} runs"),
        ("plugin bin/cafleet", lambda: bench_install(runs["install"], runs["install_setup"]),
         f"{runs['install']} runs, {runs['install_setup']} setups"),
    ]
    rows, timings = [], []
    for section, fn, what in benches:
        t0 = time.monotonic()
        try:
            rows += fn()
        except BaseException as e:  # noqa: BLE001 - one failing bench must not hide the others
            if isinstance(e, KeyboardInterrupt):
                raise
            detail = "".join(traceback.format_exception_only(type(e), e)).strip().splitlines()[-1]
            rows.append([section, "FAILED", "-", detail[:100]])
        timings.append(f"{section} {time.monotonic() - t0:.0f} s ({what})")
    print("cafleet benchmarks")
    for line in header:
        print(line)
    print(f"total bench time: {time.monotonic() - started:.0f} s: " + "; ".join(timings))
    print()
    print(table(rows, ["section", "measure", "median", "note"]))


if __name__ == "__main__":
    main()
