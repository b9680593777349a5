"""Claude Code hook handlers for cafleet: PreToolUse(Bash), PostToolUse(Cron*), SessionStart, Stop.

Run by `hooks/hooks.json` as `python3 -I -S "${CLAUDE_PLUGIN_ROOT}/hooks/cafleet-hook" <EventName>`
(`${CLAUDE_PLUGIN_ROOT}` is the installed plugin's directory, set by Claude Code for plugin
hooks: https://code.claude.com/docs/en/plugins-reference, "Hooks" / "Environment variables").
It needs a bare interpreter and nothing installed: this module imports only the stdlib and
`cafleet.broker` (itself stdlib-only), and those lazily, after the cheap checks. `-I -S`
(isolated, no `site`) keeps the user's PYTHONPATH and site-packages out and skips every
`.pth` file: on a machine with an editable install that alone is ~40 ms per hook call, and
PreToolUse runs before every Bash command (bench/hook_latency.py). The hook works without
the flags too.

Contract (docs/ARCHITECTURE.md, CONTRACT.md "Hooks"):

- The hook input is one JSON object on stdin. Common fields (Claude Code hooks reference,
  https://code.claude.com/docs/en/hooks, "Hook input"): `session_id`, `transcript_path`,
  `cwd`, `hook_event_name`; per event: PreToolUse/PostToolUse `tool_name`, `tool_input`
  (PostToolUse also `tool_response`), SessionStart `source` (`startup`, `resume`, `clear`,
  `compact`), Stop `stop_hook_active`.
- Who is calling: the pane. `$TMUX` is `<socket path>,<server pid>,<session>` and
  `$TMUX_PANE` is `%N` (Claude Code runs hooks with the session's environment, so a claude
  started in a fleet pane has both); `(socket path, pane id)` → the placement row → the agent,
  skipping a placement whose recorded pane process is gone (a tmux server restart reuses `%N`).
- A session that is not a fleet agent (no `$TMUX`, no DB file, no placement for the pane) gets
  exit 0 and no output. So does every internal fault: a hook must never break a session.
  The DB is opened with `create=False`, so a machine that never ran cafleet stays untouched.
- Output (same reference, "JSON output" / "Decision control"), always exit 0:
  - PreToolUse deny: `{"hookSpecificOutput": {"hookEventName": "PreToolUse",
    "permissionDecision": "deny", "permissionDecisionReason": <reason>}}`. Claude Code
    2.1.330 gives the reason to the model as an error `tool_result`
    (`PreToolUse:Bash hook error: <reason>`, REAL-CLIENT.md "Hooks").
  - SessionStart: `{"hookSpecificOutput": {"hookEventName": "SessionStart",
    "additionalContext": <text>}}`; the model sees `SessionStart hook additional context: <text>`.
  - Stop: `{"decision": "block", "reason": <text>}` keeps the agent going with <text> as its
    next instruction; when `stop_hook_active` is true (a Stop hook already continued this
    turn) we never block, so no loop is possible.
  - PostToolUse: no output; it only records state.
- CronCreate / CronDelete / CronList shapes (checked against Claude Code 2.1.330's
  `sdk-tools.d.ts` and REAL-CLIENT.md): CronCreate `tool_input` `{cron, prompt, recurring?,
  durable?}`, `tool_response` `{id, humanSchedule, recurring, durable?, nextFireAt?,
  maxAgeMs?}`; CronDelete `tool_input` `{id}`, `tool_response` `{id}`; CronList
  `tool_response` `{jobs: [{id, cron, humanSchedule, prompt, recurring?, durable?}]}`.
  We read them leniently (`id`, `jobId`, `job_id`; a JSON string response is parsed).

What each event does for a fleet agent:

- PreToolUse (matcher `Bash`): deny (1) raw tmux commands that act on panes/windows/sessions
  (read-only queries such as `tmux display-message -p` / `list-panes` pass), wherever they
  sit in the command line; (2) `cafleet` commands whose ids come from shell variables or
  substitutions, and ones that give an id flag twice; (3) for a claude agent: `member create`
  with no recorded /loop, and `fleet delete` of its own fleet while one of its loops is still
  recorded as running (the monitoring skill's lifecycle rule). Anything else: no output.
- PostToolUse (matcher `CronCreate|CronDelete|CronList`): record a recurring CronCreate job
  as a loop of the agent; end it on CronDelete; on CronList reconcile (jobs no longer listed
  end, listed recurring jobs not yet known are recorded) — the way out of a stale record.
- SessionStart (`startup|resume|clear|compact`): the agent's identity, ids, poll command,
  members (for a Director) and skills, as additional context. On `startup` the non-durable
  loops recorded by earlier sessions are ended (session-only crons die with their session).
- Stop: un-acked messages waiting → block once (per newest un-acked task) with the poll
  command.
"""

from __future__ import annotations

import os
import sys

HOOK_BUSY_TIMEOUT_MS = "2000"
"""SQLite busy timeout for hook processes unless `$CAFLEET_BUSY_TIMEOUT_MS` says otherwise:
short, because a hook holds up the session while it waits."""

SKILLS_DIRECTOR = ("cafleet:cafleet", "cafleet:cafleet-agent-team-monitoring", "cafleet:cafleet-agent-team-supervision")
SKILLS_MEMBER = ("cafleet:cafleet",)
MAX_MEMBERS_LISTED = 40
_SOURCE_WORDS = {"resume": "resumed", "compact": "compacted", "clear": "cleared (/clear)"}


# ================================================================ entry point


def main(argv=None) -> int:
    """Handle one hook event: `argv[0]` is the event name (else the input's `hook_event_name`).

    Always returns 0; writes at most one JSON object to stdout, and only for a fleet agent.
    Fast paths (no `json`, no DB): outside tmux every event ends right after reading stdin;
    a PreToolUse whose input mentions neither `tmux` nor `cafleet` ends there too, unless
    the session is a member (`$CAFLEET_AGENT_ID`), whose every Bash call `member_guard` checks.
    """
    try:
        args = sys.argv[1:] if argv is None else list(argv)
        raw = sys.stdin.buffer.read()  # always drain the pipe Claude Code writes to
        if pane_of(os.environ) is None:
            return 0
        event = args[0] if args else None
        if event == "PreToolUse" and not mentions_tmux_or_cafleet(raw) and not os.environ.get("CAFLEET_AGENT_ID"):
            return 0
        import json

        data = json.loads(raw.decode("utf-8", "replace"))
        if not isinstance(data, dict):
            return 0
        event = event or data.get("hook_event_name")
        handler = HANDLERS.get(event)
        if handler is None:
            return 0
        out = handler(data, os.environ)
        if out:
            # ASCII JSON (\u escapes) as bytes: no dependence on the locale's stdout encoding
            sys.stdout.buffer.write(json.dumps(out).encode("ascii"))
            sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - a hook must never break the session
        return 0
    return 0


def mentions_tmux_or_cafleet(text) -> bool:
    """Cheap pre-check on the raw input (bytes or str): could the command involve tmux or
    cafleet at all? Quotes and backslashes are dropped first, so `t\\mux` and `tm''ux` count."""
    if isinstance(text, bytes):
        plain = text.replace(b"\\", b"").replace(b"'", b"").replace(b'"', b"")
        return b"tmux" in plain or b"cafleet" in plain
    plain = text.replace("\\", "").replace("'", "").replace('"', "")
    return "tmux" in plain or "cafleet" in plain


# ================================================================ who is calling


def pane_of(environ) -> tuple[str, str] | None:
    """`(tmux socket path, pane id)` from `$TMUX` / `$TMUX_PANE`, or None outside tmux."""
    socket_path = (environ.get("TMUX") or "").split(",", 1)[0].strip()
    pane_id = (environ.get("TMUX_PANE") or "").strip()
    if not socket_path or not pane_id:
        return None
    return socket_path, pane_id


def open_agent(environ):
    """`(broker, agent row)` for the fleet agent placed in the calling pane, or `(None, None)`.

    Never creates the DB file. The caller closes the broker.
    """
    where = pane_of(environ)
    if where is None:
        return None, None
    from cafleet import broker as _broker

    path = _broker.db_path(environ)
    if not os.path.isfile(path):
        return None, None
    os.environ.setdefault("CAFLEET_BUSY_TIMEOUT_MS", HOOK_BUSY_TIMEOUT_MS)
    br = _broker.Broker.open(path, create=False)
    try:
        socket_path, pane_id = where
        agent = br.find_agent_by_pane(socket_path, pane_id, placement_is_live)
        if agent is None:
            real = os.path.realpath(socket_path)
            if real != socket_path:
                agent = br.find_agent_by_pane(real, pane_id, placement_is_live)
    except BaseException:
        br.close()
        raise
    if agent is None:
        br.close()
        return None, None
    return br, agent


def placement_is_live(placement: dict) -> bool:
    """False when the placement recorded its pane's process id and no such process exists:
    the tmux server was restarted and `%N` now names a stranger's pane. The hook cannot afford
    a tmux call (members.pane_state compares with `#{pane_pid}`), so it asks the kernel with
    signal 0 (kill(2): ESRCH = no such process, EPERM = it exists). A placement without a
    recorded pid is taken as live."""
    pid = placement.get("pane_pid")
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _coding_agent(agent: dict) -> str | None:
    return agent.get("coding_agent") or (agent.get("placement") or {}).get("coding_agent")


def poll_command(fleet_id: str, agent_id: str) -> str:
    """The literal poll command (same text as `cafleet.members.poll_command`, which imports
    more than a hook should)."""
    return f"cafleet --fleet-id {fleet_id} message poll --agent-id {agent_id}"


# ================================================================ a small shell lexer
#
# Enough of POSIX sh / bash to find every simple command in a Bash tool command line:
# splits at ; & && || | |& newlines ( ), descends into $( ), backticks, <( ), >( ),
# `sh -c STRING`, `eval`, and the $( ) / backticks of unquoted here-documents; drops
# redirections and comments; removes quotes. Each word keeps whether the shell would expand
# something in it (`dynamic`: $VAR, ${…}, $(…), `…`, $((…))).


class Word:
    __slots__ = ("text", "dynamic")

    def __init__(self, text: str, dynamic: bool):
        self.text, self.dynamic = text, dynamic

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Word({self.text!r}{', dynamic' if self.dynamic else ''})"


_OPERATORS = set(";&|()\n")
_NAME_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | set("0123456789")
_SPECIAL_PARAMS = set("0123456789@*#?$!-")
MAX_DEPTH = 8


def _match_close(s: str, j: int, opening: str, closing: str, quotes: bool) -> int:
    """Index of the `closing` that ends the `opening` just before `j` (nesting-aware; with
    `quotes`, brackets inside '…', "…" and `…` do not count), or len(s)."""
    depth, n = 1, len(s)
    while j < n:
        ch = s[j]
        if ch == "\\":
            j += 2
            continue
        if quotes and ch == "'":
            k = s.find("'", j + 1)
            j = n if k < 0 else k + 1
            continue
        if quotes and ch == '"':
            j += 1
            while j < n and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            j += 1
            continue
        if quotes and ch == "`":
            j = _backtick_end(s, j + 1) + 1
            continue
        if ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return n


def _match_paren(s: str, j: int) -> int:
    """Index of the `)` closing the `(` just before `j` (quote-aware), or len(s)."""
    return _match_close(s, j, "(", ")", quotes=True)


def _match_brace(s: str, j: int) -> int:
    """Index of the `}` closing `${` (nesting-aware), or len(s)."""
    return _match_close(s, j, "{", "}", quotes=False)


def _backtick_end(s: str, j: int) -> int:
    n = len(s)
    while j < n and s[j] != "`":
        j += 2 if s[j] == "\\" else 1
    return min(j, n)


class _Lexer:
    def __init__(self, depth: int):
        self.depth = depth
        self.commands: list[list[Word]] = []
        self.nested: list[str] = []

    # -- expansions shared by unquoted and double-quoted text ------------------------------

    def _dollar(self, s: str, i: int, buf: list) -> tuple[int, bool]:
        """Handle `$` at s[i]; append its raw text to buf. Returns (next index, dynamic)."""
        n = len(s)
        nxt = s[i + 1] if i + 1 < n else ""
        if nxt == "(":
            if i + 2 < n and s[i + 2] == "(":  # $(( arithmetic )): one paren group, no command
                end = _match_paren(s, i + 2)
                self._substitutions_only(s[i + 3 : end])
                buf.append(s[i : end + 1])
                return end + 1, True
            end = _match_paren(s, i + 2)
            self.nested.append(s[i + 2 : end])
            buf.append(s[i : end + 1])
            return end + 1, True
        if nxt == "{":
            end = _match_brace(s, i + 2)
            self._substitutions_only(s[i + 2 : end])  # ${X:-$(cmd)} still runs cmd
            buf.append(s[i : end + 1])
            return end + 1, True
        if nxt in _NAME_START:
            k = i + 1
            while k < n and s[k] in _NAME_CHARS:
                k += 1
            buf.append(s[i:k])
            return k, True
        if nxt and nxt in _SPECIAL_PARAMS:
            buf.append(s[i : i + 2])
            return i + 2, True
        buf.append("$")
        return i + 1, False

    def _backtick(self, s: str, i: int, buf: list) -> int:
        end = _backtick_end(s, i + 1)
        body = s[i + 1 : end].replace("\\`", "`").replace("\\\\", "\\").replace("\\$", "$")
        self.nested.append(body)
        buf.append(s[i : end + 1])
        return end + 1

    def _substitutions_only(self, text: str) -> None:
        """Collect the $( ) and backtick bodies of text the shell expands but does not split
        into commands (an unquoted here-document body)."""
        i, n, scratch = 0, len(text), []
        while i < n:
            ch = text[i]
            if ch == "\\":
                i += 2
            elif ch == "$":
                i, _ = self._dollar(text, i, scratch)
            elif ch == "`":
                i = self._backtick(text, i, scratch)
            else:
                i += 1

    # -- the main loop ----------------------------------------------------------------------

    def lex(self, s: str) -> None:
        n = len(s)
        i = 0
        cur: list[Word] = []
        buf: list[str] = []
        in_word = False
        dynamic = False
        quoted = False  # the current word had quotes or backslashes (matters for a here-doc delimiter)
        drop_next = False  # the next word is a redirection target
        heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, quoted, strip_tabs)
        heredoc_next = None  # (strip_tabs) when the next word is a here-doc delimiter

        def end_word():
            nonlocal in_word, dynamic, quoted, drop_next, heredoc_next, buf
            if in_word:
                text = "".join(buf)
                if heredoc_next is not None:
                    heredocs.append((text, quoted, heredoc_next))
                    heredoc_next = None
                elif drop_next:
                    drop_next = False
                else:
                    cur.append(Word(text, dynamic))
            buf = []
            in_word = False
            dynamic = False
            quoted = False

        def end_command():
            end_word()
            if cur:
                self.commands.append(list(cur))
                cur.clear()

        while i < n:
            ch = s[i]
            if ch in "\\'\"":
                quoted = True
            if ch == "\\":
                if i + 1 < n and s[i + 1] == "\n":
                    i += 2
                    continue
                if i + 1 < n:
                    buf.append(s[i + 1])
                in_word = True
                i += 2
                continue
            if ch == "'":
                k = s.find("'", i + 1)
                k = n if k < 0 else k
                buf.append(s[i + 1 : k])
                in_word = True
                i = k + 1
                continue
            if ch == '"':
                in_word = True
                i += 1
                while i < n and s[i] != '"':
                    c2 = s[i]
                    if c2 == "\\" and i + 1 < n and s[i + 1] in '$`"\\\n':
                        if s[i + 1] != "\n":
                            buf.append(s[i + 1])
                        i += 2
                    elif c2 == "$":
                        i, d = self._dollar(s, i, buf)
                        dynamic = dynamic or d
                    elif c2 == "`":
                        i = self._backtick(s, i, buf)
                        dynamic = True
                    else:
                        buf.append(c2)
                        i += 1
                i += 1
                continue
            if ch == "$":
                if i + 1 < n and s[i + 1] == "'":  # $'ANSI-C'
                    k = i + 2
                    while k < n and s[k] != "'":
                        k += 2 if s[k] == "\\" else 1
                    buf.append(s[i + 2 : k])
                    in_word = True
                    i = k + 1
                    continue
                if i + 1 < n and s[i + 1] == '"':  # $"locale" behaves like "…"
                    i += 1
                    continue
                in_word = True
                i, d = self._dollar(s, i, buf)
                dynamic = dynamic or d
                continue
            if ch == "`":
                in_word = True
                dynamic = True
                i = self._backtick(s, i, buf)
                continue
            if ch in " \t\r":
                end_word()
                i += 1
                continue
            if ch == "#" and not in_word:
                k = s.find("\n", i)
                i = n if k < 0 else k
                continue
            if ch in "<>":
                if in_word and "".join(buf).isdigit() and not dynamic:
                    buf = []
                    in_word = False
                else:
                    end_word()
                k = i + 1
                if k < n and s[k] == "(":  # <( … ) / >( … ) process substitution
                    end = _match_paren(s, k + 1)
                    self.nested.append(s[k + 1 : end])
                    i = end + 1
                    continue
                op = ch
                while k < n and s[k] in "<>&|-" and len(op) < 3:
                    op += s[k]
                    k += 1
                if op.startswith("<<") and not op.startswith("<<<"):
                    heredoc_next = op.startswith("<<-")
                else:
                    drop_next = True
                i = k
                continue
            if ch in _OPERATORS:
                if ch == "&" and i + 1 < n and s[i + 1] == ">":  # &> / &>> redirect
                    end_word()
                    k = i + 2
                    while k < n and s[k] == ">":
                        k += 1
                    drop_next = True
                    i = k
                    continue
                end_command()
                if ch == "\n" and heredocs:
                    i = self._skip_heredocs(s, i + 1, heredocs)
                    heredocs = []
                    continue
                i += 1
                continue
            buf.append(ch)
            in_word = True
            i += 1
        end_command()

    def _skip_heredocs(self, s: str, i: int, heredocs) -> int:
        n = len(s)
        for delimiter, quoted, strip_tabs in heredocs:
            body = []
            while i < n:
                k = s.find("\n", i)
                line = s[i:] if k < 0 else s[i:k]
                i = n if k < 0 else k + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                body.append(line)
            if not quoted:
                self._substitutions_only("\n".join(body))
        return i


def split_commands(command: str, depth: int = 0) -> list[list[Word]]:
    """Every simple command in a shell command line, nested ones (substitutions,
    `sh -c`, `eval`) included, as lists of words with quotes removed."""
    if depth > MAX_DEPTH:
        return []
    lexer = _Lexer(depth)
    lexer.lex(command)
    out = list(lexer.commands)
    for body in lexer.nested:
        out.extend(split_commands(body, depth + 1))
    for words in lexer.commands:
        for script in _inner_scripts(words):
            out.extend(split_commands(script, depth + 1))
    return out


_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "busybox", "fish"}


def _base(word: Word) -> str:
    return word.text.rstrip("/").rsplit("/", 1)[-1] if not word.dynamic else ""


def _inner_scripts(words: list[Word]) -> list[str]:
    """Command strings a simple command hands to a shell: `sh -c S`, `bash -lc S`, `eval S…`,
    `env -S S` (anywhere in the words, so `sudo bash -c S` and `xargs sh -c S` count)."""
    out = []
    for k, w in enumerate(words):
        b = _base(w)
        if b in _SHELLS:
            j = k + 1
            while j < len(words) and words[j].text.startswith("-") and not words[j].text.startswith("--"):
                flag = words[j].text
                j += 1
                if "c" in flag[1:] and j < len(words):
                    out.append(words[j].text)
                    break
        elif b == "eval" and k + 1 < len(words):
            out.append(" ".join(x.text for x in words[k + 1 :]))
        elif b == "env":
            for j in range(k + 1, len(words) - 1):
                if words[j].text in ("-S", "--split-string"):
                    out.append(" ".join(x.text for x in words[j + 1 :]))
                    break
    return out


# ================================================================ command position


_ASSIGNMENT_CHARS = _NAME_CHARS
_KEYWORDS = {"!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time",
             "[[", "((", "coproc"}
# wrapper -> options that take a value (the wrapped command follows the options)
_WRAPPERS = {
    "sudo": set("ugpChDrtUT") | {"--user", "--group", "--prompt", "--host", "--chdir", "--role", "--type",
                                 "--other-user", "--close-from"},
    "doas": set("uC"),
    "env": set("uCS") | {"--unset", "--chdir", "--split-string"},
    "command": set(),
    "builtin": set(),
    "exec": set("a"),
    "nohup": set(),
    "nice": set("n") | {"--adjustment"},
    "ionice": set("cnp"),
    "timeout": set("sk") | {"--signal", "--kill-after"},
    "stdbuf": set("ioe"),
    "setsid": set(),
    "chronic": set(),
    "unbuffer": set(),
    "time": set("fo"),
    "flock": set("wEc"),
    "xargs": set("aEeIiLlnPsd") | {"--arg-file", "--delimiter", "--max-args", "--max-procs", "--replace"},
    "watch": set("nd") | {"--interval"},
    "caffeinate": set(),
    "ssh-agent": set(),
}
_WRAPPER_POSITIONAL = {"timeout": 1, "flock": 1}  # timeout DURATION cmd, flock FILE cmd


def _is_assignment(text: str) -> bool:
    eq = text.find("=")
    if eq <= 0 or text[0] not in _NAME_START:
        return False
    name = text[:eq].rstrip("+")
    if "[" in name:
        name = name[: name.index("[")]
    return all(c in _ASSIGNMENT_CHARS for c in name)


def command_index(words: list[Word]) -> int | None:
    """Index of the word the shell runs as the command (after assignments, keywords and
    wrappers such as `sudo -u x`, `env -i X=1`, `command`, `timeout 5`), or None when
    there is none (`command -v tmux` only looks a name up)."""
    k, n = 0, len(words)
    while k < n:
        w = words[k]
        t = w.text
        if not w.dynamic and t in _KEYWORDS:
            k += 1
            continue
        if _is_assignment(t):
            k += 1
            continue
        b = _base(w)
        if b in _WRAPPERS:
            takes_value = _WRAPPERS[b]
            k += 1
            while k < n and words[k].text.startswith("-") and words[k].text != "-":
                flag = words[k].text
                k += 1
                if flag == "--":
                    break
                if b == "command" and flag in ("-v", "-V"):
                    return None
                if flag.startswith("--"):
                    if "=" not in flag and flag in takes_value:
                        k += 1
                    continue
                # -abc: a short flag that takes a value takes the rest, or the next word
                for pos, c in enumerate(flag[1:], 1):
                    if c in takes_value:
                        if pos == len(flag) - 1:
                            k += 1
                        break
            if b == "env":
                while k < n and _is_assignment(words[k].text):
                    k += 1
            k += _WRAPPER_POSITIONAL.get(b, 0)
            continue
        return k
    return None


# ================================================================ tmux commands

# tmux 3.x command table: name -> alias (tmux resolves an exact name or alias, else a unique
# prefix of a name; see tmux(1) "COMMANDS").
TMUX_COMMANDS = {
    "attach-session": "attach", "bind-key": "bind", "break-pane": "breakp", "capture-pane": "capturep",
    "choose-buffer": None, "choose-client": None, "choose-tree": None, "clear-history": "clearhist",
    "clear-prompt-history": "clearphist", "clock-mode": None, "command-prompt": None,
    "confirm-before": "confirm", "copy-mode": None, "customize-mode": None, "delete-buffer": "deleteb",
    "detach-client": "detach", "display-menu": "menu", "display-message": "display",
    "display-popup": "popup", "display-panes": "displayp", "find-window": "findw", "has-session": "has",
    "if-shell": "if", "join-pane": "joinp", "kill-pane": "killp", "kill-server": None,
    "kill-session": None, "kill-window": "killw", "last-pane": "lastp", "last-window": "last",
    "link-window": "linkw", "list-buffers": "lsb", "list-clients": "lsc", "list-commands": "lscm",
    "list-keys": "lsk", "list-panes": "lsp", "list-sessions": "ls", "list-windows": "lsw",
    "load-buffer": "loadb", "lock-client": "lockc", "lock-server": "lock", "lock-session": "locks",
    "move-pane": "movep", "move-window": "movew", "new-session": "new", "new-window": "neww",
    "next-layout": "nextl", "next-window": "next", "paste-buffer": "pasteb", "pipe-pane": "pipep",
    "previous-layout": "prevl", "previous-window": "prev", "refresh-client": "refresh",
    "rename-session": "rename", "rename-window": "renamew", "resize-pane": "resizep",
    "resize-window": "resizew", "respawn-pane": "respawnp", "respawn-window": "respawnw",
    "rotate-window": "rotatew", "run-shell": "run", "save-buffer": "saveb", "select-layout": "selectl",
    "select-pane": "selectp", "select-window": "selectw", "send-keys": "send", "send-prefix": None,
    "server-access": None, "set-buffer": "setb", "set-environment": "setenv", "set-hook": None,
    "set-option": "set", "set-window-option": "setw", "show-buffer": "showb",
    "show-environment": "showenv", "show-hooks": None, "show-messages": "showmsgs",
    "show-options": "show", "show-prompt-history": "showphist", "show-window-options": "showw",
    "source-file": "source", "split-window": "splitw", "start-server": "start",
    "suspend-client": "suspendc", "swap-pane": "swapp", "swap-window": "swapw",
    "switch-client": "switchc", "unbind-key": "unbind", "unlink-window": "unlinkw", "wait-for": "wait",
}
_TMUX_ALIASES = {alias: name for name, alias in TMUX_COMMANDS.items() if alias}

TMUX_READ_ONLY = frozenset({
    "display-message", "has-session", "list-buffers", "list-clients", "list-commands", "list-keys",
    "list-panes", "list-sessions", "list-windows", "show-buffer", "show-environment", "show-hooks",
    "show-messages", "show-options", "show-window-options", "server-access-list",
})
"""tmux commands that only read state; a fleet agent may run them (`display-message -p` to
see its own pane id, `list-panes`, …)."""

_TMUX_GLOBAL_WITH_VALUE = set("cfLST")


def resolve_tmux_command(name: str, *, allow_prefix: bool = True) -> str | None:
    """The full tmux command name for `name` (exact, alias, or unique prefix), else None."""
    if name in TMUX_COMMANDS:
        return name
    if name in _TMUX_ALIASES:
        return _TMUX_ALIASES[name]
    if not allow_prefix or not name:
        return None
    found = [c for c in TMUX_COMMANDS if c.startswith(name)]
    return found[0] if len(found) == 1 else None


def tmux_subcommands(args: list[Word], *, in_command_position: bool) -> list[str]:
    """tmux commands one `tmux ARGS…` invocation would run that are not read-only.

    Global options are skipped (`-L name`, `-S path`, `-f file`, `-2uv`…); `-c CMD` (run a
    shell command) counts as `-c`. Commands chained with `;` / `\\;` are all checked. Outside
    command position (`xargs tmux …`, `find -exec tmux …`) only exact names and aliases count,
    so `grep tmux notes.txt` is not a tmux call. Bare `tmux` is `new-session`.
    """
    k, n = 0, len(args)
    while k < n:
        t = args[k].text
        if t == "--":
            k += 1
            break
        if len(t) > 1 and t.startswith("-") and not args[k].dynamic:
            flags = t[1:]
            k += 1
            for pos, c in enumerate(flags):
                if c == "V":
                    return []
                if c in _TMUX_GLOBAL_WITH_VALUE:
                    if c == "c":
                        return ["-c"]
                    if pos == len(flags) - 1:
                        k += 1
                    break
            continue
        break
    if k >= n:
        return ["new-session"] if in_command_position else []
    found, expect = [], True
    for w in args[k:]:
        t = w.text
        if expect:
            name = t[:-1] if t.endswith(";") else t
            if name:
                full = resolve_tmux_command(name, allow_prefix=in_command_position)
                if full is None:
                    if in_command_position:
                        found.append(name)
                    elif not found:
                        return []
                elif full not in TMUX_READ_ONLY:
                    found.append(full)
                expect = t.endswith(";")
            continue
        if t.endswith(";"):
            expect = True
    return found


# ================================================================ cafleet commands

ID_FLAGS = ("--fleet-id", "--agent-id", "--member-id", "--task-id", "--to")
_VALUE_FLAGS = set(ID_FLAGS) | {
    "--text", "--name", "--description", "--coding-agent", "--model", "--prompt-file", "--lines",
    "--choice", "--freetext", "--timeout", "--limit", "--write", "--role", "--every",
}


class CafleetCall:
    """One `cafleet …` invocation as the hook sees it."""

    __slots__ = ("group", "sub", "positionals", "options", "variable_ids", "repeated")

    def __init__(self):
        self.group = self.sub = None
        self.positionals: list[Word] = []
        self.options: dict[str, list[Word]] = {}
        self.variable_ids: list[tuple[str, str]] = []  # (flag or FLEET_ID, raw text)
        self.repeated: str | None = None

    def literal(self, flag: str) -> str | None:
        values = self.options.get(flag)
        if values and not values[-1].dynamic:
            return values[-1].text
        return None


def parse_cafleet(args: list[Word]) -> CafleetCall:
    """Parse the words after `cafleet` (global options, group, subcommand, options)."""
    call = CafleetCall()
    k, n, rest_positional = 0, len(args), False
    while k < n:
        w = args[k]
        t = w.text
        k += 1
        if not rest_positional and t == "--":
            rest_positional = True
            continue
        if not rest_positional and t.startswith("--") and not w.dynamic:
            flag, eq, value = t.partition("=")
            if flag in _VALUE_FLAGS:
                if eq:
                    val = Word(value, w.dynamic)
                elif k < n:
                    val = args[k]
                    k += 1
                else:
                    continue
                call.options.setdefault(flag, []).append(val)
            continue
        if not rest_positional and t.startswith("--") and w.dynamic:
            flag, eq, value = t.partition("=")
            if eq and flag in ID_FLAGS:
                call.options.setdefault(flag, []).append(Word(value, True))
            continue
        if call.group is None and not rest_positional:
            call.group = t
        elif call.sub is None and not rest_positional:
            call.sub = t
        else:
            call.positionals.append(w)
    for flag in ID_FLAGS:
        values = call.options.get(flag, [])
        for v in values:
            if v.dynamic:
                call.variable_ids.append((flag, v.text))
        is_ack = call.group == "message" and call.sub == "ack"
        if len(values) > 1 and not (flag == "--task-id" and is_ack) and call.repeated is None:
            call.repeated = flag
    if call.group == "fleet" and call.sub in ("delete", "show") and call.positionals:
        if call.positionals[0].dynamic:
            call.variable_ids.append(("FLEET_ID", call.positionals[0].text))
    return call


def _cafleet_args(words: list[Word]):
    """Yield the argument words of every `cafleet` invocation in one simple command
    (`cafleet …`, `/path/to/cafleet …`, `python -m cafleet …`, `uv run cafleet …`)."""
    for k, w in enumerate(words):
        b = _base(w)
        if b == "cafleet":
            yield words[k + 1 :]
        elif b.startswith("python") and k + 2 < len(words) and words[k + 1].text == "-m" \
                and words[k + 2].text == "cafleet.cli":  # `-m cafleet` is caught by the word itself
            yield words[k + 3 :]


# ================================================================ analysis


class Findings:
    __slots__ = ("tmux", "variable_ids", "repeated", "member_create", "fleet_delete")

    def __init__(self):
        self.tmux: list[str] = []
        self.variable_ids: list[tuple[str, str]] = []
        self.repeated: list[str] = []
        self.member_create: list[str | None] = []  # target fleet id (None: not given literally)
        self.fleet_delete: list[str | None] = []

    def __bool__(self) -> bool:
        return bool(self.tmux or self.variable_ids or self.repeated or self.member_create or self.fleet_delete)


_INERT = {"echo", "printf", "man", "info", "which", "type", "whatis", "whereis", "apropos", "grep", "egrep",
          "fgrep", "rg", "ag", "ack", "locate"}
"""Commands that only print or search their arguments: `echo tmux kill-server` runs no tmux."""


def analyze(command: str) -> Findings:
    """What in a Bash command line the PreToolUse hook cares about (pure; no DB)."""
    f = Findings()
    for words in split_commands(command):
        ci = command_index(words)
        inert = ci is not None and _base(words[ci]) in _INERT
        for k, w in enumerate(words):
            if _base(w) == "tmux" and not (inert and k != ci):
                for sub in tmux_subcommands(words[k + 1 :], in_command_position=(k == ci)):
                    if sub not in f.tmux:
                        f.tmux.append(sub)
        for args in _cafleet_args(words):
            call = parse_cafleet(args)
            f.variable_ids.extend(call.variable_ids)
            if call.repeated:
                f.repeated.append(call.repeated)
            if call.group == "member" and call.sub == "create":
                f.member_create.append(call.literal("--fleet-id"))
            if call.group == "fleet" and call.sub == "delete":
                target = call.positionals[0] if call.positionals else None
                f.fleet_delete.append(target.text if target is not None and not target.dynamic
                                      else call.literal("--fleet-id"))
    return f


# ================================================================ reasons


_TMUX_KEYS = {"send-keys", "send-prefix", "paste-buffer", "set-buffer", "load-buffer", "-c", "run-shell",
              "if-shell", "respawn-pane", "respawn-window"}
_TMUX_READ = {"capture-pane", "pipe-pane", "save-buffer", "copy-mode"}
_TMUX_KILL = {"kill-pane", "kill-window", "kill-session", "kill-server", "respawn-pane", "respawn-window",
              "unlink-window"}
_TMUX_SPAWN = {"split-window", "new-window", "new-session", "break-pane", "join-pane", "move-pane"}


def tmux_reason(subcommands: list[str], agent: dict) -> str:
    """Deny reason for raw tmux: the cafleet primitive(s) that do the job, with literal ids."""
    fleet_id, agent_id = agent["fleet_id"], agent["agent_id"]
    base = f"cafleet --fleet-id {fleet_id}"
    m = "<member-agent-id>"
    shown = ", ".join(f"`{s}`" for s in subcommands)
    head = (f"cafleet: raw tmux ({shown}) is not allowed for a fleet agent: panes are driven only through "
            "cafleet primitives, which keep the broker's records, the layout and the permission rules right.")
    if agent.get("role") == "member":
        director = agent.get("parent_agent_id") or (agent.get("fleet") or {}).get("director_agent_id") or "<director-agent-id>"
        return (head + " You are a member: never touch panes yourself; ask your Director instead: "
                f'`{base} message send --agent-id {agent_id} --to {director} --text "<what you need>"`.')
    subs = set(subcommands)
    lines = [head, "Use instead:"]
    if subs & _TMUX_READ:
        lines.append(f"- read a member's screen: `{base} member capture --member-id {m} --changed`")
    if subs & _TMUX_KEYS:
        lines.append(f'- tell a member something: `{base} message send --agent-id {agent_id} --to {m} --text "<text>"`')
        lines.append(f"- make a member read its inbox now: `{base} member ping --member-id {m}`")
        lines.append(f"- answer a member's 4-option prompt (after asking the user): `{base} member send-input "
                     f'--member-id {m} --choice <1-3>` (or `--freetext "<text>"`)')
        lines.append(f'- run a shell command in a member\'s pane: `{base} member exec --member-id {m} "<cmd>"`')
    if subs & _TMUX_KILL:
        lines.append(f"- stop a member: `{base} member delete --member-id {m}`; if it is stuck: "
                     f"`{base} member delete --member-id {m} --force` (never kill-pane)")
    if subs & _TMUX_SPAWN:
        lines.append(f'- start a member: `{base} member create --name <name> --description "<role>" -- "<prompt>"` '
                     "(it splits the pane and rebalances the layout itself)")
    if len(lines) == 2:  # layout, selection, options…: nothing for an agent to do by hand
        lines.append(f"- see members and their panes: `{base} member list`; read one: "
                     f"`{base} member capture --member-id {m}` (cafleet manages layout and focus itself)")
    return "\n".join(lines)


def variable_reason(found: list[tuple[str, str]], agent: dict) -> str:
    shown = ", ".join(f"{flag} {raw}" if flag != "FLEET_ID" else f"fleet id {raw}" for flag, raw in found[:4])
    return (f"cafleet: write ids as literal UUIDs, not shell variables or substitutions ({shown}). "
            "Permission rules match the literal command string, so a command with `$VAR`, `${VAR}`, "
            "`$(…)` or backticks in it never matches an allow rule, and it hides which agent it acts as. "
            f"Your ids: fleet {agent['fleet_id']}, agent {agent['agent_id']}; e.g. "
            f"`{poll_command(agent['fleet_id'], agent['agent_id'])}`. Paste the other ids the same way "
            "(from `member list` / `message poll` output).")


def repeated_reason(flags: list[str], agent: dict) -> str:
    return (f"cafleet: `{flags[0]}` appears more than once in this command; give each id flag once "
            f"(the CLI would silently use the last one). Your agent id is {agent['agent_id']}.")


def create_reason(agent: dict) -> str:
    return ("cafleet: no monitoring /loop is running for you (Director "
            f"{agent['agent_id']}), and the cafleet-agent-team-monitoring skill requires it BEFORE the "
            "first `member create`: start the /loop now (CronCreate, every minute, with the skill's "
            "/loop Prompt Template and your literal ids: fleet "
            f"{agent['fleet_id']}, Director {agent['agent_id']}), then run this `member create` again. "
            "If a loop is already running, call CronList once so cafleet sees it.")


def delete_reason(agent: dict, loops: list[dict]) -> str:
    shown = "; ".join(
        f"id {lp['loop_id']}" + (f" (cron `{lp['cron']}`)" if lp.get("cron") else "") for lp in loops[:5]
    )
    return ("cafleet: your monitoring loop is still running (" + shown + "). Teardown order "
            "(Shutdown Protocol): stop every /loop first with CronDelete, then `member delete` each "
            "member, check `member list` is empty, then `cafleet fleet delete "
            f"{agent['fleet_id']}`. If CronList no longer shows the loop, call CronList once so "
            "cafleet forgets it.")


# ================================================================ handlers


def _deny(reason: str) -> dict:
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                   "permissionDecisionReason": reason}}


# Commands a member may run itself because they only read: the first word, and for git the
# subcommand. Anything with a redirection, a variable or a substitution is not counted.
MEMBER_READ_ONLY = frozenset({
    "ls", "cat", "head", "tail", "wc", "grep", "egrep", "fgrep", "rg", "pwd", "echo", "printf", "which",
    "type", "file", "stat", "du", "df", "tree", "sort", "uniq", "cut", "tr", "diff", "cmp", "date",
    "basename", "dirname", "realpath", "readlink", "true", "false", "test", "[", "jq", "nl", "less", "more",
})
MEMBER_READ_ONLY_GIT = frozenset({"status", "diff", "log", "show", "rev-parse", "ls-files", "blame", "describe",
                                  "shortlog", "grep"})
_FIND_ACTIONS = {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprintf", "-fls"}


def _read_only(words: list[Word]) -> bool:
    """Whether a simple command plainly only reads (see `MEMBER_READ_ONLY`)."""
    k = command_index(words)
    if k is None or any(w.dynamic for w in words):
        return False
    argv = [w.text for w in words[k:]]
    name = _base(words[k])
    if name == "git":
        sub = next((a for a in argv[1:] if not a.startswith("-")), None)
        return sub in MEMBER_READ_ONLY_GIT
    if name == "find":
        return not any(a in _FIND_ACTIONS for a in argv[1:])
    if name == "sed":
        return "-n" in argv and not any(a.startswith(("-i", "--in-place")) for a in argv[1:])
    return name in MEMBER_READ_ONLY


def member_guard(command: str, environ) -> dict | None:
    """PreToolUse(Bash) for a claude *member* (a session with `$CAFLEET_AGENT_ID`, placed as
    a member): deny any command that is not one of its own cafleet commands or plainly
    read-only, and tell it to ask its Director, who runs it in the member's pane with
    `member exec` (the routing of the cafleet skill, "Routing Bash via the Director"). So a
    member never stalls on a permission prompt in its own pane. Silent for everyone else.
    """
    if not environ.get("CAFLEET_AGENT_ID") or pane_of(environ) is None:
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    br.close()
    if agent["role"] != "member" or agent["agent_id"] != environ.get("CAFLEET_AGENT_ID"):
        return None
    from cafleet import permissions

    fleet_id, me = agent["fleet_id"], agent["agent_id"]
    director = agent.get("parent_agent_id") or agent["fleet"]["director_agent_id"]
    own = permissions.member_rules(fleet_id, me, director)["allow"]
    if any(permissions.matches(rule, command.strip()) for rule in own):
        return None  # one of its own cafleet commands, exactly as its rules allow
    simple = split_commands(command)
    if ">" not in command and simple and all(_read_only(words) for words in simple):
        return None
    quoted = command.replace("'", "'\\''")
    return _deny(
        "cafleet: as a fleet member you run only your own cafleet commands and read-only commands "
        "yourself; this command needs your Director. Ask for it, then wait for your next turn: "
        f"`cafleet --fleet-id {fleet_id} message send --agent-id {me} --to {director} --text "
        f"'please run: {quoted}'`. The Director runs it in your pane (`member exec`) after any approval it "
        "needs, and pings you; the output arrives as your next input."
    )


def pre_tool_use(data: dict, environ) -> dict | None:
    """PreToolUse(Bash): deny raw tmux, variable ids, repeated id flags, and the lifecycle
    mistakes of a claude Director. Silent otherwise.

    Reads `tool_name` and `tool_input.command`; answers with `hookSpecificOutput`
    `{hookEventName: "PreToolUse", permissionDecision: "deny", permissionDecisionReason}`
    (https://code.claude.com/docs/en/hooks, "PreToolUse" → "PreToolUse decision control";
    a deny reason is shown to Claude, and hooks run before the permission rules are checked,
    so allowed and read-only commands are seen too — REAL-CLIENT.md "Hooks").
    """
    if data.get("tool_name", "Bash") != "Bash":
        return None
    tool_input = data.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if not isinstance(command, str):
        return None
    specific = _specific_denial(command, environ)
    if specific is not None:
        return specific
    return member_guard(command, environ)  # members only ($CAFLEET_AGENT_ID): one DB read


def _specific_denial(command: str, environ) -> dict | None:
    """Raw tmux, variable ids, repeated id flags, and a claude Director's lifecycle mistakes."""
    if not mentions_tmux_or_cafleet(command):
        return None  # the common case: nothing to look at, no DB touched
    if pane_of(environ) is None:
        return None
    found = analyze(command)
    if not found:
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    try:
        reasons = []
        if found.tmux:
            reasons.append(tmux_reason(found.tmux, agent))
        if found.variable_ids:
            reasons.append(variable_reason(found.variable_ids, agent))
        if found.repeated:
            reasons.append(repeated_reason(found.repeated, agent))
        if not reasons and _coding_agent(agent) == "claude":
            own = agent["fleet_id"]
            if any(t in (None, own) for t in found.member_create) and not br.active_loops(agent["agent_id"]):
                reasons.append(create_reason(agent))
            if any(t in (None, own) for t in found.fleet_delete):
                loops = br.active_loops(agent["agent_id"])
                if loops:
                    reasons.append(delete_reason(agent, loops))
    finally:
        br.close()
    return _deny("\n\n".join(reasons)) if reasons else None


def _as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        import json

        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        import re

        m = re.search(r"""\b(?:id|job ?id)\b["']?\s*[:=]?\s*["']?([A-Za-z0-9_-]{4,})""", value, re.I)
        if m:
            return {"id": m.group(1)}
    return {}


def _job_id(*dicts) -> str | None:
    for d in dicts:
        for key in ("id", "jobId", "job_id"):
            v = d.get(key)
            if isinstance(v, (str, int)) and str(v):
                return str(v)
    return None


def post_tool_use(data: dict, environ) -> None:
    """PostToolUse(CronCreate|CronDelete|CronList): keep the broker's loop records true.

    Reads `tool_name`, `tool_input`, `tool_response` and `session_id`
    (https://code.claude.com/docs/en/hooks, "PostToolUse input"; the Cron* shapes are in the
    module docstring). PostToolUse runs only after a tool succeeded, so a failed CronDelete
    changes nothing. No output.
    """
    tool = data.get("tool_name")
    if tool not in ("CronCreate", "CronDelete", "CronList"):
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    agent_id = agent["agent_id"]
    tool_input = _as_dict(data.get("tool_input"))
    response = _as_dict(data.get("tool_response"))
    session_id = data.get("session_id") if isinstance(data.get("session_id"), str) else None
    try:
        if tool == "CronCreate":
            loop_id = _job_id(response)
            recurring = response.get("recurring", tool_input.get("recurring", True))
            if loop_id and recurring is not False:
                durable = response.get("durable", tool_input.get("durable", False))
                br.add_loop(agent_id, loop_id, session_id=session_id, cron=_str(tool_input.get("cron")),
                            prompt=_str(tool_input.get("prompt")), durable=bool(durable))
        elif tool == "CronDelete":
            loop_id = _job_id(tool_input, response)
            if loop_id:
                br.end_loop(agent_id, loop_id)
        else:
            jobs = response.get("jobs")
            if isinstance(jobs, list):
                listed = {}
                for job in jobs:
                    if isinstance(job, dict) and _job_id(job):
                        listed[_job_id(job)] = job
                known = {lp["loop_id"] for lp in br.active_loops(agent_id)}
                for loop_id in known - set(listed):
                    br.end_loop(agent_id, loop_id)
                for loop_id, job in listed.items():
                    if loop_id not in known and job.get("recurring", True) is not False:
                        br.add_loop(agent_id, loop_id, session_id=session_id, cron=_str(job.get("cron")),
                                    prompt=_str(job.get("prompt")), durable=bool(job.get("durable", False)))
    finally:
        br.close()
    return None


def _str(value) -> str | None:
    return value if isinstance(value, str) else None


def identity_context(br, agent: dict, source: str | None) -> str:
    """The SessionStart text: who the agent is, its ids, commands, team and skills."""
    fleet = agent.get("fleet") or {}
    fleet_id, agent_id = agent["fleet_id"], agent["agent_id"]
    base = f"cafleet --fleet-id {fleet_id}"
    role = agent.get("role")
    backend = _coding_agent(agent) or "unknown"
    unread = br.unread_count(agent_id)
    is_root = fleet.get("director_agent_id") == agent_id
    members = br.list_members(fleet_id, None if is_root else agent_id)
    is_director = role == "director" or bool(members)
    lines = [f"cafleet identity (restored by the cafleet plugin at session {source or 'start'}):"]
    fleet_name = fleet.get("name")
    if is_director:
        kind = "the root Director" if is_root else "a Director"
        lines.append(f'You are "{agent["name"]}", {kind} of the cafleet fleet "{fleet_name}" (coding agent: {backend}).')
    else:
        lines.append(f'You are "{agent["name"]}", a {role or "member"} of the cafleet fleet "{fleet_name}" '
                     f"(coding agent: {backend}).")
        if agent.get("description"):
            lines.append(f"Your role: {agent['description']}")
    lines.append(f"- fleet id: {fleet_id}")
    lines.append(f"- your agent id: {agent_id}")
    director_id = agent.get("parent_agent_id") or (None if is_root else fleet.get("director_agent_id"))
    if director_id and not is_root:
        director_name = None
        try:
            director_name = br.get_agent(fleet_id, director_id)["name"]
        except Exception:  # noqa: BLE001 - a gone Director still has an id worth showing
            pass
        lines.append(f"- your Director's agent id: {director_id}" + (f' ("{director_name}")' if director_name else ""))
    lines.append(f"- read your inbox: `{poll_command(fleet_id, agent_id)}` ({unread} un-acked message(s) waiting)")
    lines.append(f"- ack a task once handled: `{base} message ack --agent-id {agent_id} --task-id <task-id>`")
    if director_id and not is_root:
        lines.append(f'- report to your Director: `{base} message send --agent-id {agent_id} --to {director_id} --text "<text>"`')
    if is_director:
        lines.append(f"Your members ({len(members)}):" if members else "You have no members yet.")
        for m in members[:MAX_MEMBERS_LISTED]:
            lines.append(f'- "{m["name"]}": agent id {m["agent_id"]} (coding agent {m.get("coding_agent") or "?"}, '
                         f"{m.get('unread', 0)} un-acked)")
        if len(members) > MAX_MEMBERS_LISTED:
            lines.append(f"- … {len(members) - MAX_MEMBERS_LISTED} more: `{base} member list`")
        if backend == "claude":
            loops = br.active_loops(agent_id)
            if loops:
                shown = ", ".join(f"{lp['loop_id']}" + (f" (`{lp['cron']}`)" if lp.get("cron") else "") for lp in loops)
                lines.append(f"Monitoring /loop recorded as running: {shown}."
                             + (f" This session was {_SOURCE_WORDS[source]}: check with CronList that it still runs."
                                if source in _SOURCE_WORDS else ""))
            else:
                lines.append("No monitoring /loop is recorded: start it (CronCreate) before the next `member create`, "
                             "and keep it running until teardown.")
    lines.append("Write every id literally as above, never as shell variables: permission rules match the literal "
                 "command. Never run tmux yourself; use the cafleet commands.")
    if not is_director and role == "member":
        lines.append("If you need a shell command you may not run, ask your Director to run it for you "
                     "(it uses `cafleet member exec`).")
    skills = SKILLS_DIRECTOR if is_director else SKILLS_MEMBER
    lines.append("Load the cafleet skill(s): " + ", ".join(skills) + ".")
    return "\n".join(lines)


def session_start(data: dict, environ) -> dict | None:
    """SessionStart: restore the agent's identity; on `startup`, end the session-only loops
    of earlier sessions (they died with their claude process). An input without `source` is
    not a SessionStart input: silent.

    Reads `source` (`startup`, `resume`, `clear`, `compact`) and `session_id`; answers with
    `hookSpecificOutput` `{hookEventName: "SessionStart", additionalContext}`
    (https://code.claude.com/docs/en/hooks, "SessionStart" → "SessionStart decision control").
    """
    source = data.get("source")
    if not isinstance(source, str):
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    try:
        session_id = data.get("session_id") if isinstance(data.get("session_id"), str) else None
        if source == "startup" and session_id:
            stale = {lp["session_id"] for lp in br.active_loops(agent["agent_id"])
                     if lp.get("session_id") and lp["session_id"] != session_id}
            for old in stale:
                br.end_loop(agent["agent_id"], session_id=old)
        text = identity_context(br, agent, source)
    finally:
        br.close()
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}


def stop(data: dict, environ) -> dict | None:
    """Stop: un-acked messages → block once per newest un-acked task, naming the poll command.

    Reads `stop_hook_active` (true when a Stop hook already made Claude continue this turn:
    then never block); answers with top-level `{decision: "block", reason}`, the reason being
    Claude's next instruction (https://code.claude.com/docs/en/hooks, "Stop" → "Stop decision
    control"). "Once" is `note_once(agent, "stop", <newest un-acked task id>)`: the same
    backlog does not block twice, a new message can block again.
    """
    if data.get("stop_hook_active"):
        return None
    br, agent = open_agent(environ)
    if agent is None:
        return None
    try:
        agent_id, fleet_id = agent["agent_id"], agent["fleet_id"]
        unread = br.unread_count(agent_id)
        if not unread:
            return None
        row = br.conn.execute(
            "SELECT task_id FROM tasks WHERE recipient_agent_id = ? AND state = 'input_required'"
            " ORDER BY seq DESC LIMIT 1", (agent_id,)).fetchone()
        if row is None or not br.note_once(agent_id, "stop", row[0]):
            return None
    finally:
        br.close()
    return {"decision": "block", "reason": (
        f"You have {unread} un-acked cafleet message(s): run `{poll_command(fleet_id, agent_id)}` before you stop, "
        f"handle each task, ack it with `cafleet --fleet-id {fleet_id} message ack --agent-id {agent_id} "
        "--task-id <task-id>`, and reply to the sender if it asks for something.")}


HANDLERS = {
    "PreToolUse": pre_tool_use,
    "PostToolUse": post_tool_use,
    "SessionStart": session_start,
    "Stop": stop,
}
