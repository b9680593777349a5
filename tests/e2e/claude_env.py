"""Run the real Claude Code offline in a private tmux server against tests/e2e/fakeapi.py.

Facts this relies on are in /work/shared/REAL-CLIENT.md (checked with Claude Code 2.1.330 and 2.1.332,
tmux 3.3a). Pieces:

- :func:`find_claude` / :func:`tools_dir`: locate the npm-installed CLIs (tests/e2e_tools.py).
- :class:`ClaudeHome`: a temp HOME with onboarding done, the dummy key approved, trusted
  project dirs, and auto mode disabled (so claude starts in manual mode).
- :func:`claude_env`: the environment for claude (offline, no retries storm, PATH).
- :class:`TmuxServer`: a private ``tmux -L <unique>`` server started with that environment (so
  every pane inherits it), killed by socket at teardown.
- :class:`ClaudePane`: one claude in one pane: wait for its input box, type prompts, wait for
  pane text or fake-API requests, exit.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import e2e_tools  # noqa: E402

API_KEY = "sk-ant-dummy-e2e-key-0123456789"

#: Env prefixes/names never leaked from the outer environment into claude's panes.
_SCRUB_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "CLAUDECODE", "CAFLEET_", "OPENAI_", "OPENCODE",
                   "CODEX_", "TMUX", "AWS_", "GOOGLE_", "VERTEX", "MCP_")

#: The input box: a horizontal rule line, then a line starting with the prompt glyph.
INPUT_BOX_RE = re.compile(r"─{20,}\s*\n❯")


# --------------------------------------------------------------------------- locating CLIs


def tools_dir() -> Path | None:
    """The installed CLIs' ``.bin`` dir (tests/e2e_tools.py), or None."""
    return e2e_tools.tools_bin()


def find_tool(name: str) -> str | None:
    return e2e_tools.find_tool(name)


def find_claude() -> str | None:
    return find_tool("claude")


def python_bin_dirs() -> list[str]:
    """Where ``cafleet`` (console script) and this python live."""
    out = []
    for d in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        if d and d not in out:
            out.append(d)
    return out


# --------------------------------------------------------------------------- HOME + env


@dataclass
class ClaudeHome:
    """A temp HOME for claude. Call :meth:`trust` for every dir a claude will start in,
    *before* starting it (claude rewrites ``.claude.json`` itself)."""

    path: Path
    api_key: str = API_KEY

    @property
    def claude_json(self) -> Path:
        return self.path / ".claude.json"

    @property
    def settings_path(self) -> Path:
        return self.path / ".claude" / "settings.json"

    def create(self, trusted: Iterable[os.PathLike | str] = ()) -> "ClaudeHome":
        (self.path / ".claude").mkdir(parents=True, exist_ok=True)
        data = {
            "hasCompletedOnboarding": True,
            "theme": "dark",
            "customApiKeyResponses": {"approved": [self.api_key[-20:]], "rejected": []},
            "projects": {},
            # quieter UI; harmless if ignored
            "hasSeenTasksHint": True,
            "autoUpdates": False,
        }
        self.claude_json.write_text(json.dumps(data, indent=2))
        self.write_settings({"permissions": {"disableAutoMode": "disable"}})
        for d in trusted:
            self.trust(d)
        return self

    def trust(self, directory: os.PathLike | str) -> None:
        data = json.loads(self.claude_json.read_text())
        key = os.path.realpath(directory)
        proj = data.setdefault("projects", {}).setdefault(key, {})
        proj["hasTrustDialogAccepted"] = True
        proj.setdefault("allowedTools", [])
        self.claude_json.write_text(json.dumps(data, indent=2))

    def read_settings(self) -> dict[str, Any]:
        try:
            return json.loads(self.settings_path.read_text())
        except (OSError, ValueError):
            return {}

    def write_settings(self, settings: Mapping[str, Any], *, merge: bool = True) -> None:
        """Update the user settings (``~/.claude/settings.json``): top-level keys replaced,
        ``permissions`` merged key by key (claude itself adds ``extraKnownMarketplaces`` and
        ``enabledPlugins`` here on ``plugin install``). ``disableAutoMode`` is always kept."""
        s = self.read_settings() if merge else {}
        new = json.loads(json.dumps(settings))
        perms = {**s.get("permissions", {}), **new.pop("permissions", {})}
        s.update(new)
        perms.setdefault("disableAutoMode", "disable")
        s["permissions"] = perms
        self.settings_path.parent.mkdir(parents=True, exist_ok=True)
        self.settings_path.write_text(json.dumps(s, indent=2))


def claude_env(home: ClaudeHome, api_url: str, *, path_prepend: Iterable[str] = (),
               extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for claude and its panes: outer env scrubbed of ANTHROPIC_*, CLAUDE_*,
    CAFLEET_*, TMUX*, … then the offline settings of REAL-CLIENT.md. PATH is
    ``path_prepend + [tools .bin] + python bin dirs + outer PATH``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SCRUB_PREFIXES) and k not in ("PYTEST_CURRENT_TEST",)}
    path = list(path_prepend)
    td = tools_dir()
    if td is not None:
        path.append(str(td))
    path += python_bin_dirs()
    path += [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in path]
    env.update({
        "HOME": str(home.path),
        "ANTHROPIC_BASE_URL": api_url,
        "ANTHROPIC_API_KEY": home.api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        "CLAUDE_CODE_MAX_RETRIES": "2",
        "PATH": os.pathsep.join(path),
        "SHELL": "/bin/bash",
        "TERM": "xterm-256color",
        "LANG": env.get("LANG") or "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    })
    for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env.pop(k, None)
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------- waiting


def wait_until(fn: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1,
               on_fail: Callable[[], str] | None = None) -> Any:
    """Poll ``fn()`` until truthy; return its value. On timeout: AssertionError naming
    ``what`` plus ``on_fail()`` (e.g. a pane capture)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            extra = ""
            if on_fail is not None:
                try:
                    extra = on_fail()
                except Exception as e:  # noqa: BLE001
                    extra = f"(on_fail raised {e!r})"
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}\n{extra}")
        time.sleep(interval)


# --------------------------------------------------------------------------- tmux


TMUX_CONF = """\
set -g default-shell /bin/bash
set -g default-command "bash --norc --noprofile"
set -g history-limit 5000
set -g focus-events on
set -g escape-time 10
set -g status off
"""


class TmuxServer:
    """A private tmux server (``tmux -L name``) whose global env is ``env``."""

    def __init__(self, workdir: Path, env: Mapping[str, str], *, width: int = 200,
                 height: int = 50):
        self.name = f"cafleet-e2e-{uuid.uuid4().hex[:10]}"
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.conf = self.workdir / "tmux.conf"
        self.width, self.height = width, height
        self.session = "e2e"
        self.started = False

    def start(self, cwd: os.PathLike | str | None = None) -> "TmuxServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(TMUX_CONF)
        self._run("-f", str(self.conf), "new-session", "-d", "-s", self.session,
                  "-x", str(self.width), "-y", str(self.height),
                  "-c", str(cwd or self.workdir))
        self.started = True
        return self

    def kill(self) -> None:
        """Kill this server by its socket and remove the socket file it leaves behind."""
        sock = None
        if self.started:
            try:
                sock = self.socket_path
            except RuntimeError:
                sock = None
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True,
                       env=self.env)
        self.started = False
        if sock and os.path.basename(sock) == self.name:
            for _ in range(20):
                if subprocess.run(["tmux", "-L", self.name, "list-sessions"],
                                  capture_output=True, env=self.env).returncode != 0:
                    break
                time.sleep(0.05)
            try:
                os.unlink(sock)
            except OSError:
                pass

    @property
    def socket_path(self) -> str:
        return self._run("display-message", "-p", "-t", self.session,
                         "#{socket_path}").strip()

    def _run(self, *args: str, check: bool = True) -> str:
        p = subprocess.run(["tmux", "-L", self.name, *args], capture_output=True, text=True,
                           env=self.env)
        if check and p.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p.stdout

    def tmux(self, *args: str, check: bool = True) -> str:
        """Run any tmux command on this server; returns stdout."""
        return self._run(*args, check=check)

    def new_window(self, argv: list[str] | None = None, *, cwd: os.PathLike | str | None = None,
                   env: Mapping[str, str] | None = None, keep_dead: bool = True,
                   name: str | None = None) -> str:
        """A new window running ``argv`` directly (no shell; a shell if None); its pane id.

        ``keep_dead``: the pane stays (``remain-on-exit``) after the process ends, so a crash
        stays readable. Only this pane gets the option (not splits made from it).
        """
        args = ["new-window", "-d", "-P", "-F", "#{pane_id}", "-t", f"{self.session}:"]
        if cwd is not None:
            args += ["-c", str(cwd)]
        if name:
            args += ["-n", name]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        if argv:
            # >1 argument: tmux execs it directly without a shell (tmux >= 3.0); make sure
            # a single-word argv still does not go through a shell string surprise.
            args += ["--", *argv] if len(argv) > 1 else ["--", shlex.quote(argv[0])]
        pane = self._run(*args).strip()
        if keep_dead:
            self._run("set-option", "-p", "-t", pane, "remain-on-exit", "on", check=False)
        return pane

    def capture(self, pane: str, *, history: int = 300, join: bool = True) -> str:
        args = ["capture-pane", "-p", "-t", pane, "-S", f"-{history}"]
        if join:
            args.insert(2, "-J")
        return self._run(*args, check=False)

    def send_literal(self, pane: str, text: str) -> None:
        if text.endswith(";"):
            text = text[:-1] + "\\;"  # tmux treats a final ';' as a command separator
        self._run("send-keys", "-t", pane, "-l", text)

    def send_keys(self, pane: str, *keys: str) -> None:
        self._run("send-keys", "-t", pane, *keys)

    def pane_dead(self, pane: str) -> bool:
        out = self._run("display-message", "-p", "-t", pane, "#{pane_dead}", check=False)
        return out.strip() in ("1", "")

    def pane_exists(self, pane: str) -> bool:
        out = self._run("list-panes", "-a", "-F", "#{pane_id}", check=False)
        return pane in out.split()

    def list_panes(self) -> list[str]:
        return self._run("list-panes", "-a", "-F", "#{pane_id}", check=False).split()


# --------------------------------------------------------------------------- claude pane


@dataclass
class ClaudePane:
    tmux: TmuxServer
    pane: str
    argv: list[str]
    api: Any = None  # FakeAPI
    started_at: float = field(default_factory=time.monotonic)
    ready_after: float | None = None

    # ---- screen
    def capture(self, history: int = 300) -> str:
        return self.tmux.capture(self.pane, history=history)

    def screen(self) -> str:
        """The visible screen only (no scrollback), unjoined."""
        return self.tmux._run("capture-pane", "-p", "-t", self.pane, check=False)

    def _fail_info(self) -> str:
        dead = " (pane process has exited)" if self.tmux.pane_dead(self.pane) else ""
        reqs = ""
        if self.api is not None:
            reqs = "\nfake API requests:\n  " + ("\n  ".join(
                r.summary() for r in self.api.snapshot()[-8:]) or "(none)")
            if self.api.errors:
                reqs += f"\nfake API script errors: {self.api.errors}"
        cap = "\n".join(line.rstrip() for line in self.capture().splitlines() if line.strip())
        return f"--- pane {self.pane}{dead} ({' '.join(self.argv)[:200]}) ---\n{cap}\n---{reqs}"

    def wait_for(self, cond: str | re.Pattern | Callable[[str], Any], *, timeout: float = 20,
                 what: str | None = None, history: int = 300) -> Any:
        """Wait until the capture contains ``cond`` (str), matches it (regex), or
        ``cond(capture)`` is truthy. Returns the capture (or the match / callable's value)."""
        if isinstance(cond, str):
            what = what or f"{cond!r} in pane"
            fn = lambda: (lambda c: c if cond in c else None)(self.capture(history))  # noqa: E731
        elif isinstance(cond, re.Pattern):
            what = what or f"/{cond.pattern}/ in pane"
            fn = lambda: cond.search(self.capture(history))  # noqa: E731
        else:
            what = what or getattr(cond, "__name__", "condition on pane")
            fn = lambda: cond(self.capture(history))  # noqa: E731
        return wait_until(fn, timeout=timeout, what=what, on_fail=self._fail_info)

    def wait_gone(self, text: str, *, timeout: float = 10) -> None:
        wait_until(lambda: text not in self.screen(), timeout=timeout,
                   what=f"{text!r} to leave the screen", on_fail=self._fail_info)

    def input_box_drawn(self) -> bool:
        return bool(INPUT_BOX_RE.search(self.screen()))

    def wait_ready(self, timeout: float = 30) -> float:
        """Wait for the input box; returns seconds since start."""
        wait_until(self.input_box_drawn, timeout=timeout, what="claude's input box",
                   on_fail=self._fail_info)
        if self.ready_after is None:
            self.ready_after = time.monotonic() - self.started_at
        return self.ready_after

    def wait_request(self, pred: Callable[[Any], bool] = lambda r: True, *,
                     timeout: float = 30, after: int = 0, kind: str | None = "main",
                     what: str = "a matching request"):
        """``api.wait_request`` whose failure message also carries the pane capture."""
        try:
            return self.api.wait_request(pred, timeout=timeout, after=after, kind=kind,
                                         what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self._fail_info()}") from None

    # ---- keys
    def type(self, text: str, *, enter: bool = True, pause: float = 0.3) -> None:
        """Type ``text`` literally, pause, then press Enter as a separate key."""
        self.tmux.send_literal(self.pane, text)
        if enter:
            time.sleep(pause)
            self.tmux.send_keys(self.pane, "Enter")

    def keys(self, *keys: str) -> None:
        """tmux key names (``Enter``, ``Escape``, ``C-c``, ``Down``, …)."""
        self.tmux.send_keys(self.pane, *keys)

    def prompt(self, text: str, *, timeout: float = 30) -> Any:
        """Type a prompt + Enter and wait for the main request that carries it; returns it."""
        mark = self.api.mark()
        self.type(text)
        needle = text.splitlines()[0] if text else text
        return self.wait_request(lambda r: needle in r.latest_user_text(), timeout=timeout,
                                 after=mark, what=f"a request carrying prompt {needle!r}")

    def exit(self, timeout: float = 10) -> None:
        """``/exit`` and wait until the process has ended."""
        if self.tmux.pane_dead(self.pane):
            return
        self.type("/exit")
        wait_until(lambda: self.tmux.pane_dead(self.pane) or not self.tmux.pane_exists(self.pane),
                   timeout=timeout, what="claude to exit", on_fail=self._fail_info)

    @property
    def dead(self) -> bool:
        return self.tmux.pane_dead(self.pane)


def start_claude(tmux: TmuxServer, claude_bin: str, *args: str, cwd: os.PathLike | str,
                 api: Any = None, env: Mapping[str, str] | None = None, wait: bool = True,
                 timeout: float = 30) -> ClaudePane:
    """Start ``claude *args`` in a new window of ``tmux`` (cwd must be trusted in the HOME)."""
    argv = [claude_bin, *args]
    t0 = time.monotonic()
    pane = tmux.new_window(argv, cwd=cwd, env=env)
    cp = ClaudePane(tmux, pane, argv, api=api, started_at=t0)
    if wait:
        cp.wait_ready(timeout=timeout)
    return cp


def run_cli(argv: list[str], *, env: Mapping[str, str], cwd: os.PathLike | str,
            timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """Run a non-interactive command (e.g. ``claude plugin install …``) with stdin closed;
    on ``check`` a non-zero exit raises AssertionError with its output."""
    p = subprocess.run(argv, env=dict(env), cwd=str(cwd), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p
