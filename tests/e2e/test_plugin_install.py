"""Fact: a plugin installs offline from a local directory marketplace, and its hooks run.

Observed with Claude Code 2.1.330 and 2.1.332 (all with the temp HOME of claude_env, no network):

    claude plugin marketplace add <dir>              -> "Successfully added marketplace: <mkt>"
    claude plugin install <plugin>@<mkt>             -> "Successfully installed plugin: …"
    claude plugin list [--json]                      -> lists it, enabled, "Read from: <dir>"
    claude plugin install <plugin> --marketplace <dir>   (one step: adds, then installs)

A directory-source plugin loads in place from <dir> (``CLAUDE_PLUGIN_ROOT`` is <dir>, not
the copy under ~/.claude/plugins/cache); edits apply at the next session start. The install
still copies the whole folder, gitignored files included, into that cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from checkout import clean_copy  # tests/ is on sys.path (rootdir conftest)
from claude_env import REPO, run_cli, wait_until

pytestmark = pytest.mark.e2e


def make_plugin(root, name="e2e-plugin", marketplace="e2e-local"):
    (root / ".claude-plugin").mkdir(parents=True)
    (root / "hooks").mkdir()
    (root / ".claude-plugin" / "plugin.json").write_text(json.dumps(
        {"name": name, "version": "0.0.1", "description": "throwaway e2e plugin"}))
    (root / ".claude-plugin" / "marketplace.json").write_text(json.dumps(
        {"name": marketplace, "owner": {"name": "e2e"},
         "plugins": [{"name": name, "source": "./", "description": "throwaway e2e plugin"}]}))
    script = root / "hooks" / "session_start.py"
    script.write_text("import json, os, sys\n"
                      "src = json.load(sys.stdin).get('source')\n"
                      "with open(os.environ['HOOK_MARKER'], 'a') as f:\n"
                      "    f.write(f\"source={src} root={os.environ.get('CLAUDE_PLUGIN_ROOT')}\\n\")\n")
    hook = 'python3 "${CLAUDE_PLUGIN_ROOT}/hooks/session_start.py"'
    (root / "hooks" / "hooks.json").write_text(json.dumps(
        {"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": hook}]}]}}))
    return root


def test_plugin_marketplace_add_install_list_offline(claude_bin, e2e_env, project_dir, tmp_path,
                                                     e2e_tmux, fake_api, start_claude):
    plugin = make_plugin(tmp_path / "plugsrc")
    t0 = time.monotonic()
    out = run_cli([claude_bin, "plugin", "marketplace", "add", str(plugin)],
                  env=e2e_env, cwd=project_dir)
    assert "Successfully added marketplace: e2e-local" in out.stdout + out.stderr
    out = run_cli([claude_bin, "plugin", "install", "e2e-plugin@e2e-local"],
                  env=e2e_env, cwd=project_dir)
    assert "Successfully installed plugin: e2e-plugin@e2e-local" in out.stdout + out.stderr
    listed = json.loads(run_cli([claude_bin, "plugin", "list", "--json"],
                                env=e2e_env, cwd=project_dir).stdout)
    cli_time = time.monotonic() - t0
    (entry,) = [p for p in listed if p["id"] == "e2e-plugin@e2e-local"]
    assert entry["enabled"] and entry["scope"] == "user"
    assert os.path.realpath(entry["readFromFolder"]) == os.path.realpath(plugin)
    # installing again is harmless
    again = run_cli([claude_bin, "plugin", "install", "e2e-plugin@e2e-local"],
                    env=e2e_env, cwd=project_dir)
    assert "already installed" in again.stdout + again.stderr
    print(f"\nmarketplace add + install + list: {cli_time:.2f}s")

    # the SessionStart hook runs in a claude started afterwards, from the source folder
    marker = tmp_path / "hook-marker"
    claude = start_claude(env={"HOOK_MARKER": str(marker)})
    wait_until(marker.exists, timeout=15, what="SessionStart hook marker",
               on_fail=claude._fail_info)
    assert marker.read_text().strip() == f"source=startup root={plugin}"


def test_plugin_install_one_step_with_marketplace_flag(claude_bin, e2e_env, project_dir,
                                                       tmp_path):
    plugin = make_plugin(tmp_path / "plugsrc2", marketplace="e2e-local-2")
    out = run_cli([claude_bin, "plugin", "install", "e2e-plugin", "--marketplace", str(plugin)],
                  env=e2e_env, cwd=project_dir)
    assert "Successfully installed plugin: e2e-plugin@e2e-local-2" in out.stdout + out.stderr
    listed = run_cli([claude_bin, "plugin", "list"], env=e2e_env, cwd=project_dir).stdout
    assert "e2e-plugin@e2e-local-2" in listed


@pytest.mark.skipif(not (REPO / ".claude-plugin" / "marketplace.json").exists(),
                    reason="the repo has no .claude-plugin/marketplace.json yet")
def test_repo_plugin_installs_offline(claude_bin, e2e_env, project_dir, tmp_path):
    src = clean_copy(tmp_path / "cafleet-plugin")
    mkt = json.loads((src / ".claude-plugin" / "marketplace.json").read_text())
    name = mkt["plugins"][0]["name"]
    run_cli([claude_bin, "plugin", "marketplace", "add", str(src)], env=e2e_env, cwd=project_dir)
    run_cli([claude_bin, "plugin", "install", f"{name}@{mkt['name']}"], env=e2e_env,
            cwd=project_dir)
    listed = json.loads(run_cli([claude_bin, "plugin", "list", "--json"], env=e2e_env,
                                cwd=project_dir).stdout)
    assert any(p["id"] == f"{name}@{mkt['name']}" and p["enabled"] for p in listed), listed


def tree_size(root: Path) -> int:
    """Bytes of the regular files under `root` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.skipif(not (REPO / ".claude-plugin" / "marketplace.json").exists(),
                    reason="the repo has no .claude-plugin/marketplace.json yet")
def test_installed_plugin_is_small_and_ships_bin_cafleet(claude_bin, e2e_env, project_dir, tmp_path):
    """Issue 11: the installed plugin is at most 2 MB (the e2e tools and every venv live outside
    the tree), and it carries an executable bin/cafleet that runs with nothing installed."""
    src = clean_copy(tmp_path / "cafleet-plugin")
    mkt = json.loads((src / ".claude-plugin" / "marketplace.json").read_text())
    t0 = time.monotonic()
    run_cli([claude_bin, "plugin", "marketplace", "add", str(src)], env=e2e_env, cwd=project_dir)
    run_cli([claude_bin, "plugin", "install", f"cafleet@{mkt['name']}"], env=e2e_env, cwd=project_dir)
    took = time.monotonic() - t0
    cache = Path(e2e_env["HOME"]) / ".claude" / "plugins" / "cache"
    copies = [p.parent.parent for p in cache.rglob("plugin.json") if p.parent.name == ".claude-plugin"]
    assert len(copies) == 1, copies
    installed = copies[0]
    size = tree_size(installed)
    print(f"\ninstalled plugin: {size / 1e6:.2f} MB at {installed}; marketplace add + install {took:.1f}s")
    assert size <= 2_000_000, size
    launcher = installed / "bin" / "cafleet"
    assert launcher.is_file() and os.access(launcher, os.X_OK)
    # per-tick commands need nothing installed: a bare PATH, no env, the stdlib fast path
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "bare"), "CAFLEET_DB": str(tmp_path / "db")}
    r = subprocess.run([str(launcher), "--fleet-id", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "message", "poll",
                        "--agent-id", "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"], env=bare, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "bare" / ".local" / "share" / "cafleet" / "envs").exists()
