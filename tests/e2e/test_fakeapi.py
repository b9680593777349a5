"""The fake Messages API on its own (no claude needed): wire format and helpers."""

from __future__ import annotations

import json
import urllib.request

import pytest

from fakeapi import FakeAPI, Reply, on_prompt, sequence

pytestmark = pytest.mark.e2e


def post(api, path, body):
    req = urllib.request.Request(api.url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers.get("Content-Type"), resp.read().decode()


def sse(text):
    events = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


def test_streaming_text_and_tool_use():
    with FakeAPI(lambda r: Reply.bash("echo hi", text="running")) as api:
        ctype, body = post(api, "/v1/messages?beta=true",
                           {"model": "m", "stream": True, "tools": TOOLS,
                            "messages": [{"role": "user", "content": "go"}]})
    assert ctype == "text/event-stream"
    ev = sse(body)
    assert [e for e, _ in ev] == ["message_start", "content_block_start", "content_block_delta",
                                  "content_block_stop", "content_block_start",
                                  "content_block_delta", "content_block_delta",
                                  "content_block_stop", "message_delta", "message_stop"]
    tool_json = "".join(d["delta"]["partial_json"] for e, d in ev
                        if e == "content_block_delta" and d["index"] == 1)
    assert json.loads(tool_json)["command"] == "echo hi"
    assert ev[4][1]["content_block"]["name"] == "Bash"
    assert ev[-2][1]["delta"]["stop_reason"] == "tool_use"
    (r,) = api.requests
    assert r.kind == "main" and r.query == "beta=true"


def test_non_streaming_count_tokens_and_side_default():
    with FakeAPI(lambda r: "scripted") as api:
        _, body = post(api, "/v1/messages", {"model": "m", "tools": TOOLS,
                                             "messages": [{"role": "user", "content": "x"}]})
        msg = json.loads(body)
        assert msg["content"] == [{"type": "text", "text": "scripted"}]
        assert msg["stop_reason"] == "end_turn"
        _, body = post(api, "/v1/messages", {"model": "haiku", "messages": []})
        assert json.loads(body)["content"][0]["text"] == "OK."  # side request: default
        _, body = post(api, "/v1/messages/count_tokens?beta=true", {"messages": []})
        assert json.loads(body)["input_tokens"] >= 1
        assert [r.kind for r in api.requests] == ["main", "side", "count_tokens"]


def test_request_helpers_and_scripts():
    body = {"model": "m", "tools": TOOLS, "messages": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                           "input": {"command": "false"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "is_error": True,
                                      "content": [{"type": "text", "text": "boom"}]},
                                     {"type": "text", "text": "and more"}]},
        {"role": "system", "content": "SessionStart hook additional context: hi"}]}
    seq = sequence("a", Reply.say("b"))
    with FakeAPI(seq) as api:
        for _ in range(3):
            post(api, "/v1/messages", body)
        r = api.requests[0]
        (tr,) = r.latest_tool_results()
        assert (tr.tool_use_id, tr.is_error, tr.text) == ("t1", True, "boom")
        assert len(r.latest_turn()) == 2 and "additional context: hi" in r.latest_turn_text()
        assert r.latest_user_text() == "and more"
        assert api.search("additional context") and not api.search("nowhere")
        got = [json.loads(post(api, "/v1/messages", body)[1])["content"][0]["text"]
               for _ in range(1)]
        assert got == ["OK."]  # sequence exhausted after 3 → default
    assert on_prompt({"more": "yes"})(r) is None  # latest turn has a tool_result


def test_script_error_is_recorded():
    def bad(req):
        raise ValueError("nope")

    with FakeAPI(bad) as api:
        _, body = post(api, "/v1/messages", {"model": "m", "tools": TOOLS, "messages": []})
    assert "fakeapi script error: ValueError: nope" in json.loads(body)["content"][0]["text"]
    assert api.errors and "nope" in api.errors[0]
