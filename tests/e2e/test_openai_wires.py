"""The fake model server's OpenAI wires with the real codex and opencode (one model turn each,
with a shell tool call, offline, temp HOME), plus the wire shapes on their own."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest

from claude_env import find_tool
from fakeapi import FakeAPI, Reply, ToolResult, ToolUse
from openai_brains import ChainBrain
from openai_clients import CLIENT_ENV, write_codex_config, write_opencode_config

pytestmark = pytest.mark.e2e


def client_env(home, cwd) -> dict[str, str]:
    """The outer env without client/cafleet settings; HOME a temp dir. PWD is set to ``cwd``:
    opencode 1.18.33 takes its working directory from ``$PWD``, not from the process's cwd."""
    drop = ("OPENAI_", "CODEX_", "OPENCODE", "TMUX", "CAFLEET_", "ANTHROPIC_", "CLAUDE", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(CLIENT_ENV, HOME=str(home), PWD=str(cwd), NO_COLOR="1")
    return env


def shell_then_report(tool: str, arg: str, command: str, **extra):
    """A script: the first main request gets one shell call; its result is echoed back."""
    def script(req):
        results = req.latest_tool_results()
        if results:
            return Reply(text="REPORT " + results[0].text.strip().splitlines()[-1])
        return Reply(tool_uses=[ToolUse(tool, {arg: command, **extra})])
    return script


def post_sse(api, path, body) -> list[str]:
    r = urllib.request.Request(api.url + path, data=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(r, timeout=5) as resp:
        assert resp.headers.get("Content-Type") == "text/event-stream"
        return [c for c in resp.read().decode().split("\n\n") if c.strip()]


def test_responses_stream_shape():
    body = {"model": "m", "stream": True, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}],
        "tools": [{"type": "function", "name": "exec_command", "parameters": {}}]}
    with FakeAPI(lambda r: Reply(text="hi", tool_uses=[ToolUse("exec_command", {"cmd": "ls"},
                                                               id="c1")])) as api:
        chunks = post_sse(api, "/v1/responses", body)
        req = api.snapshot()[0]
    events = [json.loads(c.split("data: ", 1)[1]) for c in chunks]
    assert [e["type"] for e in events] == [
        "response.created", "response.output_item.added", "response.output_text.delta",
        "response.output_item.done", "response.output_item.added", "response.output_item.done",
        "response.completed"]
    call = events[5]["item"]
    assert call["type"] == "function_call" and call["call_id"] == "c1"
    assert json.loads(call["arguments"]) == {"cmd": "ls"}
    assert events[-1]["response"]["usage"]["total_tokens"] == 15
    assert req.kind == "main" and req.tool_names == ["exec_command"]
    assert req.latest_user_text() == "go"


def test_chat_stream_shape_and_tool_results():
    body = {"model": "m", "stream": True, "tools": [{"type": "function",
                                                     "function": {"name": "bash"}}],
            "messages": [{"role": "user", "content": "go"},
                         {"role": "assistant", "tool_calls": [{"id": "t1", "function": {}}]},
                         {"role": "tool", "tool_call_id": "t1", "content": "out"}]}
    with FakeAPI(lambda r: Reply(tool_uses=[ToolUse("bash", {"command": "ls"})])) as api:
        chunks = post_sse(api, "/v1/chat/completions", body)
        req = api.snapshot()[0]
    assert chunks[-1] == "data: [DONE]"
    first = json.loads(chunks[0][len("data: "):])
    assert first["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "bash"
    assert json.loads(chunks[1][len("data: "):])["choices"][0]["finish_reason"] == "tool_calls"
    assert [(t.tool_use_id, t.text) for t in req.latest_tool_results()] == [("t1", "out")]


def test_real_codex_turn_runs_a_shell_call(tmp_path):
    codex = find_tool("codex")
    if codex is None:
        pytest.skip("codex not installed (tests/e2e/install-tools.sh)")
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    marker = work / "made-by-codex"
    with FakeAPI(shell_then_report("exec_command", "cmd", f"touch {marker}; echo codex-ran")) as api:
        write_codex_config(home, api.url)
        p = subprocess.run([codex, "exec", "--skip-git-repo-check", "--sandbox=workspace-write",
                            "make the file"], env=client_env(home, work), cwd=work, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        reqs = api.main_requests()
    assert p.returncode == 0, p.stderr[-2000:]
    assert marker.exists()
    assert "REPORT codex-ran" in p.stdout, p.stdout[-1000:]
    assert reqs[0].path == "/v1/responses" and "exec_command" in reqs[0].tool_names
    assert "make the file" in reqs[0].latest_user_text()
    assert "codex-ran" in reqs[1].latest_tool_results()[0].text


def test_real_opencode_turn_runs_a_shell_call(tmp_path):
    # a relative path: outside a git repository opencode 1.18.33 asks `external_directory`
    # for an absolute path even under its cwd, and `opencode run` auto-rejects asks
    oc = find_tool("opencode")
    if oc is None:
        pytest.skip("opencode not installed (tests/e2e/install-tools.sh)")
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    marker = work / "made-by-opencode"
    with FakeAPI(shell_then_report("bash", "command", f"touch {marker.name}; echo oc-ran",
                                   description="make the file")) as api:
        write_opencode_config(home, api.url)
        p = subprocess.run([oc, "run", "make the file"], env=client_env(home, work), cwd=work,
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        reqs = api.main_requests()
    assert p.returncode == 0, p.stderr[-2000:]
    assert marker.exists(), p.stdout[-1500:]
    assert "REPORT oc-ran" in p.stdout, (p.stdout[-1000:], p.stderr[-1000:])
    assert reqs[0].path == "/v1/chat/completions" and "bash" in reqs[0].tool_names
    assert "oc-ran" in reqs[1].latest_tool_results()[0].text


class _Turn:
    """A request as a brain reads it: the latest tool result (call id, output), or none."""

    def __init__(self, call_id: str | None = None, output: str = ""):
        self.results = [ToolResult(call_id, False, output, {})] if call_id else []

    def latest_tool_results(self):
        return self.results


def test_a_brain_answers_a_retried_request_as_before():
    """codex re-sends a turn whose response stream broke; the scripted brain must not take the
    old tool output for the output of the call it answered with (CI: a Director's `message
    send` was skipped that way and the scenario waited for a report that never came)."""

    class TwoCalls(ChainBrain):
        def on_turn(self, req):
            return self.run()

        def run(self):
            first = yield self.sh("echo one")
            second = yield self.sh("echo two")
            self.note("outputs", (first, second))
            return "done"

    brain = TwoCalls("responses")
    call_one = brain(_Turn())
    assert call_one.tool_uses[0].input == {"cmd": "echo one"}
    call_two = brain(_Turn(call_one.tool_uses[0].id, "one"))
    assert call_two.tool_uses[0].input == {"cmd": "echo two"}
    assert brain(_Turn(call_one.tool_uses[0].id, "one")) is call_two  # the retry: same answer
    assert brain(_Turn(call_two.tool_uses[0].id, "two")) == "done"
    assert brain.notes["outputs"] == ("one", "two")
    assert brain.calls == [("echo one", "one"), ("echo two", "two")]
