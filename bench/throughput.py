"""Broker throughput: in-process send+poll+ack cycles per second, and total sends per second
with N processes sending at once to one recipient.

Run: `python bench/throughput.py [--cycles N] [--per-proc N] [--procs 1,2,4,8]`. Uses a temp
DB (WAL, `synchronous = NORMAL`, as cafleet opens it). Prints a table; medians and ratios
come from this one run.

- in-process: one `Broker` (one connection), a cycle is `send` (one task) + `poll` (the
  recipient's whole inbox: that task) + `ack` of it; each a `BEGIN IMMEDIATE` transaction,
  as separate CLI calls would run them. Target: >= 2,000 cycles/s.
- concurrent: N processes (multiprocessing, spawn), each with its own connection, released
  together, each sending `per_proc` tasks; total sends / (last finish - first start).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import compile_package, table  # noqa: E402

TARGET_CYCLES_PER_S = 2000


def _fleet(db: str, senders: int = 1):
    from cafleet.broker import Broker

    with Broker.open(db) as b:
        f = b.create_fleet("bench")
        fid = f["fleet_id"]
        inbox = b.register_agent(fid, "Inbox", "recipient")["agent_id"]
        ids = [b.register_agent(fid, f"S{i}", "sender")["agent_id"] for i in range(senders)]
    return fid, inbox, ids


def measure_inprocess(cycles: int = 3000, warmup: int = 200) -> dict:
    """Cycles per second of send + poll + ack in one process, and each step's median (µs)."""
    from cafleet.broker import Broker

    tmp = tempfile.mkdtemp(prefix="cafleet-tp-")
    db = os.path.join(tmp, "cafleet.db")
    fid, inbox, [sender] = _fleet(db)
    steps = {"send": [], "poll": [], "ack": []}
    with Broker.open(db) as b:
        for _ in range(warmup):
            t = b.send(fid, sender, inbox, "warm")["task_id"]
            b.ack(fid, inbox, [t])
        pc = time.perf_counter
        t_start = pc()
        for i in range(cycles):
            t0 = pc()
            b.send(fid, sender, inbox, f"cycle {i}")
            t1 = pc()
            tasks = b.poll(fid, inbox)
            t2 = pc()
            b.ack(fid, inbox, [t["task_id"] for t in tasks])
            t3 = pc()
            steps["send"].append(t1 - t0)
            steps["poll"].append(t2 - t1)
            steps["ack"].append(t3 - t2)
            if len(tasks) != 1:
                raise SystemExit(f"cycle {i}: polled {len(tasks)} tasks, expected 1")
        elapsed = pc() - t_start
    return {"cycles": cycles, "seconds": elapsed, "cycles_per_s": cycles / elapsed,
            "median_us": {k: statistics.median(v) * 1e6 for k, v in steps.items()},
            "target": TARGET_CYCLES_PER_S}


def _sender(db, fid, me, to, n, ready, go, out):
    from cafleet.broker import Broker

    try:
        b = Broker.open(db)
        ready.put(me)
        go.wait(60)
        t0 = time.monotonic()
        for i in range(n):
            b.send(fid, me, to, f"{me} {i}")
        t1 = time.monotonic()
        b.close()
        out.put(("ok", t0, t1, n))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        out.put(("error", f"{type(e).__name__}: {e}", 0, 0))


def measure_concurrent(procs: int, per_proc: int = 500) -> dict:
    """Total sends/s of `procs` processes sending `per_proc` tasks each to one recipient."""
    ctx = mp.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="cafleet-tpc-")
    db = os.path.join(tmp, "cafleet.db")
    fid, inbox, senders = _fleet(db, procs)
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_sender, args=(db, fid, s, inbox, per_proc, ready, go, out)) for s in senders]
    for w in workers:
        w.start()
    for _ in workers:
        ready.get(timeout=60)
    go.set()
    results = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(30)
    errors = [r[1] for r in results if r[0] != "ok"]
    if errors:
        raise SystemExit(f"concurrent senders failed: {errors[:3]}")
    start, end = min(r[1] for r in results), max(r[2] for r in results)
    total = sum(r[3] for r in results)
    from cafleet.broker import Broker

    with Broker.open(db) as b:
        stored = b.unread_count(inbox)
    if stored != total:
        raise SystemExit(f"{total} sends but {stored} tasks stored")
    return {"procs": procs, "sends": total, "seconds": end - start, "sends_per_s": total / (end - start)}


def measure(cycles: int = 3000, per_proc: int = 500, procs=(1, 2, 4, 8)) -> dict:
    compile_package()
    return {"inprocess": measure_inprocess(cycles),
            "concurrent": [measure_concurrent(n, per_proc) for n in procs]}


def rows(result: dict) -> list[list[str]]:
    ip = result["inprocess"]
    out = [["in-process send+poll+ack cycles/s", f"{ip['cycles_per_s']:.0f}",
            f"target >= {ip['target']}: {'met' if ip['cycles_per_s'] >= ip['target'] else 'NOT met'}"]]
    for step, us in ip["median_us"].items():
        out.append([f"  {step} (median per call)", f"{us:.0f} µs", f"{1e6 / us:.0f}/s alone"])
    base = result["concurrent"][0]["sends_per_s"] if result["concurrent"] else None
    for c in result["concurrent"]:
        out.append([f"{c['procs']} process(es) sending, total sends/s", f"{c['sends_per_s']:.0f}",
                    f"{c['sends_per_s'] / base:.2f}x of 1 process" if base else ""])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=3000)
    ap.add_argument("--per-proc", type=int, default=500)
    ap.add_argument("--procs", default="1,2,4,8")
    args = ap.parse_args()
    result = measure(args.cycles, args.per_proc, tuple(int(x) for x in args.procs.split(",")))
    print(f"cafleet broker throughput ({args.cycles} in-process cycles; {args.per_proc} sends per process; "
          f"{os.cpu_count()} CPUs)")
    print(table(rows(result), ["measure", "value", "note"]))


if __name__ == "__main__":
    main()
