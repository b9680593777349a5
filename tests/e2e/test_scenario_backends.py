"""Scenario 6: codex and opencode members, with their real binaries (offline).

The test is the Director (a pane running ``cat``; every ``cafleet`` call is made "from" it via
``TMUX``/``TMUX_PANE``): ``member create --coding-agent codex|opencode`` must start a pane whose
process is that binary with exactly the argv ``cafleet.backends`` builds (``/proc/<pid>/cmdline``
of the pane's process; codex's npm entry is a node script, so the pane runs
``node <bin>/codex ARGS`` and a native child gets the same ARGS), with the member's identity
(and, for opencode, the ``cafleet`` agent definition) in its environment; ``member delete
--force`` removes the pane and every process in it.

Offline, neither can reach a model. What they draw is captured and printed (``-s``):
codex 0.169.0 and 0.171.0 stop at their sign-in screen ("Welcome to Codex … Sign in with ChatGPT"),
opencode 1.18.33 tries to install packages with npm first (~10 s) and then draws its TUI
("Cafleet · <model>": the agent given by ``--agent=cafleet``), retrying its API. Both only
have to stay up.
"""

from __future__ import annotations

import json
import shutil
import sys
import time

import pytest

from claude_env import find_tool, wait_until
from scenario_helpers import (
    Phases,
    alive,
    cafleet,
    cafleet_json,
    cmdline,
    diagnostics,
    environ_of,
    pane_pid,
    process_tree,
)

pytestmark = pytest.mark.e2e

SCREEN = {"codex": "Codex", "opencode": "Cafleet \u00b7"}  # opencode shows its agent: --agent=cafleet


@pytest.fixture
def backend_bins():
    found = {b: find_tool(b) for b in ("codex", "opencode")}
    missing = [b for b, p in found.items() if p is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (tests/e2e/install-tools.sh)")
    return found


def test_codex_and_opencode_members_start_with_the_backend_argv(backend_bins, e2e_tmux, fake_api,
                                                                e2e_env, project_dir, monkeypatch):
    from cafleet import backends, members

    monkeypatch.setenv("PATH", e2e_env["PATH"])  # argv[0] is the binary found on this PATH
    # the member's PATH (codex's shell_environment_policy.set.PATH) starts with the directory of
    # the `cafleet` that spawns it: compute the expected argv as that process does
    monkeypatch.setattr(sys, "argv", [shutil.which("cafleet", path=e2e_env["PATH"])])

    phases = Phases(lambda: diagnostics(e2e_tmux))
    sock = e2e_tmux.socket_path
    dpane = e2e_tmux.new_window(["cat"], cwd=project_dir)
    director = (sock, dpane)
    F, D = cafleet(e2e_env, "fleet", "create", pane=director, cwd=project_dir).stdout.splitlines()[:2]
    spawned = {}
    with phases("6 member create codex + opencode"):
        for be in ("codex", "opencode"):
            name, desc, prompt = f"{be}-m", f"{be} probe", "Reply with ready."
            out = cafleet_json(e2e_env, "member", "create", "--name", name, "--description", desc,
                               "--coding-agent", be, "--", prompt, fleet_id=F, pane=director,
                               cwd=project_dir)
            M, pane = out["agent_id"], out["placement"]["pane_id"]
            identity = backends.MemberIdentity(fleet_id=F, agent_id=M, director_id=D, name=name,
                                               db_path=e2e_env["CAFLEET_DB"])
            text = (members.identity_prompt(F, M, D, name, desc)
                    + members.PROMPT_HEADING + prompt)
            backend = backends.get(be)
            expected = backend.spawn_argv(prompt=text, model=None, name=name, identity=identity)
            assert expected[0] == backend_bins[be]
            spawned[be] = (M, pane, pane_pid(e2e_tmux, pane), expected, backend, identity)

    with phases("6 argv, environment, screens"):
        for be, (M, pane, pid, expected, backend, identity) in spawned.items():
            argv = cmdline(pid)
            assert argv[-len(expected):] == expected, (be, argv[:4], expected[:4])
            if be == "codex":  # node wrapper -> native binary with the same arguments
                assert argv[0].endswith("node") and len(argv) == len(expected) + 1, argv[:3]
            else:
                assert argv == expected
            env = environ_of(pid)
            for k, v in backends.identity_env(identity).items():
                assert env.get(k) == v, (be, k, env.get(k))
            if be == "opencode":
                config = json.loads(env["OPENCODE_CONFIG_CONTENT"])
                assert config == backend.config(identity)
                assert "mcp" not in config and "cafleet" in config["agent"]
        screens = {}
        for be, (M, pane, pid, *_rest) in spawned.items():
            screens[be] = wait_until(
                lambda: (lambda c: c if SCREEN[be] in c else None)(e2e_tmux.capture(pane)),
                timeout=40, what=f"{be} to draw its screen",
                on_fail=lambda: diagnostics(e2e_tmux))
            assert alive(pid), f"{be} exited:\n{e2e_tmux.capture(pane)}"
        rows = cafleet_json(e2e_env, "member", "list", fleet_id=F)
        assert sorted((r["coding_agent"], r["pane_status"]) for r in rows) == [
            ("codex", "alive"), ("opencode", "alive")]
        for be, screen in screens.items():
            shown = "\n".join(line.rstrip() for line in screen.splitlines() if line.strip())
            print(f"\n--- {be} pane, offline ---\n{shown[-1500:]}")
        # the panes inherit ANTHROPIC_BASE_URL (the fake API): report whether anything came
        print(f"fake API saw: {[r.summary()[:120] for r in fake_api.snapshot()]} other: {fake_api.other}")

    with phases("6 push to codex on its sign-in screen"):
        # codex's sign-in screen is a choice list (`> 1. Sign in with ChatGPT` … `Press enter to
        # continue`): a preview's Enter would start the ChatGPT sign-in flow in the member's
        # pane. The task is stored; the push is skipped and the screen stays as it was.
        M, pane, pid, *_rest = spawned["codex"]
        before = e2e_tmux.capture(pane)
        assert "> 1. Sign in with ChatGPT" in before, before
        out = cafleet(e2e_env, "--fleet-id", F, "message", "send", "--agent-id", D, "--to", M,
                      "--text", "start on the parser", pane=director).stdout.splitlines()
        assert out[1] == ("no pane notified (held: the pane shows a dialog ('Press enter to continue'); its "
                          "Enter would pick an option; delivered by a later cafleet call)"), out
        assert [t["body"] for t in cafleet_json(e2e_env, "message", "poll", "--agent-id", M, fleet_id=F)["tasks"]] == [
            "start on the parser"]
        time.sleep(1.0)  # what a typed Enter would have changed by now (the browser sign-in screen)
        after = e2e_tmux.capture(pane)
        assert "> 1. Sign in with ChatGPT" in after and "Finish signing in" not in after, after

    with phases("6 member delete --force"):
        for be, (M, pane, pid, *_rest) in spawned.items():
            tree = process_tree(pid)
            out = cafleet(e2e_env, "--fleet-id", F, "member", "delete", "--member-id", M, "--force",
                          pane=director).stdout
            assert f"member {M} deleted (killed)" in out, out
            assert pane not in e2e_tmux.list_panes()
            wait_until(lambda: not any(alive(p) for p in tree), timeout=10,
                       what=f"every {be} process to end", on_fail=lambda: repr(
                           [(p, cmdline(p)[:2]) for p in tree if alive(p)]))
        assert cafleet_json(e2e_env, "member", "list", fleet_id=F) == []
        cafleet(e2e_env, "fleet", "delete", F)
    print("\nscenario wall times:\n" + phases.report())
