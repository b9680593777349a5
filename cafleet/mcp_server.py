"""`cafleet mcp`: a stdio MCP server with one tool, `wait_for_news`, for a codex Director.

A codex Director that ends each turn by calling `wait_for_news` is woken within a second of a
member's report (or a member's prompt, exit or stall) instead of by a timer, and spends no
model call while nothing happens. The tool only reads: the Director still acts through the
literal `cafleet` commands its rules allow (the digest names them). Never for opencode: the
config an opencode member loads has no MCP servers (`backends.OpencodeBackend.agent_config`).

Wire: MCP over stdio (modelcontextprotocol.io, "Transports" → stdio: one JSON-RPC 2.0 message
per line on stdin/stdout, nothing else on stdout; logs go to stderr). Methods served:
`initialize` (echoes a protocol version it knows, else its newest), `ping`, `tools/list`,
`tools/call`; notifications `notifications/initialized` and `notifications/cancelled` (ends
that request's wait; no response is sent for it, as the spec asks). Anything else that has an
id gets error -32601. A call runs in its own thread, so pings and cancellations are answered
while a wait blocks.

Why not the official SDK (`mcp` on PyPI): measured here (2 cores, Python 3.11) `mcp` 2.3.0
pulls 31 packages / 70 MB, and importing its low-level server takes 1.1–1.7 s against 0.01 s
for this module; installed on first use, the first `cafleet mcp` start would spend codex's MCP
startup timeout (10 s by default) downloading. It also renamed its server class between 1.x
and 2.x. The protocol surface used here is four methods; the logic lives in `cafleet.wake`.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import IO, Any

from cafleet import __version__, render, wake

TOOL = "wait_for_news"

#: MCP protocol revisions this server speaks (they differ in nothing it uses).
PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")


def tool_schema(fleet_id: str | None, director_id: str | None) -> dict:
    """The `tools/list` entry. Ids the server was started with are defaults, so the Director
    may leave them out; otherwise they are required."""
    required = [k for k, v in (("fleet_id", fleet_id), ("director_id", director_id)) if not v]
    return {
        "name": TOOL,
        "title": "Wait for fleet news",
        "description": (
            "Block until the cafleet Director has something to do: a new task in its inbox, a "
            "member showing a prompt or that exited, or a member quiet for "
            f"{wake.STALL_SECONDS:.0f} s; or until timeout_s passes (default "
            f"{wake.DEFAULT_TIMEOUT:.0f}, at most {wake.MAX_TIMEOUT:.0f}). Returns a short "
            "digest with the literal cafleet commands to run next. Call it at the end of every "
            "supervision turn. Read-only."),
        "inputSchema": {
            "type": "object",
            "properties": {
                "fleet_id": {"type": "string", "description": "fleet UUID (line 1 of `cafleet fleet create`)"
                             + (f"; default {fleet_id}" if fleet_id else "")},
                "director_id": {"type": "string", "description": "the Director's agent UUID"
                                + (f"; default {director_id}" if director_id else "")},
                "timeout_s": {"type": "number", "minimum": 0, "maximum": wake.MAX_TIMEOUT},
            },
            "required": required,
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False, "idempotentHint": False},
    }


class Server:
    """One stdio session. `run()` returns when stdin closes."""

    def __init__(self, fleet_id: str | None = None, director_id: str | None = None, *,
                 stdin: IO[str] | None = None, stdout: IO[str] | None = None,
                 db_path: str | None = None, stall_seconds: float = wake.STALL_SECONDS):
        self.fleet_id, self.director_id = fleet_id, director_id
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.db_path, self.stall_seconds = db_path, stall_seconds
        self._out = threading.Lock()
        self._calls: dict[Any, threading.Event] = {}
        self._watches: dict[tuple[str, str], tuple[wake.Watch, threading.Lock]] = {}
        self._lock = threading.Lock()

    # ---- wire
    def send(self, msg: dict) -> None:
        line = render.json_text(msg, separators=(",", ":"))
        with self._out:
            try:
                self.stdout.write(line + "\n")
                self.stdout.flush()
            except (BrokenPipeError, ValueError):  # the client went away (ValueError: closed)
                pass

    def reply(self, id_: Any, result: dict) -> None:
        self.send({"jsonrpc": "2.0", "id": id_, "result": result})

    def error(self, id_: Any, code: int, message: str) -> None:
        self.send({"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}})

    def run(self) -> None:
        threads = []
        for line in self.stdin:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                self.error(None, -32700, "parse error")
                continue
            if not isinstance(msg, dict):
                self.error(None, -32600, "invalid request")
                continue
            t = self.handle(msg)
            if t is not None:
                threads = [x for x in threads if x.is_alive()] + [t]
        for ev in list(self._calls.values()):
            ev.set()  # stdin closed: end the waits, nobody is listening
        for t in threads:
            t.join(timeout=2)

    def handle(self, msg: dict) -> threading.Thread | None:
        method, id_ = msg.get("method"), msg.get("id")
        params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
        if method is None:
            return None  # a response to something we never ask
        if "id" not in msg:  # notification
            if method == "notifications/cancelled":
                ev = self._calls.get(params.get("requestId"))
                if ev is not None:
                    ev.set()
            return None
        if method == "initialize":
            asked = params.get("protocolVersion")
            self.reply(id_, {
                "protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1],
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "cafleet", "version": __version__},
                "instructions": (f"Call {TOOL} at the end of every supervision turn; act on its "
                                 "digest with the literal cafleet commands it names."),
            })
        elif method == "ping":
            self.reply(id_, {})
        elif method == "tools/list":
            self.reply(id_, {"tools": [tool_schema(self.fleet_id, self.director_id)]})
        elif method == "tools/call":
            if params.get("name") != TOOL:
                self.error(id_, -32602, f"unknown tool {params.get('name')!r}; the only tool is {TOOL}")
                return None
            cancel = threading.Event()
            self._calls[id_] = cancel
            t = threading.Thread(target=self._call, args=(id_, params.get("arguments") or {}, cancel),
                                 daemon=True, name=f"wait-{id_}")
            t.start()
            return t
        else:
            self.error(id_, -32601, f"method not found: {method}")
        return None

    # ---- the tool
    def _call(self, id_: Any, args: dict, cancel: threading.Event) -> None:
        try:
            text, is_error = self.wait(args, cancel), False
        except Exception as e:  # noqa: BLE001 - reported to the model, never a crash
            from cafleet.errors import CafleetError

            text = (f"Error: {e.message}" if isinstance(e, CafleetError)
                    else f"Error: {type(e).__name__}: {e}")
            is_error = True
        finally:
            self._calls.pop(id_, None)
        if cancel.is_set() and not is_error and text.startswith("cafleet: canceled"):
            return  # the client canceled: no response
        self.reply(id_, {"content": [{"type": "text", "text": text}], "isError": is_error})

    def wait(self, args: dict, cancel: threading.Event) -> str:
        """Run one wait; returns the digest text. `UsageError` for bad arguments."""
        from cafleet.broker import Broker, check_id
        from cafleet.errors import UsageError

        fleet_id = check_id(str(args.get("fleet_id") or self.fleet_id or ""), "fleet_id")
        director_id = check_id(str(args.get("director_id") or self.director_id or ""), "director_id")
        try:
            timeout = float(args.get("timeout_s", wake.DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            raise UsageError("timeout_s must be a number of seconds") from None
        broker = Broker.open(self.db_path)
        try:
            with self._lock:
                got = self._watches.get((fleet_id, director_id))
                if got is None:
                    got = (wake.Watch(broker, fleet_id, director_id,
                                      stall_seconds=self.stall_seconds), threading.Lock())
                    self._watches[(fleet_id, director_id)] = got
            watch, lock = got
            with lock:
                watch.broker = broker  # sqlite connections stay in the thread that opened them
                digest = watch.wait(timeout, cancel)
            return digest.text()
        finally:
            broker.close()


def director_argv(db_path: str) -> list[str]:
    """How to start codex as a Director (before its own options and the MCP flags):
    `--add-dir` makes the DB directory writable in its `workspace-write` sandbox, and
    `sandbox_workspace_write.network_access=true` lets its commands reach the tmux socket
    (codex 0.171.0's sandbox counts a Unix socket as network), which `fleet create`,
    `member create` and the previews need. Checked by tests/e2e/test_scenario_codex_director.py."""
    import os

    return ["codex", f"--add-dir={os.path.dirname(os.path.abspath(db_path))}",
            "-c", "sandbox_workspace_write.network_access=true"]


def cafleet_command() -> list[str]:
    """How codex should start cafleet: the `cafleet` on PATH (absolute), else this Python
    with `-m cafleet`."""
    import os
    import shutil

    found = shutil.which("cafleet")
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "cafleet"]


def serve(fleet_id: str | None = None, director_id: str | None = None) -> None:
    """Serve on stdin/stdout until stdin closes."""
    Server(fleet_id, director_id).run()


def codex_config(command: list[str], db_path: str, fleet_id: str | None = None,
                 director_id: str | None = None, *, name: str = "cafleet") -> str:
    """The `[mcp_servers.<name>]` block for `~/.codex/config.toml`.

    Keys from codex's MCP config (codex-cli 0.171.0, `config.toml` `mcp_servers`): `command`,
    `args`, `env` (codex starts a server with only a few variables of its own environment,
    so the DB path is passed explicitly), `startup_timeout_sec`, `tool_timeout_sec` (codex
    cancels a tool call after it; the default, 60 s, is shorter than a wait). `command` is
    how to run cafleet: `[abs path]`, or `[python, "-m", "cafleet"]`."""
    args = list(command[1:])
    if fleet_id:
        args += ["--fleet-id", fleet_id]
    args += ["mcp"]
    if director_id:
        args += ["--agent-id", director_id]
    from cafleet.backends import toml_string

    start = " ".join(director_argv(db_path))
    return (f"# cafleet: start the codex Director with the DB directory writable and tmux\n"
            f"# reachable from its sandbox:  {start}\n"
            f"[mcp_servers.{name}]\n"
            f"command = {toml_string(command[0])}\n"
            f"args = [{', '.join(toml_string(a) for a in args)}]\n"
            f"env = {{ CAFLEET_DB = {toml_string(db_path)} }}\n"
            "startup_timeout_sec = 20\n"
            f"tool_timeout_sec = {wake.TOOL_TIMEOUT}\n")


def codex_flags(command: list[str], db_path: str, fleet_id: str | None = None,
                director_id: str | None = None, *, name: str = "cafleet") -> list[str]:
    """The same registration as `codex -c key=value` arguments (one list item each)."""
    out = []
    for line in codex_config(command, db_path, fleet_id, director_id, name=name).splitlines():
        if line.startswith(("#", "[")):
            continue
        key, _, value = line.partition(" = ")
        out += ["-c", f"mcp_servers.{name}.{key}={value}"]
    return out
