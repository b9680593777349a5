"""The `cafleet` console script: the click-free fast path for the per-tick commands
(`cafleet.fastpath`), else the click CLI (`cafleet.cli`)."""

from __future__ import annotations

import sys


def main() -> None:
    """Run `cafleet` with `sys.argv`; exits with the command's exit code."""
    from cafleet import fastpath

    code = fastpath.run(sys.argv[1:])
    if code is None:
        from cafleet.cli import main as cli_main

        cli_main()  # exits
    sys.exit(code)
