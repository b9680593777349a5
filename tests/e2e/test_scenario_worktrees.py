"""Two real claude members, each in its own git worktree, edit the same file and commit.

The test plays the Director (a pane running ``cat``; every ``cafleet`` and ``git`` call is made
"from" it), in a git repository that is the only directory trusted in the temp HOME. It spawns
two claude members with ``member create --worktree``; each member (a scripted brain) reads its
worktree and branch from its prompt, writes ``app.py`` there with the Write tool, tries
``git commit`` itself, is refused by the plugin's member hook, and asks the Director to run the
commit, which the Director does with ``member exec`` (the cafleet routing for a command a member
may not run). Then: both branches hold their own ``app.py``, the main worktree is untouched, the
Director merges one branch, deleting the members removes their (clean) worktrees, and
``fleet delete`` reports the other branch as not merged.

Also the trust question of the location choice (cafleet/worktrees.py): the members start in
``<repo>.cafleet-worktrees/…`` with only ``<repo>`` trusted, so a trust dialog there would
stop them before their first request. The user's permission mode is ``acceptEdits``, the mode
a user who leaves a team editing files would pick; any prompt in a member pane fails the test.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from claude_env import wait_until
from scenario_helpers import (
    DIALOG_MARK,
    MemberBrain,
    Brain,
    FleetScript,
    bash,
    cafleet,
    cafleet_json,
    diagnostics,
    first_user_text,
    inbox,
    install_plugin,
    tool,
)

pytestmark = pytest.mark.e2e

GIT_ID = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]
WORKTREE_RE = re.compile(r"your own git worktree (\S+) on branch (\S+), made from (\S+) of (\S+)\.")


def git(repo, *args) -> str:
    p = subprocess.run(["git", *GIT_ID, *args], cwd=repo, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout.strip()


class WorktreeMember(MemberBrain):
    """A member that does `edit: TEXT` tasks in its worktree: Write app.py, try to commit, and
    route the commit through the Director when the hook refuses it."""

    def __init__(self, name, first):
        super().__init__(name, first)
        m = WORKTREE_RE.search(first_user_text(first))
        assert m, f"no worktree paragraph in the prompt: {first_user_text(first)[:1500]!r}"
        self.path, self.branch, self.from_ref, self.repo = m.groups()
        self.note("worktree", m.groups())

    def inbox(self):
        self.inbox_due = False
        r = yield bash(self.poll_command())
        from scenario_helpers import parse_poll

        tasks = parse_poll(r.text) if not r.is_error else []
        for t in reversed(tasks):
            self.note("task", t)
            if t.body.startswith("edit:"):
                text = t.body.split(":", 1)[1].strip()
                r = yield tool("Write", file_path=f"{self.path}/app.py", content=text + "\n")
                self.note("write", r)
                commit = f"git commit -qam '{self.name} edit'"
                r = yield bash(commit)
                self.note("commit-try", r)
                yield self.send(f"please run: {commit}" if r.is_error else "committed")
            r = yield bash(f"{self.base()} message ack --agent-id {self.M} --task-id {t.task_id}")
        return f"Handled {len(tasks)} task(s); waiting."


@pytest.fixture
def plugin(claude_bin, e2e_env, project_dir, tmp_path):
    return install_plugin(claude_bin, e2e_env, project_dir, tmp_path)


def test_two_members_in_worktrees_edit_the_same_file_and_the_director_merges_one(
        plugin, claude_bin, claude_home, fake_api, e2e_tmux, e2e_env, project_dir):
    repo = project_dir  # the only trusted directory
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.name", "Test"), ("user.email", "test@example.invalid")):
        git(repo, "config", key, value)  # the temp HOME has no identity; worktrees share this config
    (repo / "app.py").write_text("print('v1')\n")
    git(repo, "add", "app.py")
    git(repo, "commit", "-q", "-m", "v1")
    claude_home.write_settings({"permissions": {"defaultMode": "acceptEdits"}})

    script = FleetScript(Brain("Director"), WorktreeMember)
    fake_api.script = script
    sock = e2e_tmux.socket_path
    dpane = e2e_tmux.new_window(["cat"], cwd=repo)
    director = (sock, dpane)
    F, D = cafleet(e2e_env, "fleet", "create", pane=director, cwd=repo).stdout.splitlines()[:2]
    diag = lambda: diagnostics(e2e_tmux, fake_api, script.brains())  # noqa: E731

    ids = {}
    for name in ("alice", "bob"):
        out = cafleet_json(e2e_env, "member", "create", "--name", name, "--description", "edits app.py",
                           "--coding-agent", "claude", "--worktree", fleet_id=F, pane=director, cwd=repo)
        ids[name] = out["agent_id"]
        assert out["worktree"]["branch"] == f"cafleet/{name}"
        assert out["worktree"]["path"] == str(repo.parent / "proj.cafleet-worktrees" / f"cafleet-{name}")
    brains = {}
    for name in ids:
        brains[name] = wait_until(lambda: script.members.get(name), timeout=60,
                                  what=f"{name}'s first request (a trust dialog would stop it)", on_fail=diag)
        brains[name].wait_note("ready-sent", timeout=40, on_fail=diag)
        path, branch, base, origin = brains[name].last("worktree")
        assert (path, branch, base, origin) == (str(repo.parent / "proj.cafleet-worktrees" / f"cafleet-{name}"),
                                               f"cafleet/{name}", "main", str(repo))
        # the plugin's SessionStart hook says it too (what a /clear or compaction keeps)
        assert f"You work in your own git worktree {path} on branch {branch}" in brains[name].last("context")
    rows = {r["name"]: r for r in cafleet_json(e2e_env, "member", "list", fleet_id=F)}
    panes = {name: rows[name]["pane_id"] for name in ids}

    for name, M in ids.items():
        cafleet(e2e_env, "--fleet-id", F, "message", "send", "--agent-id", D, "--to", M, "--text",
                f"edit: print('{name} was here')", pane=director)
    # each member asks for its commit; the Director runs it in that member's pane
    asked = {}
    for name, M in ids.items():
        asked[name] = wait_until(lambda: next((t for t in inbox(e2e_env, F, D)
                                               if t["sender_agent_id"] == M and t["body"].startswith("please run: ")),
                                              None),
                                 timeout=60, what=f"{name}'s request to commit", on_fail=diag)
    for name, M in ids.items():
        assert brains[name].last("commit-try").is_error  # the member hook routed it here
        command = asked[name]["body"].removeprefix("please run: ")
        assert command == f"git commit -qam '{name} edit'"
        wait_until(lambda: "esc to interrupt" not in e2e_tmux.capture(panes[name], history=5).lower(), timeout=30,
                   what=f"{name}'s turn to end", on_fail=diag)
        cafleet(e2e_env, "--fleet-id", F, "member", "exec", "--member-id", M, command, pane=director)
        cafleet(e2e_env, "--fleet-id", F, "message", "ack", "--agent-id", D, "--task-id", asked[name]["task_id"],
                pane=director)
    for name in ids:
        wait_until(lambda: git(repo, "log", "-1", "--format=%s", f"cafleet/{name}") == f"{name} edit",
                   timeout=30, what=f"{name}'s commit", on_fail=diag)

    # both branches hold their own version of the same file; the main worktree is untouched
    assert git(repo, "show", "cafleet/alice:app.py") == "print('alice was here')"
    assert git(repo, "show", "cafleet/bob:app.py") == "print('bob was here')"
    assert (repo / "app.py").read_text() == "print('v1')\n"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    listed = {r["name"]: r["worktree"] for r in cafleet_json(e2e_env, "member", "list", fleet_id=F)}
    assert {n: (w["ahead"], w["dirty"]) for n, w in listed.items()} == {"alice": (1, False), "bob": (1, False)}
    problems = [f"{n}: a prompt in its pane" for n, p in panes.items()
                if DIALOG_MARK in e2e_tmux.capture(p, history=60)]

    # the Director merges alice's branch
    git(repo, "merge", "-q", "--no-edit", "cafleet/alice")
    assert (repo / "app.py").read_text() == "print('alice was here')\n"

    for name, M in ids.items():
        out = cafleet(e2e_env, "--fleet-id", F, "member", "delete", "--member-id", M, pane=director).stdout
        assert f"member {M} deleted (exited)" in out, out
        assert f"branch cafleet/{name} kept" in out, out  # clean: worktree removed, branch kept
    assert not (repo.parent / "proj.cafleet-worktrees").exists()
    out = cafleet(e2e_env, "fleet", "delete", F, pane=director).stdout.splitlines()
    assert out[1:] == [f"branch cafleet/bob (member bob, 1 commit(s) ahead) is not merged into main in {repo}"], out
    assert sorted(git(repo, "branch", "--format=%(refname:short)").split()) == ["cafleet/alice", "cafleet/bob", "main"]
    assert not problems, problems


