"""`cafleet mcp` over real pipes (a subprocess speaking MCP's stdio transport), and
`cafleet mcp config`."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import tomllib

import pytest

from cafleet.broker import Broker
from cafleet import mcp_server, wake


@pytest.fixture
def fleet(db_path):
    b = Broker.open(str(db_path))
    f = b.create_fleet("m")
    fid, d = f["fleet_id"], f["director"]["agent_id"]
    m = b.register_agent(fid, "worker", "w", role="member", parent_agent_id=d)["agent_id"]
    yield b, fid, d, m
    b.close()


class Client:
    """`python -m cafleet ARGS` with line-delimited JSON-RPC on its stdin/stdout."""

    def __init__(self, *args, env=None):
        self.p = subprocess.Popen([sys.executable, "-m", "cafleet", *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.n = 0

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))

    def send(self, method, params=None, *, notify=False):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        if not notify:
            self.n += 1
            msg["id"] = self.n
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()
        return msg.get("id")

    def recv(self, timeout=10.0):
        return self.q.get(timeout=timeout)

    def call(self, method, params=None, timeout=10.0):
        i = self.send(method, params)
        got = self.recv(timeout)
        assert got.get("id") == i, got
        return got

    def init(self):
        r = self.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                     "clientInfo": {"name": "t", "version": "0"}})
        self.send("notifications/initialized", notify=True)
        return r

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(10)
        finally:
            if self.p.poll() is None:
                self.p.kill()


@pytest.fixture
def client(fleet, db_path):
    import os

    b, fid, d, m = fleet
    c = Client("--fleet-id", fid, "mcp", "--agent-id", d, env={**os.environ, "CAFLEET_DB": str(db_path)})
    yield c
    c.close()
    assert "Traceback" not in c.p.stderr.read()


def test_initialize_and_list(client, fleet):
    b, fid, d, m = fleet
    r = client.init()["result"]
    assert r["protocolVersion"] == "2025-06-18"
    assert r["serverInfo"]["name"] == "cafleet" and "tools" in r["capabilities"]
    tools = client.call("tools/list")["result"]["tools"]
    assert [t["name"] for t in tools] == ["wait_for_news"]
    assert tools[0]["inputSchema"]["required"] == []  # both ids given to the server
    assert tools[0]["annotations"]["readOnlyHint"] is True
    assert client.call("initialize", {"protocolVersion": "1999-01-01"})["result"]["protocolVersion"] \
        == mcp_server.PROTOCOL_VERSIONS[-1]


def test_wait_blocks_answers_pings_and_wakes_on_a_report(client, fleet):
    b, fid, d, m = fleet
    client.init()
    i = client.send("tools/call", {"name": "wait_for_news", "arguments": {"timeout_s": 60}})
    time.sleep(0.5)
    assert client.call("ping")["result"] == {}  # answered while the wait blocks
    t = b.send(fid, m, d, "report: all tests pass")
    got = client.recv(10)
    assert got["id"] == i and got["result"]["isError"] is False
    text = got["result"]["content"][0]["text"]
    assert "report: all tests pass" in text and t["task_id"] in text
    assert f"cafleet --fleet-id {fid} message ack --agent-id {d} --task-id {t['task_id']}" in text


def test_cancel_sends_no_response_and_the_server_goes_on(client, fleet):
    client.init()
    i = client.send("tools/call", {"name": "wait_for_news", "arguments": {}})
    time.sleep(0.3)
    client.send("notifications/cancelled", {"requestId": i, "reason": "user"}, notify=True)
    r = client.call("ping", timeout=5)  # the next message is the ping's answer, not the wait's
    assert r["result"] == {}
    with pytest.raises(queue.Empty):
        client.recv(1.0)


def test_errors(client, fleet):
    b, fid, d, m = fleet
    client.init()
    assert client.call("resources/list")["error"]["code"] == -32601
    assert client.call("tools/call", ["not", "an", "object"])["error"]["code"] == -32602
    client.p.stdin.write("{not json\n")
    client.p.stdin.flush()
    assert client.recv()["error"]["code"] == -32700
    assert client.call("tools/call", {"name": "rm", "arguments": {}})["error"]["code"] == -32602
    bad = client.call("tools/call", {"name": "wait_for_news",
                                     "arguments": {"director_id": "nope", "timeout_s": 1}})
    assert bad["result"]["isError"] is True
    assert "director_id must be a lowercase UUID4" in bad["result"]["content"][0]["text"]
    other = client.call("tools/call", {"name": "wait_for_news", "arguments": {
        "director_id": "0b4c7a43-1f0e-4d39-9b55-2f6f6c2b0e11", "timeout_s": 1}})
    assert other["result"]["isError"] is True and "not found" in other["result"]["content"][0]["text"]
    ok = client.call("tools/call", {"name": "wait_for_news", "arguments": {"timeout_s": 0.2}})
    assert "nothing new" in ok["result"]["content"][0]["text"]


def test_server_without_ids_needs_them_in_the_call(fleet, db_path):
    import os

    b, fid, d, m = fleet
    c = Client("mcp", env={**os.environ, "CAFLEET_DB": str(db_path)})
    try:
        c.init()
        tool = c.call("tools/list")["result"]["tools"][0]
        assert tool["inputSchema"]["required"] == ["fleet_id", "director_id"]
        b.send(fid, m, d, "hello")
        r = c.call("tools/call", {"name": "wait_for_news", "arguments": {
            "fleet_id": fid, "director_id": d, "timeout_s": 5}})
        assert "hello" in r["result"]["content"][0]["text"]
    finally:
        c.close()


# ------------------------------------------------------------------------- mcp config


def run(*args, env):
    return subprocess.run([sys.executable, "-m", "cafleet", *args], capture_output=True, text=True,
                          env=env, timeout=30)


def test_config_is_the_codex_toml_block(fleet, db_path, monkeypatch):
    import os

    b, fid, d, m = fleet
    env = {**os.environ, "CAFLEET_DB": str(db_path)}
    p = run("--fleet-id", fid, "mcp", "config", "--agent-id", d, env=env)
    assert p.returncode == 0, p.stderr
    cfg = tomllib.loads(p.stdout)["mcp_servers"]["cafleet"]
    assert cfg["args"][-4:] == ["--fleet-id", fid, "mcp", "--agent-id", d][-4:]
    assert cfg["args"][cfg["args"].index("--fleet-id") + 1] == fid
    assert cfg["env"] == {"CAFLEET_DB": str(db_path)}
    assert cfg["tool_timeout_sec"] == wake.TOOL_TIMEOUT > wake.MAX_TIMEOUT
    assert os.path.isabs(cfg["command"])
    flags = run("--fleet-id", fid, "--json", "mcp", "config", "--agent-id", d, env=env)
    argv = json.loads(flags.stdout)["codex_argv"]
    assert argv[:4] == ["codex", f"--add-dir={db_path.parent}", "-c",
                        "sandbox_workspace_write.network_access=true"]
    assert argv[2::2] == ["-c"] * ((len(argv) - 2) // 2)
    assert f"mcp_servers.cafleet.tool_timeout_sec={wake.TOOL_TIMEOUT}" in argv
    assert " ".join(argv[:2]) in p.stdout  # the TOML block's comment names the start line
    text = run("--fleet-id", fid, "mcp", "config", "--agent-id", d, "--flags", env=env).stdout
    assert text.startswith("codex --add-dir=") and "mcp_servers.cafleet.command=" in text
    generic = tomllib.loads(run("mcp", "config", env=env).stdout)["mcp_servers"]["cafleet"]
    assert generic["args"][-1] == "mcp"


def test_config_is_never_offered_for_opencode(db_path):
    """The seed's rule: an opencode pane loads no MCP server. (That a member's own config has
    none, and hides a user's MCP tools, is tests/test_backends.py's.)"""
    import os

    b = Broker.open(str(db_path))
    f = b.create_fleet("oc", coding_agent="opencode")
    b.close()
    env = {**os.environ, "CAFLEET_DB": str(db_path)}
    p = run("--fleet-id", f["fleet_id"], "mcp", "config", "--agent-id", f["director"]["agent_id"], env=env)
    assert p.returncode == 2 and "codex Directors only" in p.stderr and p.stdout == ""
