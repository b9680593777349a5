"""`member create --worktree`: a git worktree per member (cafleet/worktrees.py).

Real git repositories in temp dirs, a real private tmux server and stand-in members
(tests/tmux_fleet.py) driven through the real CLI. What a member does in its worktree is done
the way a Director makes a member run a shell command: `member exec` types `! CMD`, and the
stand-in runs it in its pane's cwd, so a commit landing on the member's branch proves the pane
started in its worktree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cafleet import worktrees
from cafleet.errors import CafleetError, Conflict, UsageError

from tmux_fleet import TmuxFleet

GIT_ID = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]


def git(repo, *args, check=True) -> str:
    p = subprocess.run(["git", *GIT_ID, *args], cwd=repo, capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, (args, p.stderr)
    return p.stdout.strip()


def make_repo(path: Path, *, commit=True) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    if commit:
        (path / "app.py").write_text("print('v1')\n")
        git(path, "add", "app.py")
        git(path, "commit", "-q", "-m", "v1")
    return path


def branches(repo) -> list[str]:
    return sorted(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())


def worktree_paths(repo) -> list[str]:
    return [line.split(" ", 1)[1] for line in git(repo, "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")]


@pytest.fixture
def fleet(tmp_path, db_path):
    if shutil.which("tmux") is None or shutil.which("git") is None:
        pytest.skip("needs tmux and git")
    f = TmuxFleet(tmp_path, db_path)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path / "work" / "shop")


def create(fleet, repo, name="Alice", *extra, code=0):
    return fleet.fcli("member", "create", "--name", name, "--description", "edits app.py", "--worktree",
                      "--repo", repo, *extra, "--", "wait", code=code)


def member_exec(fleet, mid, command, done):
    """Have the stand-in member run `command` in its pane and wait until `done()`."""
    fleet.fcli("member", "exec", "--member-id", mid, command)
    fleet.wait(done, f"the member to run {command!r}")


def commit_in_member(fleet, mid, path: Path, text: str):
    before = git(path, "rev-parse", "HEAD")
    id_flags = " ".join(GIT_ID)
    member_exec(fleet, mid, f"echo '{text}' > app.py && git {id_flags} commit -q -am '{text}'",
                lambda: git(path, "rev-parse", "HEAD") != before)


def member_json(fleet, mid=None):
    rows = json.loads(fleet.fcli("--json", "member", "list").stdout)
    return rows if mid is None else next(r for r in rows if r["agent_id"] == mid)


# ---------------------------------------------------------------- create / list / show / delete


def test_create_list_show_and_delete_a_clean_worktree(fleet, repo):
    base = git(repo, "rev-parse", "HEAD")
    out = create(fleet, repo).stdout.splitlines()
    mid = out[0]
    path = repo.parent / "shop.cafleet-worktrees" / "cafleet-alice"
    assert out[2] == f"worktree {path} on branch cafleet/alice (from main): +0 clean"
    # a new branch at the base commit, checked out in its own worktree beside the repository
    assert branches(repo) == ["cafleet/alice", "main"]
    assert git(repo, "rev-parse", "cafleet/alice") == base
    assert worktree_paths(repo) == [str(repo), str(path)]
    assert git(path, "branch", "--show-current") == "cafleet/alice"
    # the pane started there, and the main worktree sees nothing new
    cwd = fleet.tmux("display-message", "-p", "-t", fleet.pane_of(mid), "#{pane_current_path}").stdout.strip()
    assert cwd == str(path)
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    # member list (json and text) and member show
    w = member_json(fleet, mid)["worktree"]
    assert w == {"path": str(path), "branch": "cafleet/alice", "base": "main", "present": True, "dirty": False,
                 "uncommitted": 0, "ahead": 0}
    table = fleet.fcli("member", "list").stdout.splitlines()
    assert table[0].split()[-1] == "BRANCH" and table[1].endswith("cafleet/alice +0 clean")
    shown = json.loads(fleet.fcli("--json", "member", "show", "--member-id", mid).stdout)
    assert shown["agent_id"] == mid and shown["pane_status"] == "alive"
    assert shown["worktree"] == {**w, "repo": str(repo), "changes": [], "removed_at": None}
    # a clean worktree goes with the member; its branch stays
    out = fleet.fcli("member", "delete", "--member-id", mid).stdout.splitlines()
    assert out == [f"member {mid} deleted (exited)", f"worktree {path} removed; branch cafleet/alice kept"]
    assert not path.exists() and not path.parent.exists()
    assert worktree_paths(repo) == [str(repo)] and branches(repo) == ["cafleet/alice", "main"]
    shown = json.loads(fleet.fcli("--json", "member", "show", "--member-id", mid).stdout)
    assert shown["status"] == "deregistered" and shown["worktree"]["present"] is False
    assert shown["worktree"]["removed_at"]


def test_a_dirty_worktree_survives_delete_and_force(fleet, repo):
    mid = create(fleet, repo).stdout.splitlines()[0]
    path = Path(member_json(fleet, mid)["worktree"]["path"])
    commit_in_member(fleet, mid, path, "v2 by alice")
    member_exec(fleet, mid, "echo scratch > notes.txt && echo v3 > app.py", lambda: (path / "notes.txt").exists())
    w = member_json(fleet, mid)["worktree"]
    assert (w["ahead"], w["dirty"], w["uncommitted"]) == (1, True, 2)
    shown = json.loads(fleet.fcli("--json", "member", "show", "--member-id", mid).stdout)["worktree"]
    assert sorted(shown["changes"]) == [" M app.py", "?? notes.txt"]
    assert fleet.fcli("member", "show", "--member-id", mid).stdout.splitlines()[-3:] == [
        f"worktree {path} on branch cafleet/alice (from main): +1 dirty", "   M app.py", "  ?? notes.txt"]
    assert fleet.fcli("member", "list").stdout.splitlines()[1].endswith("cafleet/alice +1 dirty")

    out = fleet.fcli("member", "delete", "--member-id", mid, "--force").stdout.splitlines()
    assert out[0] == f"member {mid} deleted (killed)"
    assert out[1] == f"worktree {path} (branch cafleet/alice) kept: 2 uncommitted change(s)"
    assert out[2:] == ["   M app.py", "  ?? notes.txt",
                       f"  commit or discard them, then `git worktree remove {path}` (or run fleet delete again)"]
    assert (path / "notes.txt").read_text() == "scratch\n" and (path / "app.py").read_text() == "v3\n"
    assert str(path) in worktree_paths(repo)
    # the main worktree never saw any of it
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (repo / "app.py").read_text() == "print('v1')\n"
    # fleet delete: the kept worktree again, and the branch that is not merged
    out = fleet.cafleet("fleet", "delete", fleet.fid).stdout.splitlines()
    assert out[1] == f"worktree {path} (branch cafleet/alice) kept: 2 uncommitted change(s)"
    assert out[-1] == (f"branch cafleet/alice (member Alice, 1 commit(s) ahead) is not merged into main in {repo}")
    assert path.exists()
    # the user commits the rest; fleet delete again removes the now clean worktree
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "rest")
    out = fleet.cafleet("fleet", "delete", fleet.fid).stdout.splitlines()
    assert out == [f"fleet {fleet.fid} was already deleted", f"worktree {path} removed; branch cafleet/alice kept",
                   f"branch cafleet/alice (member Alice, 2 commit(s) ahead) is not merged into main in {repo}"]
    assert not path.exists() and worktree_paths(repo) == [str(repo)]


def test_fleet_delete_lists_only_unmerged_branches_and_removes_clean_worktrees(fleet, repo):
    a = create(fleet, repo, "Alice").stdout.splitlines()[0]
    b = create(fleet, repo, "Bob").stdout.splitlines()[0]
    pa, pb = (Path(member_json(fleet, m)["worktree"]["path"]) for m in (a, b))
    commit_in_member(fleet, a, pa, "alice was here")
    commit_in_member(fleet, b, pb, "bob was here")
    # both edited the same file on their own branch
    assert git(repo, "show", "cafleet/alice:app.py") == "alice was here"
    assert git(repo, "show", "cafleet/bob:app.py") == "bob was here"
    assert (repo / "app.py").read_text() == "print('v1')\n"
    git(repo, "merge", "-q", "--ff-only", "cafleet/alice")  # the Director merges one
    assert member_json(fleet, a)["worktree"]["ahead"] == 0 and member_json(fleet, b)["worktree"]["ahead"] == 1
    data = json.loads(fleet.cafleet("--json", "fleet", "delete", fleet.fid, "--force").stdout)
    assert [u["branch"] for u in data["unmerged"]] == ["cafleet/bob"]
    assert data["unmerged"][0] == {"agent_id": b, "name": "Bob", "branch": "cafleet/bob", "base": "main",
                                   "repo": str(repo), "ahead": 1}
    assert [(w["path"], w["removed"]) for w in data["worktrees"]] == [(str(pa), True), (str(pb), True)]
    assert worktree_paths(repo) == [str(repo)]
    assert branches(repo) == ["cafleet/alice", "cafleet/bob", "main"]


# ---------------------------------------------------------------- names


def test_default_branches_never_clash_and_a_given_one_must_be_new(fleet, repo):
    first = create(fleet, repo, "Worker").stdout.splitlines()[0]
    second = create(fleet, repo, "worker").stdout.splitlines()[0]
    w1, w2 = member_json(fleet, first)["worktree"], member_json(fleet, second)["worktree"]
    assert (w1["branch"], w2["branch"]) == ("cafleet/worker", "cafleet/worker-2")
    assert w1["path"] != w2["path"] and Path(w2["path"]).name == "cafleet-worker-2"
    # a directory already in the way is skipped, not reused
    (repo.parent / "shop.cafleet-worktrees" / "feature-x").mkdir()
    third = create(fleet, repo, "Third", "--branch", "feature/x").stdout.splitlines()[0]
    assert member_json(fleet, third)["worktree"]["path"].endswith("/shop.cafleet-worktrees/feature-x-2")
    ids_before = {r["agent_id"] for r in member_json(fleet)}
    panes_before = fleet.panes()
    p = create(fleet, repo, "Fourth", "--branch", "cafleet/worker", code=1)
    assert p.stderr.startswith("Error: branch 'cafleet/worker' already exists")
    p = create(fleet, repo, "Fifth", "--branch", "main", code=1)
    assert "already exists" in p.stderr
    assert {r["agent_id"] for r in member_json(fleet)} == ids_before and fleet.panes() == panes_before


# ---------------------------------------------------------------- refusals and rollback


def _assert_nothing_created(fleet, repo, branches_before, panes_before):
    assert fleet.rows("SELECT COUNT(*) FROM agents WHERE role = 'member'") == [(0,)]
    assert fleet.rows("SELECT COUNT(*) FROM worktrees") == [(0,)]
    assert fleet.panes() == panes_before
    if repo is not None:
        assert branches(repo) == branches_before
        assert worktree_paths(repo) == [str(repo)]
        assert not (repo.parent / f"{repo.name}.cafleet-worktrees").exists()


@pytest.mark.parametrize("case", ["not a repository", "no commits", "bad base", "bad branch",
                                  "branch without --worktree", "repo is a file"])
def test_refusals_create_nothing(fleet, tmp_path, repo, case):
    target, checked, extra, code = repo, repo, [], 1
    if case == "not a repository":
        target, checked = tmp_path / "plain", None
        target.mkdir()
        message = "is not inside a git working tree"
    elif case == "no commits":
        target = checked = make_repo(tmp_path / "empty", commit=False)
        message = "has no commits yet"
    elif case == "bad base":
        extra, code, message = ["--base", "no-such-ref"], 2, "--base 'no-such-ref' is not a commit"
    elif case == "bad branch":
        extra, code, message = ["--branch", "two..dots"], 2, "is not a valid branch name"
    elif case == "repo is a file":
        target, code, message = repo / "app.py", 2, "is not a directory"
    else:
        message = "--branch only make sense with --worktree"
    before = branches(checked) if checked else None
    panes = fleet.panes()
    if case == "branch without --worktree":
        p = fleet.fcli("member", "create", "--name", "A", "--description", "d", "--branch", "x", "--", "wait", code=2)
    else:
        p = create(fleet, target, "A", *extra, code=code)
    assert p.stderr.startswith("Error: ") and message in p.stderr, p.stderr
    _assert_nothing_created(fleet, checked, before, panes)


def test_a_failed_spawn_rolls_back_worktree_branch_row_and_pane(fleet, repo):
    (fleet.bin / "claude").write_text("#!/bin/sh\necho 'claude: cannot start' >&2\nexit 3\n")
    panes = fleet.panes()
    p = create(fleet, repo, code=1)
    assert "exited" in p.stderr and "the member was not created" in p.stderr, p.stderr
    _assert_nothing_created(fleet, repo, ["main"], panes)


def test_a_missing_backend_leaves_no_worktree(fleet, repo):
    p = fleet.fcli("member", "create", "--name", "A", "--description", "d", "--coding-agent", "opencode",
                   "--worktree", "--repo", repo, env={**fleet.denv, "PATH": f"{fleet.bin}:/usr/bin:/bin"}, code=1)
    assert "not on PATH" in p.stderr
    _assert_nothing_created(fleet, repo, ["main"], fleet.panes())


def test_a_failed_worktree_add_creates_nothing(fleet, repo):
    # a file where the worktrees' directory goes: `git worktree add` cannot create the path
    (repo.parent / "shop.cafleet-worktrees").write_text("in the way\n")
    panes = fleet.panes()
    p = create(fleet, repo, code=1)
    assert p.stderr.startswith("Error: `git worktree add"), p.stderr
    assert fleet.rows("SELECT COUNT(*) FROM agents WHERE role = 'member'") == [(0,)]
    assert fleet.panes() == panes and branches(repo) == ["main"] and worktree_paths(repo) == [str(repo)]


# ---------------------------------------------------------------- submodules


@pytest.fixture
def super_repo(tmp_path) -> Path:
    lib = make_repo(tmp_path / "src" / "lib")
    top = make_repo(tmp_path / "work" / "super")
    git(top, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    git(top, "commit", "-q", "-m", "add lib")
    return top


def test_repository_with_submodules(fleet, super_repo):
    mid = create(fleet, super_repo).stdout.splitlines()[0]
    path = Path(member_json(fleet, mid)["worktree"]["path"])
    assert (path / ".gitmodules").exists() and (path / "lib").is_dir()
    assert member_json(fleet, mid)["worktree"]["dirty"] is False
    out = fleet.fcli("member", "delete", "--member-id", mid).stdout.splitlines()
    assert out[1] == f"worktree {path} removed; branch cafleet/alice kept"
    # a member that checked the submodule out: git will not remove that worktree without
    # --force, and cafleet never forces, so it stays (the submodule's commits live in it)
    mid = create(fleet, super_repo, "Bob").stdout.splitlines()[0]
    path = Path(member_json(fleet, mid)["worktree"]["path"])
    member_exec(fleet, mid, "git -c protocol.file.allow=always submodule update -q --init",
                lambda: (path / "lib" / "app.py").exists())
    fleet.wait(lambda: member_json(fleet, mid)["worktree"]["dirty"] is False, "the checkout to settle")
    out = fleet.fcli("member", "delete", "--member-id", mid).stdout.splitlines()
    assert out[1].startswith(f"worktree {path} (branch cafleet/bob) kept: git would not remove it:"), out
    assert "submodule" in out[1] and (path / "lib" / "app.py").exists()


# ---------------------------------------------------------------- plan, in process


def test_plan_bases_branches_and_paths(tmp_path, repo):
    p = worktrees.plan("Parser Fixer #2", repo=str(repo / "."))
    assert p == worktrees.Plan(repo=str(repo), path=str(repo.parent / "shop.cafleet-worktrees" / "cafleet-parser-fixer-2"),
                               branch="cafleet/parser-fixer-2", base="main", base_commit=git(repo, "rev-parse", "HEAD"))
    sub = repo / "pkg"
    sub.mkdir()
    assert worktrees.plan("x", repo=str(sub)).repo == str(repo)  # any directory inside the working tree
    first = git(repo, "rev-parse", "HEAD")
    (repo / "app.py").write_text("print('v2')\n")
    git(repo, "commit", "-q", "-am", "v2")
    git(repo, "checkout", "-q", "--detach", first)
    p = worktrees.plan("x", repo=str(repo))
    assert (p.base, p.base_commit) == (first, first)  # detached HEAD: its commit
    p = worktrees.plan("x", repo=str(repo), base="main")
    assert (p.base, p.base_commit) == ("main", git(repo, "rev-parse", "main"))
    assert worktrees.slug("¿¿¿") == "member"
    with pytest.raises(UsageError):
        worktrees.plan("x", repo=str(repo), branch="-rf")
    with pytest.raises(Conflict):
        worktrees.plan("x", repo=str(repo), branch="main")
    with pytest.raises(CafleetError, match="not inside a git working tree"):
        worktrees.plan("x", repo=str(tmp_path))


def test_plan_from_a_linked_worktree_puts_members_beside_it(tmp_path, repo):
    linked = repo.parent / "shop-feature"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(linked))
    p = worktrees.plan("m", repo=str(linked))
    assert (p.repo, p.base) == (str(linked), "feature")
    assert p.path == str(repo.parent / "shop-feature.cafleet-worktrees" / "cafleet-m")


# ---------------------------------------------------------------- broker rows


def test_worktree_rows_outlive_the_member_but_not_a_rolled_back_one(db_path):
    from cafleet.broker import Broker

    with Broker.open() as b:
        f = b.create_fleet("wt")
        fid = f["fleet_id"]
        kept = b.register_agent(fid, "kept", "d", role="member", parent_agent_id=f["director_agent_id"])
        gone = b.register_agent(fid, "gone", "d", role="member", parent_agent_id=f["director_agent_id"])
        for m in (kept, gone):
            b.add_worktree(fid, m["agent_id"], repo="/r", path=f"/r.cafleet-worktrees/{m['name']}",
                           branch=f"cafleet/{m['name']}", base="main", base_commit="0" * 40)
        with pytest.raises(CafleetError):  # one worktree per member
            b.add_worktree(fid, kept["agent_id"], repo="/r", path="/x", branch="x", base="main", base_commit="0" * 40)
        b.deregister_agent(fid, kept["agent_id"])
        b.mark_worktree_removed(kept["agent_id"])
        b.delete_agent_row(fid, gone["agent_id"])  # the rollback of a failed create
        rows = b.worktrees(fid)
        assert [(r["name"], r["branch"], bool(r["removed_at"])) for r in rows] == [("kept", "cafleet/kept", True)]
        assert b.worktrees(fid, gone["agent_id"]) == []
        other = b.create_fleet("other")
        assert b.worktrees(other["fleet_id"]) == []


def test_session_start_gives_a_member_its_worktree_back(fleet, repo):
    from cafleet import sessionhooks

    mid = create(fleet, repo).stdout.splitlines()[0]
    path = repo.parent / "shop.cafleet-worktrees" / "cafleet-alice"
    environ = {"TMUX": f"{fleet.socket},0,0", "TMUX_PANE": fleet.pane_of(mid), "CAFLEET_DB": str(fleet.db),
               "CAFLEET_AGENT_ID": mid}
    text = sessionhooks.session_start({"source": "clear", "session_id": "s"}, environ)["hookSpecificOutput"]["additionalContext"]
    assert f"You work in your own git worktree {path} on branch cafleet/alice (made from main)" in text
    plain = fleet.add_member("Plain")
    environ["TMUX_PANE"] = fleet.pane_of(plain)
    text = sessionhooks.session_start({"source": "clear", "session_id": "s"}, environ)["hookSpecificOutput"]["additionalContext"]
    assert "worktree" not in text and '"Plain"' in text


@pytest.mark.parametrize("step", ["add_worktree", "set_placement"])
def test_a_db_fault_before_or_after_the_spawn_takes_everything_back(fleet, repo, monkeypatch, step):
    """Recording the worktree (before the pane starts) or the placement (after it started)
    fails with an injected DB fault: the pane, the rows, the worktree and the new branch go."""
    from cafleet.broker import Broker

    monkeypatch.setenv("PATH", fleet.env["PATH"])  # the stand-in `claude`
    panes = fleet.panes()
    with Broker.open(str(fleet.db)) as b:
        def refuse(*args, **kwargs):
            raise CafleetError("disk I/O error (injected)")

        monkeypatch.setattr(b, step, refuse)
        with pytest.raises(CafleetError, match="injected"):
            worktrees.create_member(b, fleet.fid, name="Alice", repo=str(repo), description="d", prompt="wait")
    _assert_nothing_created(fleet, repo, ["main"], panes)


def test_a_repository_inside_another_keeps_that_one_clean_too(fleet, super_repo):
    """A submodule's sibling directory lies in the superproject's working tree: the worktrees
    are listed in the superproject's info/exclude, so its status stays clean."""
    git(super_repo, "-c", "protocol.file.allow=always", "submodule", "update", "-q", "--init")
    lib = super_repo / "lib"
    mid = create(fleet, lib).stdout.splitlines()[0]
    path = Path(member_json(fleet, mid)["worktree"]["path"])
    assert path == super_repo / "lib.cafleet-worktrees" / "cafleet-alice" and path.is_dir()
    assert git(super_repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(lib, "status", "--porcelain", "--untracked-files=all") == ""
    exclude = Path(git(super_repo, "rev-parse", "--path-format=absolute", "--git-path", "info/exclude"))
    assert exclude.read_text().splitlines().count("/lib.cafleet-worktrees/") == 1
    create(fleet, lib, "Bob")  # a second member: no second line
    assert exclude.read_text().splitlines().count("/lib.cafleet-worktrees/") == 1
    assert git(super_repo, "status", "--porcelain", "--untracked-files=all") == ""


def test_hide_from_enclosing_escapes_and_skips_a_plain_parent(tmp_path):
    outer = make_repo(tmp_path / "outer")
    home = outer / "we[i]rd *name#.cafleet-worktrees"
    exclude = worktrees.hide_from_enclosing(str(home))
    home.mkdir()
    (home / "f").write_text("x")
    assert exclude and git(outer, "status", "--porcelain", "--untracked-files=all") == ""
    (tmp_path / "plain").mkdir()
    assert worktrees.hide_from_enclosing(str(tmp_path / "plain" / "x.cafleet-worktrees")) is None
    assert worktrees.hide_from_enclosing(str(tmp_path / "nowhere" / "x.cafleet-worktrees")) is None


def test_status_and_merged_when_names_go_away(tmp_path, repo):
    git(repo, "branch", "topic")
    p = worktrees.plan("m", repo=str(repo), base="topic")
    worktrees.create(p)
    row = {"repo": p.repo, "path": p.path, "branch": p.branch, "base": p.base, "base_commit": p.base_commit}
    (Path(p.path) / "app.py").write_text("print('m')\n")
    git(p.path, "commit", "-q", "-am", "m")
    assert (worktrees.status(row)["ahead"], worktrees.merged(row)) == (1, False)
    git(repo, "branch", "-D", "topic")  # the base's name is gone: the recorded commit counts
    assert (worktrees.status(row)["ahead"], worktrees.merged(row)) == (1, False)
    git(repo, "merge", "-q", "--ff-only", p.branch)
    git(repo, "branch", "topic", "main")
    assert (worktrees.status(row)["ahead"], worktrees.merged(row)) == (0, True)
    assert worktrees.remove_if_clean(row)["removed"] and not Path(p.path).exists()
    git(repo, "branch", "-D", p.branch)  # the user deleted the branch
    st = worktrees.status(row)
    assert (st["present"], st["dirty"], st["ahead"], worktrees.merged(row)) == (False, None, None, None)
