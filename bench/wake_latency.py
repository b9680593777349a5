"""Wake-up latency and idle cost of `wait_for_news` (cafleet.wake / `cafleet mcp`).

Run: `python bench/wake_latency.py [--runs N]`. A private DB (temp dir) holds a fleet, its
Director and one member agent (no panes: what is measured is the inbox path). Each run, a
waiter is blocked in a wait, then the member sends a report with the real CLI (`cafleet
message send`, a separate process, as a member's shell tool runs it); the latency is from the
report's commit (its `created_at`, ms) to the waiter having the digest:

- `in-process`: `wake.Watch.wait` in this process;
- `mcp`: `cafleet mcp` as a subprocess (as codex runs it), a `tools/call` over its stdin,
  the JSON-RPC result line read back.

Also: `cafleet mcp` start to its `initialize` answer, and the CPU the server burns while a
wait blocks with nothing to report (utime+stime from /proc over `IDLE_SECONDS`, as a share
of one core; members' panes add one `capture-pane` per member per second on top).
Prints medians (ms) and p90.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from _common import compile_package, median, p90, table  # noqa: E402


def cafleet_argv() -> list[str]:
    """This interpreter (a venv's too) running the package, as a console script would."""
    return [sys.executable, "-m", "cafleet"]

IDLE_SECONDS = 10.0


def _ts(created_at: str) -> float:
    return datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()


class Rig:
    def __init__(self):
        from cafleet.broker import Broker

        self.tmp = tempfile.mkdtemp(prefix="cafleet-wake-")
        self.db = os.path.join(self.tmp, "cafleet.db")
        self.env = {**os.environ, "CAFLEET_DB": self.db}
        for k in ("TMUX", "TMUX_PANE"):
            self.env.pop(k, None)
        b = Broker.open(self.db)
        f = b.create_fleet("bench")
        self.fid, self.d = f["fleet_id"], f["director"]["agent_id"]
        self.m = b.register_agent(self.fid, "worker", "w", role="member", parent_agent_id=self.d)["agent_id"]
        b.close()

    def send(self, text: str) -> str:
        p = subprocess.run([*cafleet_argv(), "--fleet-id", self.fid, "message", "send", "--agent-id",
                            self.m, "--to", self.d, "--text", text], env=self.env, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return p.stdout.split()[0]

    def created(self, task_id: str) -> float:
        from cafleet.broker import Broker

        b = Broker.open(self.db)
        try:
            return _ts(b.show_task(self.fid, self.d, task_id)["created_at"])
        finally:
            b.close()


def in_process(rig: Rig, runs: int) -> list[float]:
    from cafleet import wake
    from cafleet.broker import Broker

    b = Broker.open(rig.db)
    w = wake.Watch(b, rig.fid, rig.d, observe=lambda p: ("pending", None, ""))
    out = []
    try:
        for i in range(runs):
            box = {}
            t = threading.Timer(0.3, lambda i=i: box.setdefault("id", rig.send(f"report {i}")))
            t.start()
            d = w.wait(30)
            woke = time.time()
            t.join()
            assert [e.task_id for e in d.events] == [box["id"]], d.text()
            out.append(woke - rig.created(box["id"]))
    finally:
        b.close()
    return out


class McpProc:
    def __init__(self, rig: Rig):
        t0 = time.monotonic()
        self.p = subprocess.Popen([*cafleet_argv(), "--fleet-id", rig.fid, "mcp", "--agent-id", rig.d],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=rig.env)
        self.n = 0
        self.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "bench", "version": "0"}})
        self.init_s = time.monotonic() - t0

    def send(self, method, params):
        self.n += 1
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method,
                                       "params": params}) + "\n")
        self.p.stdin.flush()

    def call(self, method, params):
        self.send(method, params)
        return json.loads(self.p.stdout.readline())

    def cpu_s(self) -> float:
        with open(f"/proc/{self.p.pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def via_mcp(rig: Rig, runs: int) -> tuple[list[float], list[float], float]:
    from cafleet.broker import Broker

    b = Broker.open(rig.db)  # a fresh server reports every un-acked task: ack the backlog
    b.ack(rig.fid, rig.d, [t["task_id"] for t in b.inbox(rig.fid, rig.d)])
    b.close()
    lat, inits = [], []
    srv = McpProc(rig)
    inits.append(srv.init_s)
    try:
        for i in range(runs):
            box = {}
            t = threading.Timer(0.3, lambda i=i: box.setdefault("id", rig.send(f"mcp report {i}")))
            t.start()
            r = srv.call("tools/call", {"name": "wait_for_news", "arguments": {"timeout_s": 30}})
            got = time.time()
            t.join()
            assert box["id"] in r["result"]["content"][0]["text"], r
            lat.append(got - rig.created(box["id"]))
        c0 = srv.cpu_s()
        srv.call("tools/call", {"name": "wait_for_news", "arguments": {"timeout_s": IDLE_SECONDS}})
        idle_share = (srv.cpu_s() - c0) / IDLE_SECONDS
    finally:
        srv.close()
    for _ in range(max(2, runs // 3)):
        s = McpProc(rig)
        inits.append(s.init_s)
        s.close()
    return lat, inits, idle_share


def measure(runs: int) -> dict[str, list[float]]:
    compile_package()
    rig = Rig()
    lat_in = in_process(rig, runs)
    lat_mcp, inits, idle = via_mcp(rig, runs)
    return {"wake: report commit -> wait returns (in-process)": lat_in,
            "wake: report commit -> MCP tools/call result read": lat_mcp,
            "mcp: start -> initialize answered": inits,
            "mcp: CPU share of one core while a wait idles": [idle]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    res = measure(a.runs)
    rows = []
    for k, xs in res.items():
        if "CPU share" in k:
            rows.append([k, f"{xs[0] * 100:.2f} %", "-", len(xs)])
        else:
            rows.append([k, f"{median(xs) * 1000:.0f} ms", f"{p90(xs) * 1000:.0f} ms", len(xs)])
    print(f"python {sys.executable}")
    print(table(rows, ["measure", "median", "p90", "n"]))


if __name__ == "__main__":
    main()
