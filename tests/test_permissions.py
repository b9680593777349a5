"""Permission rules: generated from the one command table, matched by our model of Claude
Code's Bash rule matcher, merged into settings files safely.

Commands taught by the skills are read from the skills themselves (see `skill_commands`).
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from cafleet import permissions as p
from cafleet.errors import CafleetError, UsageError
from test_skills import fill, skill_commands  # tests/ is on sys.path (rootdir conftest)

F = "11111111-1111-4111-8111-111111111111"
D = "22222222-2222-4222-8222-222222222222"
M = "33333333-3333-4333-8333-333333333333"
T = "44444444-4444-4444-8444-444444444444"
OTHER = "55555555-5555-4555-8555-555555555555"

IDS = {"fleet": F, "director": D, "member": M, "task": T}


def role_rules(role: str) -> dict[str, list[str]]:
    return p.director_rules(F, D) if role == p.DIRECTOR else p.member_rules(F, M, D)


def taught(role: str):
    """(source, unfilled, filled) for each command the skills teach to `role`, ruled ones only."""
    out = []
    for cmd in skill_commands():
        if cmd.role != role or cmd.is_help:
            continue
        row = cmd.template_row()
        if row is None or row.kind == p.NONE:
            continue
        out.append((cmd, fill(cmd.text, IDS, role)))
    return out


# ------------------------------------------------------------------ the rule table


def test_templates_use_only_known_kinds_and_roles():
    for row in p.COMMANDS:
        assert row.role in p.ROLES and row.kind in (p.ALLOW, p.ASK, p.NONE)
        assert row.template.startswith("cafleet ")


@pytest.mark.parametrize("role", p.ROLES)
def test_every_taught_command_matches_a_rule_of_its_kind(role):
    rules = role_rules(role)
    seen = taught(role)
    assert seen, f"no {role} commands found in the skills"
    for cmd, filled in seen:
        hit = p.matching_rule(rules, filled)
        assert hit is not None, f"{cmd.where}: no {role} rule matches {filled!r}"
        assert hit[0] == cmd.template_row().kind, f"{cmd.where}: {filled!r} is {hit[0]}, table says {cmd.template_row().kind}"


def test_director_rule_table_shape():
    rules = p.director_rules(F, D)
    assert f"Bash(cafleet --fleet-id {F} member list)" in rules["allow"]
    assert f"Bash(cafleet --fleet-id {F} --json member list)" in rules["allow"]
    assert f"Bash(cafleet --fleet-id {F} message poll --agent-id {D})" in rules["allow"]
    assert f"Bash(cafleet --fleet-id {F} --json message poll --agent-id {D})" in rules["allow"]
    suffix = p.PREFIX_SUFFIX
    assert f"Bash(cafleet --fleet-id {F} message ack --agent-id {D} --task-id{suffix})" in rules["allow"]
    assert f"Bash(cafleet --fleet-id {F} message send --agent-id {D} --to{suffix})" in rules["allow"]
    assert f"Bash(cafleet --fleet-id {F} member capture --member-id{suffix})" in rules["allow"]
    assert f"Bash(cafleet fleet delete {F})" in rules["ask"]
    for rules_list in rules.values():
        assert len(rules_list) == len(set(rules_list))


@pytest.mark.parametrize(
    "command",
    [
        f"cafleet --fleet-id {F} member exec --member-id {M} \"ls\"",
        f"cafleet --fleet-id {F} member send-input --member-id {M} --choice 1",
        f"cafleet --fleet-id {F} member send-input --member-id {M} --freetext \"yes\"",
        f"cafleet --fleet-id {F} member delete --member-id {M} --force",
        f"cafleet --fleet-id {F} member delete --member-id {M}",
        f"cafleet --fleet-id {F} member create --name a --description \"b\" --coding-agent claude -- \"c\"",
        f"cafleet fleet delete {F}",
    ],
)
@pytest.mark.parametrize("with_members", [False, True])
def test_pane_acting_commands_are_never_allowed(command, with_members):
    rules = p.director_rules(F, D, [M] if with_members else [])
    assert not any(p.matches(r, command) for r in rules["allow"]), command
    assert any(p.matches(r, command) for r in rules["ask"]), command
    assert p.matching_rule(rules, command)[0] == p.ASK


def test_member_rules_hold_nothing_of_the_directors():
    rules = p.member_rules(F, M, D)
    assert rules["ask"] == []
    for rule in rules["allow"]:
        assert f"--agent-id {M}" in rule
        assert " member " not in rule and " fleet " not in rule and D not in rule.split("--agent-id")[1].split()[0]
    # the member cannot act as the Director nor drive panes
    assert p.matching_rule(rules, f"cafleet --fleet-id {F} message poll --agent-id {D}") is None
    assert p.matching_rule(rules, f"cafleet --fleet-id {F} member list") is None
    assert p.matching_rule(rules, f"cafleet --fleet-id {F} member ping --member-id {M}") is None
    assert p.matching_rule(rules, f'cafleet --fleet-id {F} message send --agent-id {M} --to {OTHER} --text "x"') is None
    assert p.matching_rule(rules, f'cafleet --fleet-id {F} message send --agent-id {M} --to {D} --text "x"')


def test_member_ids_narrow_member_targeting_rules():
    rules = p.director_rules(F, D, [M])
    assert p.matching_rule(rules, f"cafleet --fleet-id {F} member ping --member-id {M}")[0] == p.ALLOW
    assert p.matching_rule(rules, f"cafleet --fleet-id {F} member capture --member-id {M} --lines 120")[0] == p.ALLOW
    assert p.matching_rule(rules, f"cafleet --fleet-id {F} member ping --member-id {OTHER}") is None
    assert p.matching_rule(rules, f"cafleet --fleet-id {F} member capture --member-id {OTHER}") is None


@pytest.mark.parametrize("bad", ["not-a-uuid", "AAAAAAAA-1111-4111-8111-111111111111", f"{F} && x", "", "$FLEET"])
def test_ids_must_be_canonical_uuids(bad):
    with pytest.raises(UsageError):
        p.director_rules(bad, D)
    with pytest.raises(UsageError):
        p.member_rules(F, bad, D)


def test_rules_for_dispatches_on_role():
    assert p.rules_for("director", F, D) == p.director_rules(F, D)
    assert p.rules_for("member", F, M, director_id=D) == p.member_rules(F, M, D)
    with pytest.raises(UsageError):
        p.rules_for("member", F, M)
    with pytest.raises(UsageError):
        p.rules_for("root", F, D)


# ------------------------------------------------------------------ variants that must not match


def _variants(command: str, role: str):
    """Tampered forms of a taught command that no rule of `role` may approve."""
    own = D if role == p.DIRECTOR else M
    yield "other fleet id", command.replace(F, OTHER)
    yield "other agent id", command.replace(f"--agent-id {own}", f"--agent-id {OTHER}")
    yield "&& touch x", command + " && touch x"
    yield "; x", command + "; x"
    yield "| sh", command + " | sh"
    yield "& x", command + " & x"
    yield "|| x", command + " || x"
    yield "newline", command + "\ntouch x"
    yield "redirect", command + " > /tmp/x"
    yield "$VAR id", command.replace(F, "$FLEET_ID")
    yield "${VAR} id", command.replace(F, "${FLEET_ID}")
    yield "$(…) id", command.replace(F, "$(cat fleet)")
    yield "backticks", command.replace(F, "`cat fleet`")
    yield "env prefix", "X=1 " + command
    yield "glued suffix", command + "x"


@pytest.mark.parametrize("role", p.ROLES)
def test_tampered_variants_never_match(role):
    rules = role_rules(role)
    checked = 0
    for cmd, filled in taught(role):
        own_agent_flag = f"--agent-id {D if role == p.DIRECTOR else M}"
        for label, variant in _variants(filled, role):
            if variant == filled:
                continue  # e.g. no --agent-id in this command
            if label == "other agent id" and own_agent_flag not in filled:
                continue
            if label == "glued suffix" and p.matching_rule(rules, filled)[1].endswith(p.PREFIX_SUFFIX + ")"):
                continue  # gluing onto the free part of a prefix rule only changes that part
            assert p.matching_rule(rules, variant) is None, f"{label}: {variant!r} ({cmd.where})"
            checked += 1
    assert checked > 20


@pytest.mark.parametrize(
    "text",
    ["a; b", "x && y", "p | q", "fine & dandy", "(parens)", "<angle>", "#hash", "it's"],
)
def test_operators_inside_quoted_text_are_inert(text):
    quoted = json.dumps(text) if "'" in text else f'"{text}"'
    cmd = f"cafleet --fleet-id {F} message send --agent-id {D} --to {M} --text {quoted}"
    assert p.matching_rule(p.director_rules(F, D), cmd) == (
        p.ALLOW, f"Bash(cafleet --fleet-id {F} message send --agent-id {D} --to{p.PREFIX_SUFFIX})")


@pytest.mark.parametrize("text", ['"$HOME"', '"`id`"', '"$(id)"', '"a\\\nb"', '"unterminated'])
def test_expansions_inside_double_quotes_are_hazards(text):
    cmd = f"cafleet --fleet-id {F} message send --agent-id {D} --to {M} --text {text}"
    assert p.shell_hazard(cmd) is not None
    assert p.matching_rule(p.director_rules(F, D), cmd) is None


def test_single_quotes_are_inert():
    cmd = f"cafleet --fleet-id {F} message send --agent-id {D} --to {M} --text '$HOME; `id` $(x)'"
    assert p.shell_hazard(cmd) is None
    assert p.matching_rule(p.director_rules(F, D), cmd)[0] == p.ALLOW


def test_matches_model():
    exact = "Bash(cafleet fleet list)"
    assert p.matches(exact, "cafleet fleet list")
    assert p.matches(exact, "  cafleet fleet list ")
    assert not p.matches(exact, "cafleet fleet list --json")
    prefix = "Bash(cafleet fleet:*)"
    assert p.matches(prefix, "cafleet fleet")
    assert p.matches(prefix, "cafleet fleet list")
    assert not p.matches(prefix, "cafleet fleetx")
    assert p.matches("Bash(cafleet fleet *)", "cafleet fleet list")  # the other spelling
    assert not p.matches("Read(cafleet fleet list)", "cafleet fleet list")
    assert p.parse_rule("Bash(a b:*)") == ("a b", True)
    assert p.parse_rule("Bash(a b)") == ("a b", False)
    assert p.parse_rule("Edit(x)") is None


def test_repeated_identity_flag():
    base = f'cafleet --fleet-id {F} message send --agent-id {D} --to {M} --text "hi"'
    assert p.repeated_identity_flag(base) is None
    assert p.repeated_identity_flag(base + f" --agent-id {OTHER}") == "--agent-id"
    assert p.repeated_identity_flag(f"cafleet --fleet-id {F} message ack --agent-id {D} --task-id {T} --task-id {OTHER}") is None
    assert p.repeated_identity_flag("ls --agent-id a --agent-id b") is None


# ------------------------------------------------------------------ settings file


def test_write_settings_creates_dirs_and_default_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rules = p.director_rules(F, D)
    added = p.write_settings(None, rules)
    target = tmp_path / ".claude" / "settings.local.json"
    assert added == rules
    assert json.loads(target.read_text()) == {"permissions": rules}


def test_write_settings_merges_and_keeps_everything(tmp_path):
    target = tmp_path / "s.json"
    existing = {
        "model": "x",
        "env": {"A": "1"},
        "permissions": {
            "allow": ["Bash(ls)", f"Bash(cafleet --fleet-id {F} member list)"],
            "deny": ["Bash(rm:*)"],
            "defaultMode": "default",
        },
        "hooks": {"Stop": []},
    }
    target.write_text(json.dumps(existing))
    rules = p.director_rules(F, D)
    added = p.write_settings(target, rules)
    data = json.loads(target.read_text())
    assert data["model"] == "x" and data["env"] == {"A": "1"} and data["hooks"] == {"Stop": []}
    assert data["permissions"]["deny"] == ["Bash(rm:*)"]
    assert data["permissions"]["defaultMode"] == "default"
    assert data["permissions"]["allow"][:2] == existing["permissions"]["allow"]
    assert f"Bash(cafleet --fleet-id {F} member list)" not in added["allow"]
    for kind in ("allow", "ask"):
        assert set(rules[kind]) <= set(data["permissions"][kind])
        assert len(data["permissions"][kind]) == len(set(data["permissions"][kind]))


def test_write_settings_is_idempotent_and_byte_identical(tmp_path):
    target = tmp_path / "s.json"
    rules = p.director_rules(F, D)
    p.write_settings(target, rules)
    before = target.read_bytes()
    mtime = target.stat().st_mtime_ns
    assert p.write_settings(target, rules) == {"allow": [], "ask": []}
    assert target.read_bytes() == before
    assert target.stat().st_mtime_ns == mtime


def test_write_settings_respects_stricter_user_choice(tmp_path):
    target = tmp_path / "s.json"
    ping = f"Bash(cafleet --fleet-id {F} member ping --member-id{p.PREFIX_SUFFIX})"
    target.write_text(json.dumps({"permissions": {"ask": [ping]}}))
    added = p.write_settings(target, p.director_rules(F, D))
    assert ping not in added["allow"]
    assert ping not in json.loads(target.read_text())["permissions"]["allow"]


def test_write_settings_is_atomic_and_keeps_mode(tmp_path):
    target = tmp_path / "s.json"
    target.write_text("{}")
    os.chmod(target, 0o640)
    p.write_settings(target, p.member_rules(F, M, D))
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.json"]


def test_write_settings_writes_through_a_symlink(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    p.write_settings(link, p.member_rules(F, M, D))
    assert link.is_symlink()
    assert json.loads(real.read_text())["permissions"]["allow"]


@pytest.mark.parametrize(
    "content",
    ["[]", '"text"', "42", "null", "{not json", '{"permissions": []}', '{"permissions": {"allow": "Bash"}}'],
)
def test_write_settings_refuses_non_objects(tmp_path, content):
    target = tmp_path / "s.json"
    target.write_text(content)
    with pytest.raises(CafleetError):
        p.write_settings(target, p.director_rules(F, D))
    assert target.read_text() == content
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.json"]


def test_write_settings_accepts_empty_file(tmp_path):
    target = tmp_path / "s.json"
    target.write_text("")
    assert p.write_settings(target, p.member_rules(F, M, D))["allow"]


def test_permissions_module_is_stdlib_only():
    import ast
    import sys

    tree = ast.parse(open(p.__file__, encoding="utf-8").read())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or name in ("cafleet.errors", "cafleet.userfiles", "__future__"), name
