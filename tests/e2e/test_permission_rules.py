"""Facts about Claude Code permission-rule matching, checked against the real client.

A stub ``cafleet`` on PATH logs its argv; the fake model runs each command as a Bash
tool_use under ``--permission-mode dontAsk`` with rules from ``--settings '<json>'`` (or
``.claude/settings.local.json``). "Allowed" means the stub actually ran.
"""

from __future__ import annotations

import json
import time

import pytest

from permcases import CommandRunner, env_for, make_stub, read_log, table

pytestmark = pytest.mark.e2e

F = "11111111-1111-4111-8111-111111111111"
A = "22222222-2222-4222-8222-222222222222"
B = "33333333-3333-4333-8333-333333333333"
T = "44444444-4444-4444-8444-444444444444"

POLL = f"cafleet --fleet-id {F} message poll --agent-id {A}"
ACK = f"cafleet --fleet-id {F} message ack --agent-id {A} --task-id"
SEND = f"cafleet --fleet-id {F} message send --agent-id {A} --to {B} --text"
SHOW = f"cafleet --fleet-id {F} message show --agent-id {A} --task-id"


@pytest.fixture
def stub_bin(tmp_path):
    d = tmp_path / "stubbin"
    make_stub(d)
    return d


@pytest.fixture
def e2e_path_prepend(stub_bin):
    return [str(stub_bin)]


def run_cases(start_claude, fake_api, tmp_path, commands, *claude_args, timeout=60):
    log = tmp_path / "stub.log"
    runner = CommandRunner(commands, log)
    fake_api.script = runner
    claude = start_claude(*claude_args, env={**env_for(log), "T": "from-shell-var"})
    claude.type("RUN-CASES")
    claude.wait_for("ALL-CASES-DONE", timeout=timeout)
    assert len(runner.outcomes) == len(commands), table(runner.outcomes)
    # the decisions are made locally: no side request (e.g. a prefix-detection model call)
    assert [r.kind for r in fake_api.snapshot()] == ["main"] * len(fake_api.snapshot())
    print("\n" + table(runner.outcomes))
    return {o.command: o for o in runner.outcomes}, claude


def settings_arg(allow, ask=(), deny=()):
    perms = {"allow": list(allow)}
    if ask:
        perms["ask"] = list(ask)
    if deny:
        perms["deny"] = list(deny)
    return json.dumps({"permissions": perms})


def matrix(tmp_path, syntax: str):
    """(rules, [(command, expected_to_run, pwned_file_or_None)])."""
    star = ":*" if syntax == "colon" else " *"
    rules = [POLL, f"{ACK}{star}", f"{SEND}{star}"]
    p = lambda tag: tmp_path / f"pwned-{tag}"  # noqa: E731
    cases = [
        (POLL, True, None),
        (f"{POLL} --limit 5", False, None),
        (f"{ACK} {T}", True, None),
        (f"{ACK} {T} --task-id {T}", True, None),
        (f"{ACK} {T} && touch {p('and')}", False, p("and")),
        (f"{ACK} $T", False, None),
        (f'{ACK} "$(touch {p("subst")})"', False, p("subst")),
        (f"{ACK} {T}; touch {p('semi')}", False, p("semi")),
        (f"{ACK} {T} | touch {p('pipe')}", False, p("pipe")),
        (f"{ACK} {T} || touch {p('or')}", False, p("or")),
        (f"{ACK} `touch {p('tick')}`", False, p("tick")),
        (f"{ACK} {T}\ntouch {p('nl')}", False, p("nl")),
        (f"{ACK} {T} > {p('redir')}", False, p("redir")),
        (f'{SEND} "hello world"', True, None),
        (f"{SEND} 'hello world'", True, None),
        (f"{SEND} hello", True, None),
        (f"{SHOW} {T}", False, None),  # no rule at all
        # a chained read-only command is allowed: each part is checked on its own
        (f"{ACK} {T} && ls", True, None),
        (f'{SEND} "x" && ls', True, None),
        (f"{ACK}={T}", False, None),  # '--task-id=' is not the prefix '--task-id '
        (f"CAFLEET_DB=/tmp/x {POLL}", False, None),  # env-assignment prefix defeats the rule
        # quoting inside the free-text argument
        (f"{SEND} 'literal $(touch {p('sq')}) dollar'", True, p("sq")),  # single quotes: inert
        (f'{SEND} "cost is $5"', False, None),  # a $ expansion in double quotes is denied
        (f'{SEND} "line one\nline two"', True, None),  # a newline inside quotes is fine
        (f'{SEND} "it\'s fine"', True, None),
        (f"{SEND} \"$(cat <<'EOF'\nheredoc body\nEOF\n)\"", True, None),  # quoted heredoc
        (f'{SEND} "a # b"', True, None),
        (f"{SEND} hello   world", True, None),
    ]
    return [POLL if r == POLL else f"Bash({r})" for r in rules], cases


@pytest.mark.parametrize("syntax", ["colon", "space-star"])
def test_rule_matching_dontask_settings_json(start_claude, fake_api, tmp_path, syntax):
    rules, cases = matrix(tmp_path, syntax)
    rules = [r if r.startswith("Bash(") else f"Bash({r})" for r in rules]
    got, _ = run_cases(start_claude, fake_api, tmp_path, [c for c, _, _ in cases],
                       "--permission-mode", "dontAsk", "--settings", settings_arg(rules))
    problems = []
    for cmd, expected, side in cases:
        o = got[cmd]
        if expected is not None and o.ran != expected:
            problems.append(f"{'ran' if o.ran else 'denied'} (expected "
                            f"{'run' if expected else 'deny'}): {cmd!r} -> {o.text[:120]!r}")
        if side is not None and side.exists():
            problems.append(f"side effect {side.name} happened: {cmd!r}")
    assert not problems, "\n".join(problems)
    # what the command actually received
    heredoc = next(c for c, _, _ in cases if "heredoc body" in c)
    assert got[heredoc].stub_argv[0][-1] == "heredoc body"
    literal = next(c for c, _, _ in cases if "literal $(" in c)
    assert got[literal].stub_argv[0][-1].startswith("literal $(touch ")
    # the denial as the model sees it
    denied = got[f"{POLL} --limit 5"]
    assert denied.is_error and "don't ask mode" in denied.text


def test_rules_from_settings_local_json(start_claude, fake_api, tmp_path, project_dir):
    (project_dir / ".claude").mkdir()
    (project_dir / ".claude" / "settings.local.json").write_text(settings_arg(
        [f"Bash({POLL})", f"Bash({ACK}:*)", f"Bash({SEND} *)"]))
    pw = tmp_path / "pwned-local"
    cases = {POLL: True, f"{POLL} --limit 5": False, f"{ACK} {T}": True,
             f"{ACK} {T} && touch {pw}": False, f"{ACK} $T": False,
             f'{SEND} "hello world"': True}
    got, _ = run_cases(start_claude, fake_api, tmp_path, list(cases),
                       "--permission-mode", "dontAsk")
    assert {c: got[c].ran for c in cases} == cases
    assert not pw.exists()


EXEC = f"cafleet --fleet-id {F} member exec --agent-id {A} --member-id {B}"


def test_ask_rule_prompts_in_manual_mode(start_claude, fake_api, tmp_path):
    log = tmp_path / "stub.log"
    runner = CommandRunner([POLL, f'{EXEC} "git status"'], log)
    fake_api.script = runner
    claude = start_claude("--settings", settings_arg([f"Bash({POLL})"], ask=[f"Bash({EXEC}:*)"]),
                          env=env_for(log))
    claude.type("RUN-CASES")
    cap = claude.wait_for("Do you want to proceed?", timeout=20)
    print("\n" + "\n".join(line for line in cap.splitlines() if line.strip())[-1500:])
    assert len(runner.outcomes) == 1 and runner.outcomes[0].ran  # the allowed one, no prompt
    assert "member exec" in cap
    assert "says to ask" in cap and "1. Yes" in cap and "2. No" in cap
    assert len(read_log(log)) == 1  # nothing ran while asking
    time.sleep(1.2)  # keys within ~1 s of a dialog opening are dropped
    claude.keys("1")  # approve
    claude.wait_for("ALL-CASES-DONE", timeout=20)
    assert len(runner.outcomes) == 2 and runner.outcomes[1].ran


def test_ask_rule_denied_in_dontask_mode(start_claude, fake_api, tmp_path):
    cmd = f'{EXEC} "git status"'
    got, claude = run_cases(start_claude, fake_api, tmp_path, [POLL, cmd],
                            "--permission-mode", "dontAsk",
                            "--settings", settings_arg([f"Bash({POLL})"], ask=[f"Bash({EXEC}:*)"]))
    assert got[POLL].ran
    assert not got[cmd].ran and got[cmd].is_error
    assert "Do you want to proceed?" not in claude.capture()
