"""A copy of the working tree as a user's clone would have it, for plugin installs in tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clean_copy(dst: Path, src: Path = REPO) -> Path:
    """Copy only what git would ship (tracked + untracked-not-ignored files) from `src` to
    `dst`; returns `dst`. `claude plugin install` from a directory marketplace copies the whole
    folder into ~/.claude/plugins/cache, gitignored files included
    (anthropics/claude-code#93423): from a working tree with `.e2e-tools/` that is 1.7 GB and
    ~7 s per install."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=src,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        s = src / rel
        if s.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, dst / rel)
    return dst
