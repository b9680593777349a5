"""The OpenAI wire formats of tests/e2e/fakeapi.py: what codex and opencode speak.

:class:`fakeapi.FakeAPI` answers these paths besides Anthropic's ``/v1/messages``; the same
script (``script(request) -> Reply``) drives all three clients, and a :class:`fakeapi.Reply`
(text, then tool calls) is encoded for whichever wire the request came on.

- **Responses API** (``POST …/responses``): codex 0.171.0 with a custom ``model_providers``
  entry (``base_url = "http://127.0.0.1:<port>/v1"``, ``wire_api = "responses"``). The request
  has ``instructions``, ``input`` (items: ``message`` with role user/developer/assistant and
  ``input_text``/``output_text`` parts, ``function_call``, ``function_call_output``,
  ``custom_tool_call(_output)``, ``reasoning``), ``tools`` and ``stream: true``. The stream is
  SSE; the event shapes follow codex's parser (openai/codex
  ``codex-rs/codex-api/src/sse/responses.rs``: it acts on ``response.created``,
  ``response.output_item.added``/``.done`` (a ``ResponseItem``), ``response.output_text.delta``
  and ``response.completed`` ``{id, usage}``; a stream that ends without ``response.completed``
  is an error). A tool call is an output item ``{"type": "function_call", "name", "arguments"
  (a JSON string), "call_id"}`` (``custom_tool_call`` with ``input`` for a tool declared
  ``"type": "custom"``); the next request carries ``function_call_output`` with that call_id.
- **Chat Completions** (``POST …/chat/completions``): opencode 1.18.33 with an
  ``@ai-sdk/openai-compatible`` provider in ``OPENCODE_CONFIG_CONTENT``. ``messages`` (roles
  system/user/assistant/tool), ``tools`` (``{"type": "function", "function": {"name", …}}``),
  ``stream: true``; answered with ``chat.completion.chunk`` SSE lines, tool calls as
  ``delta.tool_calls`` and ``finish_reason: "tool_calls"``, then a usage chunk and
  ``data: [DONE]``. Requests without tools (opencode's session title) are ``"side"``.

Stdlib only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fakeapi import Reply, Request, ToolResult, _text_of  # noqa: F401 (re-exported)


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


# --------------------------------------------------------------------------- Responses API


def _item_text(item: dict[str, Any]) -> str:
    """Text of one Responses input item (messages, tool calls as their arguments, outputs)."""
    t = item.get("type")
    if t == "message" or (t is None and "role" in item):
        c = item.get("content")
        if isinstance(c, str):
            return c
        return "\n".join(p.get("text", "") for p in c or [] if isinstance(p, dict))
    if t in ("function_call",):
        return f"{item.get('name')}({item.get('arguments', '')})"
    if t == "custom_tool_call":
        return f"{item.get('name')}({item.get('input', '')})"
    if t in ("function_call_output", "custom_tool_call_output"):
        out = item.get("output")
        if isinstance(out, dict):  # {"content": str, "success": bool} in some versions
            return str(out.get("content", out))
        if isinstance(out, list):
            return "\n".join(p.get("text", "") for p in out if isinstance(p, dict))
        return "" if out is None else str(out)
    return ""


_ASSISTANT_ITEMS = ("function_call", "custom_tool_call", "local_shell_call", "reasoning")


def _is_assistant_item(item: dict[str, Any]) -> bool:
    return item.get("type") in _ASSISTANT_ITEMS or (
        item.get("type", "message") == "message" and item.get("role") == "assistant")


class ResponsesRequest(Request):
    """A codex request (Responses API). Same helpers as :class:`fakeapi.Request`."""

    wire = "responses"

    @property
    def kind(self) -> str:
        return "main" if self.tool_names else "side"

    @property
    def tool_names(self) -> list[str]:
        out = []
        for t in self.get("tools") or []:
            if isinstance(t, dict):
                out.append(t.get("name") or t.get("type", ""))
        return out

    def tool_type(self, name: str) -> str:
        for t in self.get("tools") or []:
            if isinstance(t, dict) and t.get("name") == name:
                return t.get("type", "function")
        return "function"

    def namespaces(self) -> dict[str, list[str]]:
        """``{namespace: [tool names]}`` of the ``"type": "namespace"`` tools (codex 0.171.0
        offers each MCP server's tools this way: namespace ``mcp__<server>``)."""
        return {t.get("name", ""): [s.get("name", "") for s in t.get("tools") or []]
                for t in self.get("tools") or []
                if isinstance(t, dict) and t.get("type") == "namespace"}

    def namespace_of(self, name: str) -> str | None:
        """The namespace that holds tool ``name`` (given bare or as ``<namespace>__<name>``)."""
        for ns, names in self.namespaces().items():
            if name in names or any(name == f"{ns}__{n}" for n in names):
                return ns
        return None

    @property
    def system_text(self) -> str:
        return str(self.get("instructions") or "")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [i for i in self.get("input") or [] if isinstance(i, dict)]

    def latest_turn(self) -> list[dict[str, Any]]:
        items = self.messages
        for i in range(len(items) - 1, -1, -1):
            if _is_assistant_item(items[i]):
                return items[i + 1:]
        return items

    def latest_turn_text(self) -> str:
        return "\n".join(_item_text(i) for i in self.latest_turn())

    def latest_user_text(self) -> str:
        return "\n".join(_item_text(i) for i in self.latest_turn()
                         if i.get("type", "message") == "message" and i.get("role") == "user")

    def latest_tool_results(self) -> list[ToolResult]:
        return [ToolResult(i.get("call_id", ""), False, _item_text(i), i)
                for i in self.latest_turn()
                if i.get("type") in ("function_call_output", "custom_tool_call_output")]

    def all_text(self) -> str:
        return self.system_text + "\n" + "\n".join(_item_text(i) for i in self.messages)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def responses_events(reply: Reply, req: ResponsesRequest) -> list[bytes]:
    """The SSE stream of one Responses API answer: created, one output item per text / tool
    call (added, deltas, done), completed with usage."""
    resp_id = _new_id("resp_")
    ev = [_sse("response.created", {"type": "response.created", "response": {
        "id": resp_id, "object": "response", "status": "in_progress", "output": []}})]
    idx = 0
    if reply.text:
        item_id = _new_id("msg_")
        ev.append(_sse("response.output_item.added", {
            "type": "response.output_item.added", "output_index": idx, "item": {
                "type": "message", "id": item_id, "role": "assistant", "status": "in_progress",
                "content": []}}))
        ev.append(_sse("response.output_text.delta", {
            "type": "response.output_text.delta", "item_id": item_id, "output_index": idx,
            "content_index": 0, "delta": reply.text}))
        ev.append(_sse("response.output_item.done", {
            "type": "response.output_item.done", "output_index": idx, "item": {
                "type": "message", "id": item_id, "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}]}}))
        idx += 1
    for t in reply.tool_uses:
        if req.tool_type(t.name) == "custom":
            item = {"type": "custom_tool_call", "id": _new_id("ctc_"), "status": "completed",
                    "call_id": t.id, "name": t.name, "input": t.input.get("input", "")}
        else:
            item = {"type": "function_call", "id": _new_id("fc_"), "status": "completed",
                    "call_id": t.id, "name": t.name, "arguments": json.dumps(t.input)}
            ns = req.namespace_of(t.name)
            if ns is not None:  # a tool inside a namespace: bare name plus its namespace
                item["name"] = t.name.removeprefix(ns + "__")
                item["namespace"] = ns
        ev.append(_sse("response.output_item.added", {
            "type": "response.output_item.added", "output_index": idx, "item": item}))
        ev.append(_sse("response.output_item.done", {
            "type": "response.output_item.done", "output_index": idx, "item": item}))
        idx += 1
    ev.append(_sse("response.completed", {"type": "response.completed", "response": {
        "id": resp_id, "object": "response", "status": "completed",
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 15}}}))
    return ev


# --------------------------------------------------------------------------- Chat Completions


class ChatRequest(Request):
    """An opencode request (Chat Completions). Same helpers as :class:`fakeapi.Request`."""

    wire = "chat"

    @property
    def kind(self) -> str:
        return "main" if self.tool_names else "side"

    @property
    def tool_names(self) -> list[str]:
        return [(t.get("function") or {}).get("name", "") for t in self.get("tools") or []
                if isinstance(t, dict)]

    @property
    def system_text(self) -> str:
        return "\n".join(_text_of(m.get("content")) for m in self.get("messages") or []
                         if m.get("role") == "system")

    def latest_tool_results(self) -> list[ToolResult]:
        return [ToolResult(m.get("tool_call_id", ""), False, _text_of(m.get("content")), m)
                for m in self.latest_turn() if m.get("role") == "tool"]

    def all_text(self) -> str:
        out = []
        for m in self.messages:
            out.append(_text_of(m.get("content")))
            for c in m.get("tool_calls") or []:
                out.append(json.dumps(c.get("function", {})))
        return "\n".join(out)


def chat_events(reply: Reply, req: ChatRequest) -> list[bytes]:
    """The SSE stream of one chat completion: ``data: {chunk}`` lines, then ``[DONE]``."""
    base = {"id": _new_id("chatcmpl-"), "object": "chat.completion.chunk", "created": 0,
            "model": req.get("model") or "fake"}

    def chunk(choices, **kw) -> bytes:
        return f"data: {json.dumps({**base, 'choices': choices, **kw})}\n\n".encode()

    ev = []
    if reply.text:
        ev.append(chunk([{"index": 0, "delta": {"role": "assistant", "content": reply.text},
                          "finish_reason": None}]))
    if reply.tool_uses:
        calls = [{"index": i, "id": t.id, "type": "function",
                  "function": {"name": t.name, "arguments": json.dumps(t.input)}}
                 for i, t in enumerate(reply.tool_uses)]
        ev.append(chunk([{"index": 0, "delta": {"role": "assistant", "tool_calls": calls},
                          "finish_reason": None}]))
        ev.append(chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]))
    else:
        ev.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    ev.append(chunk([], usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}))
    ev.append(b"data: [DONE]\n\n")
    return ev


def request_for(path: str) -> type[Request] | None:
    """The request class for an OpenAI path, or None when the path is not one of them."""
    p = path.rstrip("/")
    if p.endswith("/responses"):
        return ResponsesRequest
    if p.endswith("/chat/completions"):
        return ChatRequest
    return None


def events_for(reply: Reply, req: Request) -> list[bytes]:
    if isinstance(req, ResponsesRequest):
        return responses_events(reply, req)
    return chat_events(reply, req)  # type: ignore[arg-type]
