"""Smoke tests for the e2e harness: the real claude, offline, in tmux, against fakeapi."""

from __future__ import annotations

import pytest

from fakeapi import Reply, on_prompt, sequence

pytestmark = pytest.mark.e2e


def test_claude_answers_typed_prompt_offline(start_claude, fake_api):
    fake_api.script = on_prompt({"say the magic word": Reply.say("ABRACADABRA-4711")})
    claude = start_claude()
    req = claude.prompt("say the magic word")
    assert req.model  # a main-loop request with Claude Code's tools
    assert "Bash" in req.tool_names
    claude.wait_for("ABRACADABRA-4711", timeout=15)
    claude.exit()


def test_bash_tool_use_round_trip(start_claude, fake_api):
    fake_api.script = on_prompt(
        {"run echo": Reply.bash("echo hi")},
        then=lambda r: Reply.say("DONE: " + r.latest_tool_results()[0].text)
        if r.latest_tool_results() else None,
    )
    claude = start_claude()
    mark = fake_api.mark()
    claude.type("run echo")
    result = fake_api.wait_tool_result(after=mark, timeout=20)
    assert not result.is_error
    assert result.text.strip() == "hi"
    claude.wait_for("DONE: hi", timeout=15)


def test_sequence_script_and_latest_turn_helpers(start_claude, fake_api):
    fake_api.script = sequence(Reply.bash("echo one"), Reply.say("second reply"))
    claude = start_claude()
    first = claude.prompt("go")
    # Claude Code puts role-system messages (environment etc.) in the first turn
    assert any(m.get("role") == "system" for m in first.latest_turn())
    assert "go" in first.latest_user_text()
    r2 = claude.wait_request(lambda r: bool(r.latest_tool_results()), after=first.n + 1)
    assert r2.latest_tool_results()[0].text.strip() == "one"
    claude.wait_for("second reply", timeout=15)
    assert fake_api.search("echo one")
