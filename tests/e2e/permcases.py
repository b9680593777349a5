"""Run a list of Bash commands through the real claude and report which ones actually ran.

The fake model emits one Bash tool_use per command, in order, each after the previous
tool_result; a stub ``cafleet`` on PATH appends its argv (JSON) to ``$STUB_LOG``. A command
"ran" when the stub logged it; side effects (``touch <file>``) are checked by the caller.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from fakeapi import Reply

STUB = """#!/bin/sh
# stub cafleet for e2e permission tests: record argv, print a marker
exec python3 - "$@" <<'PY'
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("STUB-RAN " + " ".join(sys.argv[1:]))
PY
"""


def make_stub(bin_dir: Path, name: str = "cafleet") -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    p = bin_dir / name
    p.write_text(STUB)
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return p


def read_log(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@dataclass
class Outcome:
    command: str
    is_error: bool
    text: str
    stub_argv: list[list[str]]  # argv lines the stub logged while this command ran

    @property
    def ran(self) -> bool:
        return bool(self.stub_argv)


class CommandRunner:
    """A fake-API script that runs ``commands`` one by one after a prompt ``trigger``."""

    def __init__(self, commands: list[str], log: Path, trigger: str = "RUN-CASES"):
        self.commands = list(commands)
        self.log = log
        self.trigger = trigger
        self.outcomes: list[Outcome] = []
        self._i = 0
        self._seen = 0
        self._lock = threading.Lock()
        self.done = threading.Event()

    def __call__(self, req):
        with self._lock:
            results = req.latest_tool_results()
            if results and 0 < self._i <= len(self.commands) and len(self.outcomes) < self._i:
                r = results[0]
                lines = read_log(self.log)
                new, self._seen = lines[self._seen:], len(lines)
                self.outcomes.append(Outcome(self.commands[self._i - 1], r.is_error, r.text, new))
            elif not results and self.trigger not in req.latest_user_text():
                return None
            if self._i < len(self.commands):
                cmd = self.commands[self._i]
                self._i += 1
                return Reply.bash(cmd, description=f"case {self._i}")
            self.done.set()
            return Reply.say("ALL-CASES-DONE")


def table(outcomes: list[Outcome]) -> str:
    return "\n".join(f"{'RAN ' if o.ran else 'DENY'} err={int(o.is_error)} {o.command!r} -> "
                     f"{o.text[:100]!r}" for o in outcomes)


def env_for(log: Path) -> dict[str, str]:
    return {"STUB_LOG": str(log)}


def pwned(dirpath: Path, tag: str) -> Path:
    return dirpath / f"pwned-{tag}"


def exists(p: os.PathLike) -> bool:
    return os.path.exists(p)
