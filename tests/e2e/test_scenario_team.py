"""Scenario: a claude Director runs a claude member, start to finish, in the real client.

One long test (claude start-ups are the expensive part), in phases with their own wall
times and diagnostics:

1. setup + ready + dispatch (issue 5, scenario 1): the Director (manual permission mode, the
   test plays the user at each prompt) runs ``cafleet doctor``, ``fleet create``, writes its
   rules with ``permissions --write``, tries ``member create`` before its loop (the
   PreToolUse hook denies it: scenario 3), starts the loop (ToolSearch ``select:CronCreate``
   + CronCreate), then ``member create`` is allowed. The member's claude, spawned by cafleet
   with its own allow rules, sends ``ready`` unattended; the preview arrives in the
   Director's pane as a user turn; the Director polls, dispatches, the member replies, the
   Director acks: ``member list`` shows it alive with 0 unread, the Director 0 unread.
2. hooks (scenario 3): raw ``tmux send-keys`` from the Director and from the member is denied
   with the hook's reason in the tool_result; a member that ignores a preview is told by the
   Stop hook to poll before it stops.
3. choice + exec (scenario 4): the member opens a 3-option AskUserQuestion; ``member
   capture`` shows ``1.``…``4. Type something.``; ``member send-input --choice 2`` answers it
   (the member's tool_result names option 2); ``member exec`` + ``member ping`` run a
   command in the member's pane and then its poll.
4. /clear: the SessionStart hook gives the Director its ids back; the teardown below uses
   only those.
5. teardown (scenario 5), in the seed's order: ``fleet delete`` while the loop runs is denied,
   CronDelete (+ CronList), graceful ``member delete`` closes the real claude, ``member list``
   empty, ``fleet delete``, ``fleet list``.

Every permission prompt the Director showed is checked at the end: exactly the commands
without an allow rule (before the rules exist) and the generated ``ask`` rules.

A /loop tick (CronCreate fires each minute, only while the Director is idle) may land at any
point; the Director then runs the loop prompt's ``member list`` and ``message poll``
(allowed, no prompt). ``CAFLEET_E2E_WAIT_TICK=1`` adds a phase that waits for one
(up to ~90 s) and checks exactly that.
"""

from __future__ import annotations

import json
import os

import pytest

from claude_env import wait_until
from scenario_helpers import (
    DIALOG_MARK,
    PREVIEW_RE,
    Approver,
    DirectorBrain,
    FleetScript,
    MemberBrain,
    Phases,
    broker,
    cafleet_json,
    cmdline,
    diagnostics,
    install_plugin,
    pane_pid,
    turn_text,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def plugin(claude_bin, e2e_env, project_dir, tmp_path):
    return install_plugin(claude_bin, e2e_env, project_dir, tmp_path)


def idle(pane) -> bool:
    """The Director's claude is waiting for input: input box drawn, no turn running."""
    screen = pane.screen()
    return pane.input_box_drawn() and "esc to interrupt" not in screen and DIALOG_MARK not in screen


def test_director_runs_a_claude_member_end_to_end(plugin, start_claude, fake_api, e2e_tmux,
                                                  e2e_env, project_dir):
    director = DirectorBrain()
    script = FleetScript(director, MemberBrain)
    fake_api.script = script
    dpane = start_claude()  # manual mode (auto mode is disabled in the temp HOME)
    approver = Approver(e2e_tmux, lambda: [dpane.pane],
                        lambda: [director.member_pane] if director.member_pane else [])
    approver.start()

    def diag() -> str:
        prompts = "\n".join(f"  [{p.pane}] {' '.join(p.text.split())[:200]}"
                            for p in approver.prompts + approver.unexpected)
        return diagnostics(e2e_tmux, fake_api, script.brains()) + f"\n--- prompts ---\n{prompts}"

    def step(text: str) -> None:
        wait_until(lambda: idle(dpane), timeout=40, what="the Director to be idle", on_fail=diag)
        dpane.type(text)

    def member():
        return wait_until(lambda: script.members.get("worker"), timeout=40,
                          what="the member's first request", on_fail=diag)

    ph = Phases(diag)
    try:
        # ------------------------------------------------------------------ scenario 1
        with ph("1 setup: doctor, fleet, rules, loop, member"):
            step("E2E-STEP:setup")
            director.wait_note("step", timeout=20, on_fail=diag)
            wait_until(lambda: director.last("create") is not None, timeout=90,
                       what="the second member create", on_fail=diag)
            F, D = director.last("fleet")
            doctor = director.last("doctor")
            assert not doctor.is_error and "tmux pane" in doctor.text, doctor.text
            # the rules the Director wrote for itself
            settings = json.loads((project_dir / ".claude" / "settings.local.json").read_text())
            allow, ask = settings["permissions"]["allow"], settings["permissions"]["ask"]
            assert f"Bash(cafleet --fleet-id {F} message poll --agent-id {D})" in allow
            assert any("member create" in r for r in ask)
            # member create before the loop: denied by the hook, reason reaches the model
            early = director.last("create-before-loop")
            assert early.is_error, early.text
            assert "PreToolUse:Bash hook error" in early.text, early.text
            assert "no monitoring /loop is running" in early.text, early.text
            loop_id, cron = director.last("loop")
            assert loop_id and not cron.is_error, cron.text
            br = broker(e2e_env)
            try:
                assert [lp["loop_id"] for lp in br.active_loops(D)] == [loop_id]
            finally:
                br.close()
            created = director.last("create")
            assert not created.is_error, created.text
            M, mpane = director.last("member")
            assert mpane and mpane in e2e_tmux.list_panes()
            # the member's pane runs the real claude with its name and its own allow rules
            argv = cmdline(pane_pid(e2e_tmux, mpane))
            assert any(a == "--name=worker" for a in argv), argv
            settings_arg = next(a for a in argv if a.startswith("--settings="))
            member_allow = json.loads(settings_arg.split("=", 1)[1])["permissions"]["allow"]
            assert f"Bash(cafleet --fleet-id {F} message poll --agent-id {M})" in member_allow

        with ph("1 ready -> poll/ack/dispatch -> reply -> ack"):
            worker = member()
            assert (worker.F, worker.M, worker.D) == (F, M, D)
            ready = worker.wait_note("ready-sent", timeout=40, on_fail=diag)
            assert not ready.is_error and "notified pane" in ready.text, ready.text
            director.wait_note("ready", timeout=60, on_fail=diag)
            director.wait_note("dispatched", timeout=30, on_fail=diag)
            assert director.wait_note("report", timeout=60, on_fail=diag) == "result: 42"
            wait_until(lambda: len(director.notes.get("acked", [])) >= 2, timeout=30,
                       what="the Director to ack ready and the result", on_fail=diag)
            # the ready preview reached the Director as a user turn (or inside a running one)
            previews = [PREVIEW_RE.search(turn_text(r)) for r in director.requests]
            assert any(m and m.group(2) == "worker" and m.group(3) == M for m in previews), \
                "no Director request carried the member's preview"
            dcap = dpane.capture()
            assert "[cafleet] task" in dcap and f"from worker ({M})" in dcap, dcap[-2000:]
            mcap = e2e_tmux.capture(mpane)
            assert f"from Director ({D})" in mcap, mcap[-2000:]
            # broker state
            rows = wait_until(lambda: (lambda rs: rs if rs and rs[0]["unread"] == 0 else None)(
                cafleet_json(e2e_env, "member", "list", fleet_id=F)), timeout=30,
                what="member list with 0 unread", on_fail=diag)
            assert [(r["agent_id"], r["name"], r["coding_agent"], r["pane_status"], r["unread"])
                    for r in rows] == [(M, "worker", "claude", "alive", 0)]
            assert rows[0]["last_seen"], rows
            br = broker(e2e_env)
            try:
                assert br.unread_count(D) == 0
            finally:
                br.close()

        # ------------------------------------------------------------------ scenario 3
        with ph("3 hooks: raw tmux, Stop hook"):
            step("E2E-STEP:raw-tmux")
            r = director.wait_note("raw-tmux", timeout=30, on_fail=diag)
            assert r.is_error and "PreToolUse:Bash hook error" in r.text, r.text
            assert "raw tmux (`send-keys`) is not allowed" in r.text, r.text
            assert f"cafleet --fleet-id {F} member ping --member-id" in r.text  # the way instead
            assert "hello from raw tmux" not in e2e_tmux.capture(mpane)
            assert not [p for p in approver.prompts if "tmux send-keys" in p.text]

            step("E2E-STEP:send:tmux-probe")
            r = worker.wait_note("raw-tmux", timeout=40, on_fail=diag)
            assert r.is_error and "PreToolUse:Bash hook error" in r.text, r.text
            assert "You are a member" in r.text and f"--to {D}" in r.text, r.text
            wait_until(lambda: "tmux-probe: denied" in director.notes.get("report", []),
                       timeout=40, what="the member's tmux-probe report", on_fail=diag)

            step("E2E-STEP:send:stop-probe")
            worker.wait_note("ignored-preview", timeout=40, on_fail=diag)
            reminder = worker.wait_note("stop-hook", timeout=30, on_fail=diag)
            assert f"cafleet --fleet-id {F} message poll --agent-id {M}" in reminder, reminder
            wait_until(lambda: "stop-probe: handled after the reminder"
                       in director.notes.get("report", []), timeout=40,
                       what="the member's stop-probe report", on_fail=diag)
            assert "stop hook" in e2e_tmux.capture(mpane).lower()  # "Ran 1 stop hook" in its pane

        # ------------------------------------------------------------------ scenario 4
        with ph("4 AskUserQuestion frame + send-input"):
            wait_until(lambda: cafleet_json(e2e_env, "member", "list", fleet_id=F)[0]["unread"] == 0,
                       timeout=30, what="the member to be idle", on_fail=diag)
            step("E2E-STEP:send:choose")
            wait_until(lambda: "4. Type something" in e2e_tmux.capture(mpane, history=60),
                       timeout=40, what="the member's choice frame", on_fail=diag)
            cap = cafleet_json(e2e_env, "member", "capture", "--member-id", M, "--lines", "120",
                               fleet_id=F)["content"]
            for row in ("1. Red", "2. Green", "3. Blue", "4. Type something."):
                assert row in cap, cap
            step("E2E-STEP:answer-choice:2")
            seen = director.wait_note("capture-choice", timeout=30, on_fail=diag)
            assert "2. Green" in seen.text and "4. Type something." in seen.text, seen.text
            sent = director.wait_note("send-input", timeout=30, on_fail=diag)
            assert not sent.is_error and "sent '2'" in sent.text, sent.text
            answer = worker.wait_note("answer", timeout=30, on_fail=diag)
            assert not answer.is_error and '"=' in answer.text and "Green" in answer.text, answer.text
            wait_until(lambda: "choice: Green" in director.notes.get("report", []), timeout=40,
                       what="the member's choice report", on_fail=diag)

        with ph("4 member exec + member ping"):
            wait_until(lambda: cafleet_json(e2e_env, "member", "list", fleet_id=F)[0]["unread"] == 0,
                       timeout=30, what="the member to ack the choice task", on_fail=diag)
            step("E2E-STEP:exec")
            ex = director.wait_note("exec", timeout=30, on_fail=diag)
            assert not ex.is_error and "! expr 6 '*' 7" in ex.text, ex.text
            bash_in = worker.wait_note("bash-input", timeout=30, on_fail=diag)
            assert "<bash-input>" in bash_in and "expr 6 '*' 7" in bash_in and "42" in bash_in, bash_in
            ping = director.wait_note("ping", timeout=30, on_fail=diag)
            assert not ping.is_error, ping.text
            pinged = worker.wait_note("ping", timeout=30, on_fail=diag)
            assert f"cafleet --fleet-id {F} message poll --agent-id {M}" in pinged

        # ------------------------------------------------------------------ opt-in: a /loop tick
        if os.environ.get("CAFLEET_E2E_WAIT_TICK"):  # up to ~90 s: the cron fires each minute
            with ph("opt-in: the /loop fires and the tick runs"):
                n_ticks = len(director.notes.get("tick", []))
                director.wait_note("tick", count=n_ticks + 1, timeout=100, on_fail=diag)
                wait_until(lambda: idle(dpane), timeout=40, what="the tick to finish", on_fail=diag)
                tick_calls = [c.command for c in director.calls[-2:]]
                assert tick_calls == [f"cafleet --fleet-id {F} member list",
                                      f"cafleet --fleet-id {F} message poll --agent-id {D}"], \
                    tick_calls
                assert all(not c.result.is_error for c in director.calls[-2:])

        # ------------------------------------------------------------------ scenario 3: /clear
        with ph("3 /clear -> SessionStart restores ids"):
            wait_until(lambda: idle(dpane), timeout=40, what="the Director to be idle", on_fail=diag)
            n_before = len(director.requests)
            dpane.type("/clear")
            wait_until(lambda: "E2E-STEP:setup" not in dpane.screen(), timeout=15,
                       what="the screen to clear", on_fail=diag)
            step("E2E-STEP:whoami")
            ids = director.wait_note("whoami", timeout=30, on_fail=diag)
            ctx = director.last("session-context")
            assert "SessionStart hook additional context" in ctx, ctx[:500]
            assert ids == {"fleet": F, "agent": D, "member": M, "loop": loop_id}, (ids, ctx)
            whoami_req = director.requests[-1]
            assert len(whoami_req.messages) < len(director.requests[n_before - 1].messages)

        # ------------------------------------------------------------------ scenario 5
        with ph("5 teardown"):
            step("E2E-STEP:teardown")
            wait_until(lambda: director.last("fleet-list") is not None, timeout=90,
                       what="the teardown chain", on_fail=diag)
            denied = director.last("delete-with-loop")
            assert denied.is_error and "monitoring loop is still running" in denied.text, denied.text
            assert not director.last("cron-delete").is_error, director.last("cron-delete").text
            assert loop_id not in director.last("cron-list").text
            md = director.last("member-delete")
            assert not md.is_error and "deleted (exited)" in md.text, md.text
            assert mpane not in e2e_tmux.list_panes()
            assert "No members." in director.last("member-list").text
            fd = director.last("fleet-delete")
            assert not fd.is_error and f"fleet {F} deleted" in fd.text, fd.text
            assert "No active fleets." in director.last("fleet-list").text
            assert cafleet_json(e2e_env, "fleet", "list") == []
            br = broker(e2e_env)
            try:
                assert br.active_loops(D) == []
                assert br.get_fleet(F, include_deleted=True)["deleted_at"]
            finally:
                br.close()
            assert not dpane.dead

        # ------------------------------------------------------------------ scenario 2 (manual)
        with ph("prompts: exactly the no-rule and ask commands"):
            expected = [
                "cafleet doctor",
                "cafleet fleet create --coding-agent claude",
                f"cafleet --fleet-id {F} permissions --agent-id {D} --write",
                f"cafleet --fleet-id {F} member create --name worker",
                f"cafleet --fleet-id {F} member send-input --member-id {M} --choice 2",
                f"cafleet --fleet-id {F} member exec --member-id {M}",
                f"cafleet --fleet-id {F} member delete --member-id {M}",
                f"cafleet fleet delete {F}",
            ]
            got = [next((e for e in expected if p.shows(e)), "?? " + " ".join(p.text.split())[:160])
                   for p in approver.prompts]
            assert got == expected, "\n".join(got)
            ask_prompts = [p for p in approver.prompts if "member exec" in p.text]
            assert "says to ask" in " ".join(ask_prompts[0].text.split()), ask_prompts[0].text
            assert not approver.unexpected, [p.text for p in approver.unexpected]
    finally:
        approver.stop()
        print("\nscenario wall times:\n" + ph.report())
        print(f"ticks fired: {len(director.notes.get('tick', []))}; "
              f"requests: {len(fake_api.snapshot())}")
