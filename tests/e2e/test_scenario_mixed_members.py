"""Scenario: a codex member and an opencode member, real model turns (offline), real panes.

The test plays the Director (a pane running ``cat``; ``cafleet`` runs "from" it through
``TMUX``/``TMUX_PANE``). Both members are spawned with ``member create``, so they run with
cafleet's own posture (codex: ``--sandbox=workspace-write --ask-for-approval=on-request
--add-dir=<DB dir>``; opencode: ``--agent=cafleet`` from ``OPENCODE_CONFIG_CONTENT``), against
the suite's scripted model server (tests/e2e/openai_clients.py). Each member runs its own
``message send`` (ready), then the Director's ``message send`` pushes a preview into its TUI,
and the member polls, acks and reports through its client's shell tool
(tests/e2e/openai_brains.py). Nothing in either member pane may ask for approval.
"""

from __future__ import annotations

import time

import pytest

from claude_env import wait_until
from openai_brains import Router
from openai_clients import clients, e2e_env  # noqa: F401 (fixtures)
from scenario_helpers import Phases, broker, cafleet, cafleet_json, diagnostics, inbox

pytestmark = pytest.mark.e2e


def test_codex_and_opencode_members_poll_ack_and_report(fake_api, e2e_tmux, e2e_env, project_dir):
    router = Router()
    fake_api.script = router
    sock = e2e_tmux.socket_path
    director = (sock, e2e_tmux.new_window(["cat"], cwd=project_dir))
    diag = lambda: diagnostics(e2e_tmux, fake_api)  # noqa: E731
    phases = Phases(diag)
    F, D = cafleet(e2e_env, "fleet", "create", pane=director, cwd=project_dir).stdout.splitlines()[:2]
    members = {}
    with phases("spawn codex + opencode, each sends ready"):
        for be in ("codex", "opencode"):
            out = cafleet_json(e2e_env, "member", "create", "--name", f"{be}-m", "--description",
                               f"{be} worker", "--coding-agent", be, fleet_id=F, pane=director,
                               cwd=project_dir)
            members[be] = (out["agent_id"], out["placement"]["pane_id"])
        for be, (M, pane) in members.items():
            brain = router.member(M, timeout=60)
            assert brain.wire == {"codex": "responses", "opencode": "chat"}[be]
            brain.wait_note("ready", timeout=60)
        got = {t["sender_agent_id"]: t["body"] for t in inbox(e2e_env, F, D)}
        assert got == {M: "ready" for M, _ in members.values()}, got
        # stored either way; only the push differs: codex's sandbox cannot reach the tmux socket
        ready = {be: router.member(M).notes["ready"].strip().splitlines() for be, (M, _) in members.items()}
        print(f"\nmember sends: {ready}")
        assert ready["opencode"][1] == f"notified pane {director[1]}", ready
        assert ready["codex"][1].startswith("no pane notified (held: tmux failed from here"), ready
        assert "Operation not permitted" in ready["codex"][1], ready
        codex_ready = ready["codex"][0]

    with phases("the codex member's held preview is delivered by a later call from outside"):
        # any later cafleet call on the fleet from outside the sandbox delivers it (the
        # opencode member's own send may already have); `member list` is one
        dscreen = lambda: e2e_tmux.capture(director[1], history=200)  # noqa: E731
        rows = cafleet_json(e2e_env, "member", "list", fleet_id=F, pane=director)
        wait_until(lambda: codex_ready in dscreen(), timeout=10,
                   what="the held preview in the Director's pane", on_fail=diag)
        cafleet_json(e2e_env, "member", "list", fleet_id=F, pane=director)
        time.sleep(0.5)
        # typed once: as often as the opencode member's preview, pushed once (the `cat` pane
        # shows a typed line twice: the tty's echo and cat's copy)
        seen = dscreen()
        assert seen.count(f"[cafleet] task {codex_ready}") == seen.count(
            f"[cafleet] task {ready['opencode'][0]}") > 0, seen
        br = broker(e2e_env)
        try:
            assert not br.has_held(F)
        finally:
            br.close()
        print(f"member list after delivery: {[(r['name'], r.get('state'), r.get('held')) for r in rows]}")

    with phases("Director sends each a task; preview pushed; member polls, acks, reports"):
        sent = {}
        for be, (M, pane) in members.items():
            wait_until(lambda: "Waiting" in e2e_tmux.capture(pane) or "waiting" in e2e_tmux.capture(pane),
                       timeout=30, what=f"{be} to finish its first turn", on_fail=diag)
            out = cafleet(e2e_env, "--fleet-id", F, "message", "send", "--agent-id", D, "--to", M,
                          "--text", f"task for {be}: count the files", pane=director).stdout.splitlines()
            assert out[1].startswith("notified"), (be, out, e2e_tmux.capture(pane))
            sent[be] = out[0]
        for be, (M, pane) in members.items():
            brain = router.member(M)
            brain.wait_note(f"reported:{sent[be]}", timeout=60)
        br = broker(e2e_env)
        try:
            for be, (M, pane) in members.items():
                assert br.show_task(F, D, sent[be])["state"] == "completed"  # acked by the member
        finally:
            br.close()
        reports = {t["sender_agent_id"]: t["body"] for t in inbox(e2e_env, F, D)
                   if t["body"].startswith("done:")}
        assert reports == {M: f"done: task for {be}: count the files"
                           for be, (M, _p) in members.items()}, reports

    with phases("no approval prompt in any member pane; teardown"):
        for be, (M, pane) in members.items():
            screen = e2e_tmux.capture(pane, history=300)
            for mark in ("Would you like to run", "Permission required", "Allow once",
                         "permission requested"):
                assert mark not in screen, (be, screen[-1500:])
        for be, (M, pane) in members.items():
            cafleet(e2e_env, "--fleet-id", F, "member", "delete", "--member-id", M, pane=director)
        assert cafleet_json(e2e_env, "member", "list", fleet_id=F) == []
        cafleet(e2e_env, "fleet", "delete", F)
    print("\nscenario wall times:\n" + phases.report())
