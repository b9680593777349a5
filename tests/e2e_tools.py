"""Where the real coding-agent CLIs for the tests live: outside the repository tree.

``tests/e2e/install-tools.sh`` installs the pinned claude / codex / opencode from the npm
registry into :func:`tools_root` (``$CAFLEET_E2E_TOOLS``, else
``${XDG_CACHE_HOME:-~/.cache}/cafleet/e2e-tools``), so a checkout stays small and
``claude plugin install`` from it copies no node_modules (anthropics/claude-code#93423: a
directory marketplace copies git-ignored files too). Every test finds a binary here, else on PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: The versions the e2e tests are checked against (current releases on 2026-12-01).
PINS = ("@anthropic-ai/claude-code@2.1.332", "@openai/codex@0.171.0", "opencode-ai@1.18.33")


def tools_root() -> Path:
    """The install prefix (holds ``node_modules/.bin``); may not exist yet."""
    env = os.environ.get("CAFLEET_E2E_TOOLS")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "cafleet" / "e2e-tools"


def tools_bin() -> Path | None:
    """``<tools_root>/node_modules/.bin`` (or ``$CAFLEET_E2E_TOOLS`` itself when it is a .bin
    dir) if it holds any of the three CLIs, else None."""
    root = tools_root()
    for c in (root / "node_modules" / ".bin", root):
        if c.is_dir() and any((c / b).exists() for b in ("claude", "codex", "opencode")):
            return c
    return None


def find_tool(name: str) -> str | None:
    """Absolute path of the CLI ``name`` (claude, codex, opencode): the installed tools first,
    then PATH; None when neither has it."""
    d = tools_bin()
    if d is not None and (d / name).exists():
        return str(d / name)
    return shutil.which(name)


SKIP_REASON = ("not installed: run tests/e2e/install-tools.sh (installs into "
               "${XDG_CACHE_HOME:-~/.cache}/cafleet/e2e-tools, or $CAFLEET_E2E_TOOLS), or put it on PATH")
