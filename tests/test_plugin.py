"""The plugin bundle: manifests, hooks.json, `claude plugin validate`, and an install the way a
user does it (`claude plugin marketplace add <checkout>` + `claude plugin install
cafleet@cafleet`) into a temp HOME, offline.

The claude binary is looked up like the e2e tests do (`$CAFLEET_E2E_TOOLS`, the repo's
the e2e tools dir (tests/e2e_tools.py), then PATH); without it the claude tests are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import cafleet
from cafleet.broker import Broker
from checkout import clean_copy  # tests/ is on sys.path (rootdir conftest)
import e2e_tools

ROOT = Path(__file__).resolve().parent.parent
EVENTS = {"PreToolUse": "Bash", "PostToolUse": "CronCreate|CronDelete|CronList",
          "SessionStart": "startup|resume|clear|compact", "Stop": None}


def find_claude() -> str | None:
    return e2e_tools.find_tool("claude")


@pytest.fixture(scope="module")
def claude() -> str:
    path = find_claude()
    if path is None:
        pytest.skip("claude not found: set CAFLEET_E2E_TOOLS, or npm install @anthropic-ai/claude-code "
                    "(tests/e2e/install-tools.sh), or put claude on PATH")
    return path


def claude_env(home: Path) -> dict:
    """Offline, quiet claude in a temp HOME (REAL-CLIENT.md "Running claude offline")."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1", "DISABLE_TELEMETRY": "1"}


def run(argv, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ manifests (no claude needed)


def test_plugin_manifest():
    manifest = json.loads((ROOT / ".claude-plugin" / "plugin.json").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert manifest["name"] == "cafleet"
    assert manifest["version"] == version == cafleet.__version__
    assert manifest["license"] == "MIT"
    assert manifest["description"] and manifest["keywords"]
    assert manifest["author"]["name"] and manifest["license"] == "MIT"
    assert "hooks" not in manifest and "skills" not in manifest  # standard layout, auto-discovered
    assert (ROOT / manifest["icon"]).is_file()


def test_marketplace_manifest():
    market = json.loads((ROOT / ".claude-plugin" / "marketplace.json").read_text())
    manifest = json.loads((ROOT / ".claude-plugin" / "plugin.json").read_text())
    assert market["name"] == "cafleet"
    [entry] = market["plugins"]
    assert entry["name"] == "cafleet" and entry["source"] == "./"
    assert entry["version"] == manifest["version"]


def test_hooks_json_wires_every_event_to_the_handler():
    config = json.loads((ROOT / "hooks" / "hooks.json").read_text())
    assert set(config["hooks"]) == set(EVENTS)
    for event, matcher in EVENTS.items():
        [group] = config["hooks"][event]
        assert group.get("matcher") == matcher
        [hook] = group["hooks"]
        assert hook["type"] == "command"
        assert hook["command"] == f'python3 -I -S "${{CLAUDE_PLUGIN_ROOT}}/hooks/cafleet-hook" {event}'
        assert 0 < hook["timeout"] <= 30
    script = ROOT / "hooks" / "cafleet-hook"
    assert script.stat().st_mode & stat.S_IXUSR
    assert script.read_text().startswith("#!/usr/bin/env python3\n")


# ------------------------------------------------------------------ the real claude


def test_claude_plugin_validate_passes_clean(claude, tmp_path):
    env = claude_env(tmp_path / "home")
    out = run([claude, "plugin", "validate", "."], env, ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Validation passed" in out.stdout
    assert "⚠" not in out.stdout and "✘" not in out.stdout, out.stdout
    reports = {}
    for target in (".", ".claude-plugin/plugin.json", ".claude-plugin/marketplace.json"):
        out = run([claude, "plugin", "validate", "--strict", "--json", target], env, ROOT)
        assert out.returncode == 0, out.stdout + out.stderr
        report = reports[target] = json.loads(out.stdout)
        assert report["success"] is True
        assert report["manifest"]["errors"] == [] and report["manifest"]["warnings"] == [], report["manifest"]
        findings = (report.get("directory") or {}).get("findings") or []
        assert findings == [], findings
    report = reports["."]
    hooks = {h["event"]: h for h in report["provides"]["hooks"]}
    assert set(hooks) == set(EVENTS)
    assert set(report["provides"]["skills"]) >= {"cafleet:cafleet", "cafleet:cafleet-agent-team-monitoring",
                                                 "cafleet:cafleet-agent-team-supervision"}


def test_install_from_a_checkout_like_a_user(claude, tmp_path):
    repo = clean_copy(tmp_path / "cafleet")
    env = claude_env(tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()
    out = run([claude, "plugin", "marketplace", "add", str(repo)], env, work)
    assert out.returncode == 0 and "Successfully added marketplace: cafleet" in out.stdout + out.stderr, out
    out = run([claude, "plugin", "install", "cafleet@cafleet"], env, work)
    assert out.returncode == 0 and "Successfully installed plugin: cafleet@cafleet" in out.stdout + out.stderr, out
    out = run([claude, "plugin", "list"], env, work)
    assert out.returncode == 0 and "cafleet@cafleet" in out.stdout and "enabled" in out.stdout, out.stdout
    out = run([claude, "plugin", "list", "--json"], env, work)
    [plugin] = [p for p in json.loads(out.stdout) if p["id"] == "cafleet@cafleet"]
    assert plugin["enabled"] is True and plugin["version"] == cafleet.__version__

    installed = Path(plugin["installPath"])
    hook = installed / "hooks" / "cafleet-hook"
    assert hook.is_file() and hook.stat().st_mode & stat.S_IXUSR
    for rel in ("hooks/hooks.json", "cafleet/__init__.py", "cafleet/hooks.py", "cafleet/broker.py",
                "cafleet/errors.py", ".claude-plugin/plugin.json", "skills/cafleet/SKILL.md"):
        assert (installed / rel).is_file(), rel

    # the installed copy works on its own: a fleet Director's raw tmux is denied
    db = tmp_path / "data" / "cafleet.db"
    with Broker.open(str(db)) as b:
        fleet = b.create_fleet("x", placement={"tmux_socket": "/tmp/fake-sock", "session_name": "s",
                                               "window_id": "@1", "pane_id": "%1"})
    hook_env = {"PATH": env["PATH"], "HOME": env["HOME"], "CAFLEET_DB": str(db), "TMUX": "/tmp/fake-sock,1,0",
                "TMUX_PANE": "%1", "CLAUDE_PLUGIN_ROOT": str(installed)}
    payload = json.dumps({"tool_name": "Bash", "tool_input": {"command": "tmux kill-pane -t %2"}})
    proc = subprocess.run([sys.executable, "-I", "-S", str(hook), "PreToolUse"], input=payload, text=True,
                          env=hook_env, cwd=work, capture_output=True)
    assert proc.returncode == 0
    decision = json.loads(proc.stdout)["hookSpecificOutput"]
    assert decision["permissionDecision"] == "deny" and fleet["fleet_id"] in decision["permissionDecisionReason"]
