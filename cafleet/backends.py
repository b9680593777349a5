"""The coding agents a member can run: `claude`, `codex`, `opencode`.

Stdlib only. Each backend knows the argv that starts its interactive TUI with the member's
first prompt, the text that quits it gracefully, and its permission posture. `members.py`
runs the argv in a new tmux pane (never through a shell: every value is one argv item) with
`spawn_env(identity)` added to the pane's environment.

Checked against the real binaries from the npm registry (their `--help` and, offline, the
TUIs themselves in a private tmux server; see docs/reference/coding-agents/*.md):

- `claude`   2.1.330, re-checked 2.1.332 (Claude Code) — package @anthropic-ai/claude-code
- `codex`    codex-cli 0.169.0, re-checked 0.171.0 — package @openai/codex
- `opencode` 1.18.33                 — package opencode-ai

Shapes (for `MemberIdentity(fleet_id=F, agent_id=M, director_id=D, name=N, db_path=P)`):

    claude   --name=N --settings={"permissions": {"allow": [...]}} [--model=X] -- PROMPT
    codex    --no-daemon --no-alt-screen --sandbox=workspace-write
             --ask-for-approval=on-request --add-dir=dirname(P)
             --config=shell_environment_policy.set.PATH="<member PATH>" [--model=X] -- PROMPT
    opencode --agent=cafleet [--model=PROVIDER/MODEL] --prompt=PROMPT
             (+ env OPENCODE_CONFIG_CONTENT = the `cafleet` agent definition)

argv[0] is the binary `which()` found on PATH (so the pane runs the very binary the caller
checked for), else the bare name. Long options are written `--flag=value`, so a value that
starts with `-` (a name, a model, a prompt) can never be read as another option, and the
positional prompt follows `--` for the same reason. (tmux itself reads an argument that ends
with `;` as a command separator: the tmux layer must pass such an item as `…\\;`.)

Exit commands (typed + Enter by `member delete`): claude `/exit` (~0.1–0.2 s), codex `/quit`
(~0.15 s), opencode `/exit` (~0.3–1 s); each also works mid-turn.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from cafleet.errors import UsageError

BACKENDS = ("claude", "codex", "opencode")

#: Name of the opencode agent definition members run with (`opencode --agent=cafleet`).
OPENCODE_AGENT = "cafleet"

#: Seconds `version()` waits for `<binary> --version`.
VERSION_TIMEOUT = 5.0

#: `rules(fleet_id, agent_id, director_id) -> {"allow": [...], "ask": [...]}` — the shape of
#: `cafleet.permissions.member_rules`, which is what is used when no `rules` is passed.
RulesFn = Callable[[str, str, str], Mapping[str, Sequence[str]]]


@dataclass(frozen=True)
class MemberIdentity:
    """Who a spawned member is. `db_path` is the broker DB's resolved absolute path."""

    fleet_id: str
    agent_id: str
    director_id: str
    name: str
    db_path: str


def identity_env(identity: MemberIdentity) -> dict[str, str]:
    """The four variables every member process gets, whatever its backend."""
    return {
        "CAFLEET_FLEET_ID": identity.fleet_id,
        "CAFLEET_AGENT_ID": identity.agent_id,
        "CAFLEET_DIRECTOR_ID": identity.director_id,
        "CAFLEET_DB": os.path.abspath(identity.db_path),
    }


def _member_rules(identity: MemberIdentity, rules: RulesFn | None) -> dict[str, list[str]]:
    if rules is None:
        from cafleet import permissions  # lazy: permissions is only needed at spawn time

        rules = permissions.member_rules
    got = rules(identity.fleet_id, identity.agent_id, identity.director_id)
    return {"allow": list(got.get("allow", ())), "ask": list(got.get("ask", ()))}


class Backend:
    """One coding agent. Subclasses set `name`, `binary`, `exit_command`."""

    name: str = ""
    binary: str = ""
    exit_command: str = ""

    def which(self, path: str | None = None) -> str | None:
        """The binary's full path on PATH (or on `path`), else None."""
        return shutil.which(self.binary, path=path)

    def command(self) -> str:
        """argv[0]: the binary found on PATH, else its bare name."""
        return self.which() or self.binary

    def version(self, timeout: float = VERSION_TIMEOUT) -> str | None:
        """First non-empty stdout line of `<binary> --version`, or None when the binary is
        missing, fails, or takes longer than `timeout` seconds."""
        found = self.which()
        if found is None:
            return None
        try:
            done = subprocess.run(
                [found, "--version"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0:
            return None
        for line in (done.stdout or "").splitlines():
            if line.strip():
                return line.strip()
        return None

    def check_model(self, model: str | None) -> None:
        """UsageError when `model` cannot be right for this backend (before any spawn)."""
        if model is not None and not model.strip():
            raise UsageError("--model must not be empty")

    def spawn_argv(
        self,
        *,
        prompt: str,
        model: str | None,
        name: str,
        identity: MemberIdentity,
        rules: RulesFn | None = None,
    ) -> list[str]:
        """argv that starts the interactive TUI with `prompt` as the first user turn."""
        raise NotImplementedError

    def spawn_env(self, identity: MemberIdentity, *, rules: RulesFn | None = None) -> dict[str, str]:
        """Variables to add to the pane's environment: `identity_env` plus backend config."""
        return identity_env(identity)

    def __repr__(self) -> str:
        return f"<Backend {self.name}>"


# ------------------------------------------------------------------------------------ claude


class ClaudeBackend(Backend):
    """Claude Code. From `claude --help` (2.1.330; the same in 2.1.332):

    - `claude [options] [command] [prompt]` — "starts an interactive session by default".
    - `-n, --name <name>`: "Set a display name for this session (shown in the prompt box,
      /resume picker, and terminal title)".
    - `--settings <file-or-json>`: "Settings file or JSON string to load more settings
      from". The member's literal allow rules go here as `{"permissions": {"allow": [...]}}`
      (plus `"ask"` when there are any). `--allowedTools <tools...>` would do the same but is
      variadic: it would swallow a following positional prompt.
    - `--model <model>`: "Model for the current session" (alias or full name; any string).

    The permission mode is left to the user's settings: only the member's own cafleet
    commands are pre-approved; anything else prompts as it would in any session.
    `/exit` ends the session in about 0.1–0.2 s, also mid-turn.
    """

    name = "claude"
    binary = "claude"
    exit_command = "/exit"

    def settings(self, identity: MemberIdentity, *, rules: RulesFn | None = None) -> dict:
        """The `--settings` object: `{"permissions": {"allow": [...], "ask": [...]}}`, with
        the rules of `permissions.member_rules` (or `rules`); empty lists left out."""
        got = _member_rules(identity, rules)
        perms = {kind: got[kind] for kind in ("allow", "ask") if got[kind]}
        return {"permissions": perms}

    def spawn_argv(self, *, prompt, model, name, identity, rules=None) -> list[str]:
        self.check_model(model)
        settings = json.dumps(self.settings(identity, rules=rules), separators=(",", ":"))
        argv = [self.command(), f"--name={name}", f"--settings={settings}"]
        if model is not None:
            argv.append(f"--model={model}")
        if prompt:
            argv += ["--", prompt]
        return argv


# ------------------------------------------------------------------------------------- codex


def toml_string(value: str) -> str:
    """`value` as a TOML basic string (JSON escapes are TOML's; DEL escaped too)."""
    return json.dumps(value).replace("\x7f", "\\u007f")


def member_path() -> str:
    """The PATH a member's pane gets (`cafleet.bootstrap.member_path`)."""
    from cafleet.bootstrap import member_path as path

    return path()


class CodexBackend(Backend):
    """OpenAI Codex CLI. From `codex --help` (codex-cli 0.169.0; the same in 0.171.0):

    - `codex [OPTIONS] [PROMPT]` — "If no subcommand is specified, options will be forwarded
      to the interactive CLI"; `[PROMPT]` "Optional user prompt to start the session".
    - `-s, --sandbox <SANDBOX_MODE>` `[possible values: read-only, workspace-write,
      danger-full-access]` → `workspace-write`.
    - `-a, --ask-for-approval <APPROVAL_POLICY>` (`on-request` | `never`) → `on-request`:
      sandboxed commands run without asking; the model may ask to go outside the sandbox.
    - `--add-dir <DIR>`: "Additional directories that should be writable alongside the
      primary workspace" → the DB directory, so `cafleet` (SQLite + its WAL/SHM files) can
      write. Unlike `-c sandbox_workspace_write.writable_roots=[…]` it adds to the user's
      own writable roots instead of replacing them (seen in `/status`:
      `Permissions: Workspace [<db dir>, <user's roots>] (Ask for approval)`).
    - `--no-daemon`: "Run without the shared background server, even if it is already
      running". Without it the TUI attaches to a shared app-server daemon under
      `$CODEX_HOME`, started by whichever codex ran first, and commands run with *that*
      process's environment — not this member's `CAFLEET_*` identity.
    - `--no-alt-screen`: "Runs the TUI in inline mode, preserving terminal scrollback
      history", so `member capture --lines N` sees more than one screen.
    - `-m, --model <MODEL>`: "Model the agent should use".
    - `-c, --config <key=value>`: "Use a dotted path (`foo.bar.baz`) to override nested
      values. The `value` portion is parsed as TOML" → `shell_environment_policy.set.PATH`
      = the member's PATH (`bootstrap.member_path`: the running `cafleet`'s directory
      first). Seen with 0.171.0: codex runs shell commands (its own and `!` ones) with the
      PATH of a login-shell snapshot (on Debian `/etc/profile` resets it) behind its own
      `codex-path` dir, not the PATH it was started with, so a member would not find the
      Director's `cafleet`; with this setting it is `<codex-path>:<member PATH>`.

    Not set: `sandbox_workspace_write.network_access`. The sandbox counts a tmux socket as
    network (`error connecting to /tmp/tmux-…/default (Operation not permitted)`), so the
    inline preview of a member's `message send` is held and typed by a later cafleet call
    from outside the sandbox (`cafleet.delivery`; seen with 0.171.0) unless the user enables
    network access in `~/.codex/config.toml`.
    `/quit` ends the session (about 0.15 s, also mid-turn).
    """

    name = "codex"
    binary = "codex"
    exit_command = "/quit"

    def spawn_argv(self, *, prompt, model, name, identity, rules=None) -> list[str]:
        self.check_model(model)
        db_dir = os.path.dirname(os.path.abspath(identity.db_path))
        argv = [
            self.command(),
            "--no-daemon",
            "--no-alt-screen",
            "--sandbox=workspace-write",
            "--ask-for-approval=on-request",
            f"--add-dir={db_dir}",
            f"--config=shell_environment_policy.set.PATH={toml_string(member_path())}",
        ]
        if model is not None:
            argv.append(f"--model={model}")
        if prompt:
            argv += ["--", prompt]
        return argv


# ---------------------------------------------------------------------------------- opencode

# The deny-list floor of the `cafleet` opencode agent. opencode matches a pattern against the
# raw text of each simple command of a Bash call (pipelines, `&&`, `;`, `$( )` are split
# first); `*` is any text, `?` any one character, a trailing ` *` also matches nothing, and
# the last matching rule wins. So: a floor against accidents, not a sandbox — `FOO=1 rm -rf`,
# `bash script.sh` or an odd spacing can slip past. The user's own rules still apply to
# everything not listed here.
OPENCODE_DENY_FLOOR: tuple[str, ...] = (
    # recursive delete
    "rm -r*", "rm -R*", "rm -fr*", "rm -fR*", "rm --recursive*",
    "rm * -r*", "rm * -R*", "rm * -fr*", "rm * -fR*", "rm * --recursive*",
    # privilege
    "sudo *", "su *", "doas *", "pkexec *",
    # publishing or destroying git history / work
    "git push *", "git -C * push *", "git -c * push *", "git reset --hard*", "git clean -*f*",
    # a shell fed from a pipe or a string (`curl … | sh`, `bash -c '…'`, `eval …`)
    "sh", "bash", "zsh", "dash", "ksh", "sh -", "bash -",
    "sh -c *", "bash -c *", "zsh -c *", "dash -c *", "ksh -c *",
    "sh -s*", "bash -s*", "zsh -s*", "eval *",
    # raw tmux on panes: use `cafleet member …` / `message send` instead
    "tmux *send*", "tmux *capture*", "tmux *kill*", "tmux *respawn*", "tmux *pipe*",
    # machine-level
    "mkfs*", "shutdown *", "reboot *", "halt *", "poweroff *",
)

# cafleet commands the member did not get an allow rule for: prompt, never auto-approve.
OPENCODE_CAFLEET_ASK: tuple[str, ...] = (
    "cafleet *", "*/cafleet *", "python* -m cafleet *", "uv run *cafleet *",
)

_ID_FLAGS = ("--fleet-id", "--agent-id", "--member-id", "--task-id", "--to")


def _cafleet_deny() -> tuple[str, ...]:
    """Ids from shell variables / substitutions, and a repeated identity flag (click keeps
    the last one, so `… --text hi --agent-id OTHER` would act as OTHER)."""
    out = []
    for flag in _ID_FLAGS:
        for sep in (" ", "="):
            for lead in ("$", '"$', "`", '"`'):
                out.append(f"cafleet *{flag}{sep}{lead}*")
    for flag in ("--fleet-id", "--agent-id"):
        out.append(f"cafleet *{flag}*{flag}*")
    return tuple(out)


OPENCODE_CAFLEET_DENY = _cafleet_deny()


def opencode_pattern(rule: str) -> str | None:
    """A Claude Code `Bash(...)` rule as an opencode bash pattern, or None (not Bash).

    `Bash(cmd)` → `cmd` (exact); `Bash(prefix:*)` / `Bash(prefix *)` → `prefix *`, which
    opencode reads as "prefix, alone or followed by a space and anything" — the same word
    boundary as Claude Code's prefix rule.
    """
    if not (rule.startswith("Bash(") and rule.endswith(")")):
        return None
    body = rule[len("Bash("):-1]
    for suffix in (":*", " *"):
        if body.endswith(suffix):
            return body[: -len(suffix)].rstrip() + " *"
    return body


class OpencodeBackend(Backend):
    """opencode. From `opencode --help` (1.18.33):

    - `opencode [project]` — "start opencode tui" [default]; the positional is a project
      path, so the prompt goes in `--prompt` ("prompt to use").
    - `--agent` ("agent to use") → `cafleet`, defined by this member's env
      `OPENCODE_CONFIG_CONTENT` (a JSON config that opencode merges after the global and
      project configs: `opencode debug config` / `opencode agent list` show it). Nothing
      is written under `$HOME`.
    - `-m, --model` "model to use in the format of provider/model".

    The TUI has no session-name flag. `/exit` quits (about 0.5–1 s, also mid-turn).
    See `agent_config` for the permission posture.
    """

    name = "opencode"
    binary = "opencode"
    exit_command = "/exit"

    def check_model(self, model: str | None) -> None:
        super().check_model(model)
        if model is not None:
            provider, _, model_id = model.partition("/")
            if not provider or not model_id:
                raise UsageError(
                    f"--model for the opencode backend must be PROVIDER/MODEL (got {model!r})"
                )

    def spawn_argv(self, *, prompt, model, name, identity, rules=None) -> list[str]:
        self.check_model(model)
        argv = [self.command(), f"--agent={OPENCODE_AGENT}"]
        if model is not None:
            argv.append(f"--model={model}")
        if prompt:
            argv.append(f"--prompt={prompt}")
        return argv

    def bash_permissions(self, identity: MemberIdentity, *, rules: RulesFn | None = None) -> dict[str, str]:
        """The agent's `permission.bash` map, in evaluation order (last match wins):

        1. `OPENCODE_CAFLEET_ASK` → "ask": any cafleet command not listed below prompts;
        2. the member's rules (`permissions.member_rules`) → "allow" / "ask";
        3. `OPENCODE_CAFLEET_DENY` and `OPENCODE_DENY_FLOOR` → "deny".

        There is no `"*"` entry: other commands keep the user's own bash setting.
        """
        got = _member_rules(identity, rules)
        out: dict[str, str] = {p: "ask" for p in OPENCODE_CAFLEET_ASK}
        for kind in ("allow", "ask"):
            for rule in got[kind]:
                pattern = opencode_pattern(rule)
                if pattern is not None:
                    out.pop(pattern, None)
                    out[pattern] = kind
        for pattern in OPENCODE_CAFLEET_DENY + OPENCODE_DENY_FLOOR:
            out.pop(pattern, None)
            out[pattern] = "deny"
        return out

    def agent_config(self, identity: MemberIdentity, *, rules: RulesFn | None = None) -> dict:
        """The `cafleet` agent definition (a `primary` agent) with its `permission` map:

        - `"*_*": "deny"` — MCP tools are named `<server>_<tool>`; an agent whose last rule
          for a tool is a `*`-pattern deny never offers it to the model, so no MCP server
          (not even one from the user's global config) reaches the member;
        - `external_directory`, `doom_loop`: "ask" (opencode's defaults, restated after the
          line above);
        - `task`: "deny" — a subagent would run outside this ruleset;
        - `bash`: see `bash_permissions`.
        """
        return {
            "description": (
                f"cafleet member {identity.name} (fleet {identity.fleet_id}, agent "
                f"{identity.agent_id}); reports to {identity.director_id}"
            ),
            "mode": "primary",
            "permission": {
                "*_*": "deny",
                "external_directory": "ask",
                "doom_loop": "ask",
                "task": "deny",
                "bash": self.bash_permissions(identity, rules=rules),
            },
        }

    def config(self, identity: MemberIdentity, *, rules: RulesFn | None = None) -> dict:
        """The whole `OPENCODE_CONFIG_CONTENT` document. It has no `mcp` key."""
        return {
            "$schema": "https://opencode.ai/config.json",
            "agent": {OPENCODE_AGENT: self.agent_config(identity, rules=rules)},
        }

    def spawn_env(self, identity: MemberIdentity, *, rules: RulesFn | None = None) -> dict[str, str]:
        env = identity_env(identity)
        env["OPENCODE_CONFIG_CONTENT"] = json.dumps(
            self.config(identity, rules=rules), ensure_ascii=False, separators=(",", ":")
        )
        return env


# --------------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Backend] = {
    "claude": ClaudeBackend(),
    "codex": CodexBackend(),
    "opencode": OpencodeBackend(),
}


def get(name: str) -> Backend:
    """The backend called `name`; UsageError (exit 2) for any other name."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown coding agent {name!r}: use one of {', '.join(BACKENDS)}"
        ) from None


def which(backend: str, path: str | None = None) -> str | None:
    """Full path of `backend`'s binary on PATH (or `path`), else None."""
    return get(backend).which(path)


def version(backend: str, timeout: float = VERSION_TIMEOUT) -> str | None:
    """`<binary> --version`'s first stdout line; None if missing, failing or too slow."""
    return get(backend).version(timeout)
