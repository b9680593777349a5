"""A scripted model server on 127.0.0.1 for driving the real Claude Code, codex and opencode.

Anthropic's Messages API is here; the OpenAI wires codex 0.171.0 (Responses API) and
opencode 1.18.33 (Chat Completions) use are in tests/e2e/fakeopenai.py and answered by the
same server and the same scripts (a :class:`Reply` is encoded for the wire it came on).

Stdlib only (http.server + threading). Start one per test::

    api = FakeAPI(script).start()      # port 0 -> api.port / api.url
    ...                                # ANTHROPIC_BASE_URL=api.url
    api.stop()

Every request is recorded (``api.requests``). ``POST /v1/messages`` (Claude Code adds
``?beta=true``) is answered as SSE when the body says ``"stream": true`` and as one JSON
message otherwise; ``POST /v1/messages/count_tokens`` gets a token estimate.

Request kinds (observed with Claude Code 2.1.330 and 2.1.332, see ``Request.kind``):

- ``"main"``: the agent loop (interactive and ``-p``): a non-empty ``tools`` list (Agent,
  AskUserQuestion, Bash, Edit, Read, Skill, ToolSearch, Write, …), ``stream: true``, system
  blocks ``x-anthropic-billing-header: …`` then ``You are Claude Code, Anthropic's official
  CLI for Claude.``, ``thinking: {"type": "adaptive"}``, model ``claude-opus-5-5`` unless
  ``--model``. ``messages`` holds role-``system`` messages (environment, skills list, hook
  context) after the user's text. The script sees these.
- ``"side"``: a messages request with no tools (session title, summaries, …). None were
  seen with 2.1.330 and 2.1.332 in interactive or ``-p`` use, with or without
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, nor during Bash permission checks (no
  prefix-detection model call). They get ``side_script`` if set, else the default reply.
- ``"count_tokens"``: token counting; answered by the server, never scripted.

The script is ``script(request) -> Reply | None``; ``request`` is a :class:`Request` (a ``dict``
of the request JSON with helper methods). ``None`` means "not handled": the default reply
(``Reply(text=default_text)``) is sent. An exception in a script is recorded in
``api.errors`` and answered with a text reply naming it, so a test fails with a reason.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

DEFAULT_TEXT = "OK."


# --------------------------------------------------------------------------- replies


def new_tool_use_id() -> str:
    return "toolu_01" + uuid.uuid4().hex[:22]


@dataclass
class ToolUse:
    name: str
    input: dict[str, Any]
    id: str = field(default_factory=new_tool_use_id)


@dataclass
class Reply:
    """What the fake model answers: optional text, then zero or more tool_use blocks."""

    text: str | None = None
    tool_uses: list[ToolUse] = field(default_factory=list)
    stop_reason: str | None = None  # default: "tool_use" if tool_uses else "end_turn"

    @classmethod
    def say(cls, text: str) -> "Reply":
        return cls(text=text)

    @classmethod
    def tool(cls, name: str, text: str | None = None, **input: Any) -> "Reply":
        return cls(text=text, tool_uses=[ToolUse(name, dict(input))])

    @classmethod
    def bash(cls, command: str, description: str = "Run a command", text: str | None = None,
             **extra: Any) -> "Reply":
        return cls(text=text,
                   tool_uses=[ToolUse("Bash", {"command": command, "description": description,
                                               **extra})])

    def blocks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.text:
            out.append({"type": "text", "text": self.text})
        for t in self.tool_uses:
            out.append({"type": "tool_use", "id": t.id, "name": t.name, "input": t.input})
        return out

    def final_stop_reason(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_uses else "end_turn")


Script = Callable[["Request"], "Reply | str | None"]


def sequence(*steps: "Reply | str | Callable[[Request], Reply | str | None]") -> Script:
    """A script that answers the Nth main request with the Nth step (then: default reply).

    A step may be a Reply, a str (text reply) or a callable taking the request.
    """
    lock = threading.Lock()
    queue = list(steps)

    def script(req: "Request"):
        with lock:
            if not queue:
                return None
            step = queue.pop(0)
        return step(req) if callable(step) else step

    return script


def on_prompt(table: dict[str, "Reply | str | Callable[[Request], Reply | str | None]"],
              then: Script | None = None) -> Script:
    """A script keyed on the latest user text: the first key found in the latest turn's text
    answers (only when the latest turn is a typed prompt, not a tool_result); otherwise
    ``then`` (if given) is asked.
    """

    def script(req: "Request"):
        if not req.latest_tool_results():
            text = req.latest_turn_text()
            for key, step in table.items():
                if key in text:
                    return step(req) if callable(step) else step
        return then(req) if then else None

    return script


# --------------------------------------------------------------------------- requests


@dataclass
class ToolResult:
    tool_use_id: str
    is_error: bool
    text: str
    raw: dict[str, Any]


def _text_of(content: Any) -> str:
    """Flatten a message content / tool_result content / system field to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("type") == "text":
            return content.get("text", "")
        if content.get("type") == "tool_result":
            return _text_of(content.get("content"))
        if content.get("type") == "tool_use":
            return json.dumps(content.get("input", {}))
        return _text_of(content.get("content")) if "content" in content else ""
    if isinstance(content, list):
        return "\n".join(t for t in (_text_of(c) for c in content) if t)
    return str(content)


class Request(dict):
    """One recorded request: the JSON body (this dict) plus ``path``, ``query``, ``t``, ``n``."""

    def __init__(self, body: dict[str, Any], path: str, query: str, headers: dict[str, str],
                 n: int):
        super().__init__(body)
        self.path = path
        self.query = query
        self.headers = headers
        self.t = time.monotonic()
        self.n = n

    # ---- classification
    @property
    def tool_names(self) -> list[str]:
        return [t.get("name", "") for t in (self.get("tools") or []) if isinstance(t, dict)]

    @property
    def system_text(self) -> str:
        return _text_of(self.get("system"))

    @property
    def model(self) -> str:
        return self.get("model", "")

    @property
    def kind(self) -> str:
        if self.path.endswith("/count_tokens"):
            return "count_tokens"
        if self.path.endswith("/messages"):
            return "main" if self.tool_names else "side"
        return "other"

    @property
    def is_main(self) -> bool:
        return self.kind == "main"

    # ---- content helpers
    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.get("messages") or [])

    def latest_turn(self) -> list[dict[str, Any]]:
        """Messages after the last assistant message (user and role-system messages)."""
        msgs = self.messages
        for i in range(len(msgs) - 1, -1, -1):
            if msgs[i].get("role") == "assistant":
                return msgs[i + 1:]
        return msgs

    def latest_turn_text(self) -> str:
        return "\n".join(_text_of(m.get("content")) for m in self.latest_turn())

    def latest_user_text(self) -> str:
        """Text blocks (not tool results) of the latest turn's user messages."""
        out = []
        for m in self.latest_turn():
            if m.get("role") != "user":
                continue
            c = m.get("content")
            if isinstance(c, str):
                out.append(c)
            elif isinstance(c, list):
                out.extend(b.get("text", "") for b in c
                           if isinstance(b, dict) and b.get("type") == "text")
        return "\n".join(out)

    def latest_tool_results(self) -> list[ToolResult]:
        out = []
        for m in self.latest_turn():
            c = m.get("content")
            if not isinstance(c, list):
                continue
            for b in c:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    out.append(ToolResult(b.get("tool_use_id", ""), bool(b.get("is_error")),
                                          _text_of(b.get("content")), b))
        return out

    def all_text(self) -> str:
        """System prompt + every message's text (tool inputs as JSON)."""
        return self.system_text + "\n" + "\n".join(_text_of(m.get("content"))
                                                   for m in self.messages)

    def summary(self) -> str:
        last = self.latest_turn_text().replace("\n", " ⏎ ")
        return (f"#{self.n} {self.kind} model={self.model} tools={len(self.tool_names)} "
                f"latest={last[-200:]!r}")


# --------------------------------------------------------------------------- wire format


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def sse_events(reply: Reply, model: str, input_tokens: int = 10) -> list[bytes]:
    msg_id = "msg_01" + uuid.uuid4().hex[:22]
    ev = [_sse("message_start", {"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})]
    for i, block in enumerate(reply.blocks()):
        if block["type"] == "text":
            ev.append(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            ev.append(_sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "text_delta",
                                                             "text": block["text"]}}))
        else:
            ev.append(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "tool_use",
                                                                     "id": block["id"],
                                                                     "name": block["name"],
                                                                     "input": {}}}))
            js = json.dumps(block["input"])
            # split the JSON in two deltas, as the real API streams it in pieces
            cut = len(js) // 2
            for part in (js[:cut], js[cut:]):
                ev.append(_sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "input_json_delta",
                                                                 "partial_json": part}}))
        ev.append(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
    ev.append(_sse("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": reply.final_stop_reason(),
                                               "stop_sequence": None},
                                     "usage": {"output_tokens": 5}}))
    ev.append(_sse("message_stop", {"type": "message_stop"}))
    return ev


def message_json(reply: Reply, model: str, input_tokens: int = 10) -> dict[str, Any]:
    return {"id": "msg_01" + uuid.uuid4().hex[:22], "type": "message", "role": "assistant",
            "model": model, "content": reply.blocks(), "stop_reason": reply.final_stop_reason(),
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 5,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


# --------------------------------------------------------------------------- server


class FakeAPI:
    def __init__(self, script: Script | None = None, *, side_script: Script | None = None,
                 default_text: str = DEFAULT_TEXT, host: str = "127.0.0.1", port: int = 0):
        self.script = script
        self.side_script = side_script
        self.default_text = default_text
        self.requests: list[Request] = []
        self.other: list[tuple[str, str]] = []  # (method, path) of requests to unknown paths
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> "FakeAPI":
        api = self

        class Handler(_Handler):
            owner = api

        self._httpd = ThreadingHTTPServer((self._host, self._port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fakeapi",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeAPI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "FakeAPI not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- recorded requests
    def _record(self, req: Request) -> None:
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

    def _next_n(self) -> int:
        with self._cond:
            return len(self.requests)

    def snapshot(self) -> list[Request]:
        with self._cond:
            return list(self.requests)

    def main_requests(self) -> list[Request]:
        return [r for r in self.snapshot() if r.is_main]

    def side_requests(self) -> list[Request]:
        return [r for r in self.snapshot() if r.kind == "side"]

    def last_main(self) -> Request | None:
        m = self.main_requests()
        return m[-1] if m else None

    def mark(self) -> int:
        """Index to pass as ``after=`` to :meth:`wait_request` to only see later requests."""
        with self._cond:
            return len(self.requests)

    def wait_request(self, pred: Callable[[Request], bool] = lambda r: True, *,
                     timeout: float = 30.0, after: int = 0, kind: str | None = "main",
                     what: str = "a matching request") -> Request:
        """The first recorded request (index >= after, of ``kind`` unless None) with pred true.

        Raises AssertionError (with a summary of what was seen) on timeout.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.requests[after:]:
                    if (kind is None or r.kind == kind) and pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        seen = "\n  ".join(r.summary() for r in self.snapshot()[after:]) or "(none)"
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; "
                             f"requests since #{after}:\n  {seen}\nerrors: {self.errors}")

    def wait_tool_result(self, *, timeout: float = 30.0, after: int = 0) -> ToolResult:
        """Wait for a main request whose latest turn carries a tool_result; return the first."""
        r = self.wait_request(lambda r: bool(r.latest_tool_results()), timeout=timeout,
                              after=after, what="a tool_result")
        return r.latest_tool_results()[0]

    def all_text(self) -> str:
        return "\n".join(r.all_text() for r in self.snapshot())

    def search(self, needle: str) -> list[Request]:
        return [r for r in self.snapshot() if needle in r.all_text()]

    # ---- answering
    def answer(self, req: Request) -> Reply:
        fn = self.script if req.is_main else self.side_script
        reply: Reply | str | None = None
        if fn is not None:
            try:
                reply = fn(req)
            except Exception as e:  # noqa: BLE001 - reported to the test via errors
                self.errors.append(f"request #{req.n}: {type(e).__name__}: {e}")
                reply = Reply(text=f"fakeapi script error: {type(e).__name__}: {e}")
        if reply is None:
            reply = Reply(text=self.default_text)
        elif isinstance(reply, str):
            reply = Reply(text=reply)
        return reply


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # silence
        pass

    def _send_json(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        return body if isinstance(body, dict) else {"_body": body}

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.owner.other.append(("GET", self.path))
        self._send_json(404, {"type": "error", "error": {"type": "not_found_error",
                                                         "message": "fakeapi: no such path"}})

    def do_POST(self):
        api = self.owner
        parts = urlsplit(self.path)
        body = self._read_body()
        if parts.path.rstrip("/").endswith("/v1/messages/count_tokens"):
            req = Request(body, parts.path, parts.query, dict(self.headers), api._next_n())
            api._record(req)
            est = max(1, len(json.dumps(body)) // 4)
            self._send_json(200, {"input_tokens": est})
            return
        import fakeopenai  # the OpenAI wires (codex, opencode); imports this module

        oa = fakeopenai.request_for(parts.path)
        if oa is not None:
            req = oa(body, parts.path.rstrip("/"), parts.query, dict(self.headers),
                     api._next_n())
            api._record(req)
            self._stream(fakeopenai.events_for(api.answer(req), req))
            return
        if not parts.path.rstrip("/").endswith("/v1/messages"):
            api.other.append(("POST", self.path))
            self._send_json(404, {"type": "error", "error": {"type": "not_found_error",
                                                             "message": "fakeapi: no such path"}})
            return
        req = Request(body, parts.path.rstrip("/"), parts.query, dict(self.headers),
                      api._next_n())
        api._record(req)
        reply = api.answer(req)
        model = body.get("model") or "claude-fake"
        if body.get("stream"):
            self._stream(sse_events(reply, model))
        else:
            self._send_json(200, message_json(reply, model))

    def _stream(self, events: list[bytes]) -> None:
        """Send `events` as one chunked text/event-stream response."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
        self.end_headers()
        try:
            for chunk in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def serve_forever(script: Script | None = None, port: int = 0) -> None:  # pragma: no cover
    """``python -m tests.e2e.fakeapi`` style manual use: print the URL and every request."""

    def logging_script(req: Request):
        print(req.summary(), flush=True)
        return script(req) if script else None

    api = FakeAPI(logging_script, side_script=logging_script, port=port).start()
    print(api.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":  # pragma: no cover
    import sys

    serve_forever(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
