"""A git worktree per member: `member create --worktree`, and what list, show and delete do
with it.

A member spawned with `--worktree` works in its own checkout on a new branch, so parallel
members never overwrite each other's files or see each other's half-done edits. The
Director merges their branches itself (with git, under its normal permission prompts);
cafleet creates worktrees, reports on them, removes clean ones, and never deletes a branch
or discards uncommitted work.

Where worktrees live: `<parent>/<name>.cafleet-worktrees/<branch with / as ->`, next to the
working tree `<parent>/<name>` they are made from (`git rev-parse --show-toplevel` of the
Director's cwd or `--repo`). Outside that working tree, so they never show up as its
untracked files and its tools (pytest, grep) never walk into them. Trust: Claude Code
2.1.332 and codex 0.171.0 both started in such a worktree without a trust dialog when only
the repository was trusted (they resolve a linked worktree to its main repository; an
untrusted directory did get the dialog) — observed here, offline, see
docs/ARCHITECTURE.md "Worktrees".

git runs by argv (never a shell string) with `GIT_TERMINAL_PROMPT=0` and `LC_ALL=C`.
Errors: `CafleetError` (git missing or failing, not a repository, no commits), `UsageError`
(a `--branch` name git refuses, a `--base` that is not a commit, a `--repo` that is not a
directory), `Conflict` (the branch exists).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from cafleet.errors import CafleetError, Conflict, UsageError

GIT_TIMEOUT = 60.0
"""Seconds one git command may take (a large checkout is the slow one)."""
DIR_SUFFIX = ".cafleet-worktrees"
BRANCH_PREFIX = "cafleet/"


# ---------------------------------------------------------------- git


def git(args: list[str], cwd: str, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run `git ARGS` in `cwd`; returns the completed process (text). With `check`, a
    non-zero exit raises `CafleetError` carrying git's message. Raises `CafleetError` when
    git is not installed or takes longer than `GIT_TIMEOUT`."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):  # a caller's hook env must not redirect us
        env.pop(k, None)
    try:
        p = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        if not os.path.isdir(cwd):
            raise CafleetError(f"{cwd} does not exist (needed to run `git {' '.join(args)}`)") from None
        raise CafleetError("`git` is not on PATH; --worktree needs git") from None
    except subprocess.TimeoutExpired:
        raise CafleetError(f"`git {' '.join(args)}` in {cwd} took longer than {GIT_TIMEOUT:g} s") from None
    if check and p.returncode != 0:
        raise CafleetError(f"`git {' '.join(args)}` failed in {cwd}: {_first_line(p.stderr)}")
    return p


def _first_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return "; ".join(lines[:3]) or "(no message)"


def _ok(args: list[str], cwd: str) -> bool:
    return git(args, cwd, check=False).returncode == 0


def _out(args: list[str], cwd: str) -> str:
    return git(args, cwd).stdout.strip()


def _commit_of(ref: str, repo: str) -> str | None:
    p = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], repo, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def _branch_exists(branch: str, repo: str) -> bool:
    return _ok(["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], repo)


# ---------------------------------------------------------------- plan and create


@dataclass(frozen=True)
class Plan:
    """A worktree about to be made: absolute `repo` (the working tree it comes from) and
    `path`, the new `branch`, `base` (the ref as named) and `base_commit` (its sha)."""

    repo: str
    path: str
    branch: str
    base: str
    base_commit: str


def slug(name: str) -> str:
    """A member name as a branch/directory word: lowercase ASCII letters, digits, `-`
    (`"Parser Fixer #2"` -> `parser-fixer-2`); "member" if nothing is left."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    return s or "member"


def plan(name: str, *, repo: str | None = None, branch: str | None = None, base: str | None = None) -> Plan:
    """Check everything `create` needs and choose the branch and path; touches nothing.

    `repo`: any directory inside the repository's working tree (default: the cwd).
    `branch`: the new branch (default `cafleet/<slug(name)>`, with `-2`, `-3` … when taken;
    a given name that exists is refused). `base`: the ref to start from (default the
    branch checked out in `repo`, or its commit when HEAD is detached).
    """
    start = os.path.abspath(repo or os.getcwd())
    if not os.path.isdir(start):
        raise UsageError(f"--repo {start} is not a directory")
    p = git(["rev-parse", "--show-toplevel"], start, check=False)
    if p.returncode != 0:
        raise CafleetError(f"{start} is not inside a git working tree, so --worktree has nothing to branch "
                           "from; run it from the repository (or pass --repo PATH)")
    top = os.path.realpath(p.stdout.strip())
    if _commit_of("HEAD", top) is None:
        raise CafleetError(f"the repository at {top} has no commits yet; a worktree needs a commit to start "
                           "from — commit something first")
    if base is None:
        head = git(["symbolic-ref", "--quiet", "--short", "HEAD"], top, check=False)
        base = head.stdout.strip() if head.returncode == 0 else _out(["rev-parse", "HEAD"], top)
    base_commit = _commit_of(base, top)
    if base_commit is None:
        raise UsageError(f"--base {base!r} is not a commit in {top}")
    if branch is not None:
        if not _ok(["check-ref-format", "--branch", branch], top) or branch.startswith("-"):
            raise UsageError(f"--branch {branch!r} is not a valid branch name")
        if _branch_exists(branch, top):
            raise Conflict(f"branch {branch!r} already exists in {top}; cafleet never reuses or deletes "
                           "branches — pick another --branch")
    else:
        stem = BRANCH_PREFIX + slug(name)
        branch, n = stem, 1
        while _branch_exists(branch, top):
            n += 1
            branch = f"{stem}-{n}"
    home = os.path.join(os.path.dirname(top), os.path.basename(top) + DIR_SUFFIX)
    leaf = branch.replace("/", "-")
    path, n = os.path.join(home, leaf), 1
    while os.path.lexists(path):
        n += 1
        path = os.path.join(home, f"{leaf}-{n}")
    return Plan(repo=top, path=path, branch=branch, base=base, base_commit=base_commit)


def create(p: Plan) -> None:
    """`git worktree add -b BRANCH PATH BASE_COMMIT` (from the commit, so a remote-tracking
    base sets no upstream), after `hide_from_enclosing`. Raises `CafleetError`; on failure
    nothing is left behind (an exclude line already written stays: it is inert)."""
    try:
        hide_from_enclosing(os.path.dirname(p.path))
        git(["worktree", "add", "--quiet", "-b", p.branch, "--", p.path, p.base_commit], p.repo)
    except BaseException:
        undo(p)
        raise


def hide_from_enclosing(home: str) -> str | None:
    """Keep the worktrees' directory `home` from showing up as untracked in a working tree
    that encloses it: the repository is a submodule (its sibling directory lies in the
    superproject) or its parent directory is itself a repository. Appends `/<home relative
    to that tree>/` to that repository's `info/exclude` (local, never committed — gitignore(5))
    unless the line is there. Returns the exclude file written, or None when nothing encloses
    `home` (the usual case)."""
    parent = os.path.dirname(home)
    if not os.path.isdir(parent):
        return None
    p = git(["rev-parse", "--show-toplevel", "--git-path", "info/exclude"], parent, check=False)
    if p.returncode != 0:
        return None
    top, exclude = p.stdout.splitlines()[:2]
    exclude = os.path.join(parent, exclude)  # relative to `parent` unless absolute
    rel = os.path.relpath(home, os.path.realpath(top)).replace(os.sep, "/")
    line = "/" + re.sub(r"([\\*?\[\]!#])", r"\\\1", rel) + "/"
    try:
        with open(exclude, encoding="utf-8") as fh:
            present = line in fh.read().splitlines()
    except FileNotFoundError:
        present = False
    if not present:
        os.makedirs(os.path.dirname(exclude), exist_ok=True)
        with open(exclude, "a", encoding="utf-8") as fh:
            fh.write(f"# cafleet member worktrees (cafleet/worktrees.py)\n{line}\n")
    return exclude


def undo(p: Plan) -> list[str]:
    """Roll back a `create` whose member never started: remove the worktree (it holds
    nothing but the checkout), and delete the branch while it still points at
    `base_commit` (a branch that gained a commit is kept). Best effort, never raises;
    returns what could not be undone, as sentences."""
    left = []
    try:
        if os.path.lexists(p.path):
            r = git(["worktree", "remove", "--force", "--force", p.path], p.repo, check=False)
            if r.returncode != 0:
                left.append(f"worktree {p.path} ({_first_line(r.stderr)})")
        git(["worktree", "prune"], p.repo, check=False)
        if _branch_exists(p.branch, p.repo):
            if _commit_of(f"refs/heads/{p.branch}", p.repo) == p.base_commit:
                r = git(["branch", "-D", "--", p.branch], p.repo, check=False)
                if r.returncode != 0:
                    left.append(f"branch {p.branch} ({_first_line(r.stderr)})")
            else:
                left.append(f"branch {p.branch} (it has commits; kept)")
        _rmdir_if_empty(os.path.dirname(p.path))
    except BaseException as e:  # noqa: BLE001 - a rollback must not mask the failure it cleans up
        left.append(f"worktree {p.path} ({e})")
    return left


def _rmdir_if_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def member_note(p: Plan) -> str:
    """What a member is told about its worktree (appended to its identity prompt)."""
    return (f"You work in your own git worktree {p.path} on branch {p.branch}, made from {p.base} "
            f"of {p.repo}. Stay in it. When your work is done, commit it on {p.branch} (if you may not run "
            "git commit, send the Director the exact command to run), then report; do not switch branches, "
            "merge, rebase or push: the Director merges your branch.")


# ---------------------------------------------------------------- status and removal


def status(row: dict) -> dict:
    """Where a recorded worktree stands: `{path, branch, base, repo, present, dirty,
    changes, ahead}`. `present`: the directory exists; `dirty`: it has uncommitted changes
    (staged, unstaged or untracked — `git status --porcelain`), None when absent; `changes`:
    those porcelain lines; `ahead`: commits on `branch` not in `base` (`base_commit` when
    `base` no longer resolves), None when the branch is gone. Two git calls (three when the
    base's name is gone). Never raises for a worktree or branch the user removed; git
    itself missing is `CafleetError`."""
    out = {k: row[k] for k in ("path", "branch", "base", "repo")}
    out.update(present=os.path.isdir(row["path"]), dirty=None, changes=[], ahead=None)
    if out["present"]:
        # --no-optional-locks: no index refresh written, so a member's own `git add` never
        # meets our index.lock (git(1), "--no-optional-locks")
        p = git(["--no-optional-locks", "status", "--porcelain=v1", "--untracked-files=all"], row["path"],
                check=False)
        if p.returncode == 0:
            out["changes"] = [x for x in p.stdout.splitlines() if x.strip()]
            out["dirty"] = bool(out["changes"])
    repo = row["repo"] if os.path.isdir(row["repo"]) else (row["path"] if out["present"] else None)
    for base in (row["base"], row["base_commit"]) if repo else ():  # the name, else the recorded commit
        p = git(["rev-list", "--count", f"{base}..refs/heads/{row['branch']}", "--"], repo, check=False)
        if p.returncode == 0:
            out["ahead"] = int(p.stdout.strip() or 0)
            break
    return out


def merged(row: dict) -> bool | None:
    """Whether the member's branch is merged into its base (`git merge-base
    --is-ancestor`); None when the repository or the branch is gone."""
    repo = row["repo"]
    if not os.path.isdir(repo) or not _branch_exists(row["branch"], repo):
        return None
    base = row["base"] if _commit_of(row["base"], repo) else row["base_commit"]
    r = git(["merge-base", "--is-ancestor", f"refs/heads/{row['branch']}", base], repo, check=False)
    return r.returncode == 0


def remove_if_clean(row: dict) -> dict:
    """Remove a member's worktree when it has nothing uncommitted; keep it otherwise.

    Uses `git worktree remove` without `--force`, so git itself refuses a dirty worktree or
    one with initialised submodules. The branch is never touched. Returns `{path, branch,
    removed, changes, reason}`: `removed` True (or the directory was already gone), else
    `changes` lists what is uncommitted and `reason` says why it stays."""
    st = status(row)
    out = {"path": row["path"], "branch": row["branch"], "removed": False, "changes": st["changes"], "reason": None}
    repo = row["repo"] if os.path.isdir(row["repo"]) else None
    if not st["present"]:
        if repo:
            git(["worktree", "prune"], repo, check=False)
        out["removed"] = True
        return out
    if st["dirty"] is None:
        out["reason"] = "git could not read its status"
    elif st["dirty"]:
        out["reason"] = f"{len(st['changes'])} uncommitted change(s)"
    elif repo is None:
        out["reason"] = f"its repository {row['repo']} is gone"
    else:
        r = git(["worktree", "remove", row["path"]], repo, check=False)
        if r.returncode == 0:
            out["removed"] = True
            _rmdir_if_empty(os.path.dirname(row["path"]))
        else:
            out["reason"] = f"git would not remove it: {_first_line(r.stderr)}"
    return out


def kept_text(r: dict, limit: int = 10) -> str:
    """The sentence(s) `member delete` / `fleet delete` print for a kept worktree."""
    lines = [f"worktree {r['path']} (branch {r['branch']}) kept: {r['reason']}"]
    lines += [f"  {c}" for c in r["changes"][:limit]]
    if len(r["changes"]) > limit:
        lines.append(f"  … and {len(r['changes']) - limit} more")
    if r["changes"]:
        lines.append(f"  commit or discard them, then `git worktree remove {r['path']}` (or run fleet delete again)")
    return "\n".join(lines)


# ---------------------------------------------------------------- member lifecycle


def create_member(broker, fleet_id: str, *, name: str, repo: str | None = None, branch: str | None = None,
                  base: str | None = None, **create_args) -> dict:
    """`member create --worktree`: plan (nothing is created if that fails), add the
    worktree, then `members.create` with the pane's `cwd` in it, a `workspace` note for the
    prompt, and the `worktrees` row recorded as soon as the agent row exists (so the
    member's first SessionStart hook finds it). A failure anywhere removes the pane and the
    rows (`members.create`'s rollback), then the worktree and the new branch (`undo`).
    Returns the member row plus `worktree` (`status` of the new worktree)."""
    from cafleet import members

    p = plan(name, repo=repo, branch=branch, base=base)
    create(p)

    def record(m: dict) -> None:
        broker.add_worktree(fleet_id, m["agent_id"], repo=p.repo, path=p.path, branch=p.branch, base=p.base,
                            base_commit=p.base_commit)

    try:
        m = members.create(broker, fleet_id, name=name, cwd=p.path, workspace=member_note(p), on_registered=record,
                           **create_args)
    except BaseException as failure:
        left = undo(p)
        if left and isinstance(failure, CafleetError):
            failure.message += "; could not undo: " + "; ".join(left)
        raise
    m["worktree"] = status(broker.worktrees(fleet_id, m["agent_id"])[0])
    return m


LIST_KEYS = ("path", "branch", "base", "present", "dirty", "uncommitted", "ahead")
"""What `member list` carries per worktree: it is read every supervision tick, so the
uncommitted files are a count there and listed only by `member show`."""


def annotate(broker, fleet_id: str, rows: list[dict], *, detail: bool = False) -> list[dict]:
    """Give each member row `worktree` (None without one): `LIST_KEYS` of its `status`
    (`uncommitted` = how many changes), or with `detail` the whole `status` plus
    `uncommitted` and `removed_at`. One DB read; git runs only for worktree members."""
    by_agent = {w["agent_id"]: w for w in broker.worktrees(fleet_id)} if rows else {}
    for r in rows:
        w = by_agent.get(r["agent_id"])
        if w is None:
            r["worktree"] = None
            continue
        st = status(w)
        st.update(uncommitted=len(st["changes"]), removed_at=w["removed_at"])
        r["worktree"] = st if detail else {k: st[k] for k in LIST_KEYS}
    return rows


def after_member_delete(broker, fleet_id: str, member_id: str) -> dict | None:
    """Once a member's pane is gone: remove its worktree if clean (`remove_if_clean`),
    record that, and return the result; None for a member without a worktree."""
    rows = [w for w in broker.worktrees(fleet_id, member_id) if w["removed_at"] is None]
    if not rows:
        return None
    r = remove_if_clean(rows[0])
    if r["removed"]:
        broker.mark_worktree_removed(member_id)
    return r


def after_fleet_delete(broker, fleet_id: str) -> dict:
    """Once every pane of the fleet is gone: remove its members' clean worktrees and list
    the branches not merged into their base. Returns `{worktrees: [remove_if_clean …],
    unmerged: [{agent_id, name, branch, base, repo, ahead}]}`."""
    done, unmerged = [], []
    for w in broker.worktrees(fleet_id):
        if w["removed_at"] is None:
            r = remove_if_clean(w)
            if r["removed"]:
                broker.mark_worktree_removed(w["agent_id"])
            done.append(r)
        if merged(w) is False:
            unmerged.append({"agent_id": w["agent_id"], "name": w["name"], "branch": w["branch"],
                             "base": w["base"], "repo": w["repo"], "ahead": status(w)["ahead"]})
    return {"worktrees": done, "unmerged": unmerged}
