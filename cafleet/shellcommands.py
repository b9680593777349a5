"""The simple commands of a Bash command line, nested ones included, and where each one's
command word sits: what the PreToolUse hook inspects (`cafleet.hooks`).

`split_commands` lexes a command line (`cafleet.shellwords`) and descends into everything
the shell would run from it: `$( )`, backticks, `<( )`, `>( )`, and the scripts handed to a
shell — `sh -c S` (whatever options come before or after `-c`), `eval S`, `env -S S`, and a
shell or `source` that reads a here-string, a here-document, a process substitution or a pipe
from `echo` / `printf` / `cat` (`output_of` knows what those print). `command_index` finds the
word the shell runs past assignments, keywords and wrappers (`sudo`, `env`, `timeout`…);
`command_name` gives its base name, a glob counting as the first name of `NAMES` it matches.

What it cannot see, by design (docs/ARCHITECTURE.md, "What the hook is"): a command word
computed at run time (`t=tmux; $t`), interpreters (`python3 -c`, `perl -e`), a script file's
contents, and text decoded at run time (`base64 -d | sh`, `eval "$(…)"`).

Standard library only, and no `re`: the PreToolUse hook imports it on every Bash call.
"""

from __future__ import annotations

from cafleet.shellwords import _NAME_CHARS, _NAME_START, MAX_DEPTH, Command, Word, decode_escapes, glob_match, lex


def split_commands(command: str, depth: int = 0) -> list[Command]:
    """Every simple command in a shell command line, nested ones (substitutions, scripts
    handed to a shell, `eval`) included, as lists of words with quotes removed."""
    if depth > MAX_DEPTH:
        return []
    commands, nested = lex(command, depth)
    out = list(commands)
    for body in nested:
        out.extend(split_commands(body, depth + 1))
    for words in commands:
        _resolve_stdin(words, depth)
    for words in commands:
        for script in inner_scripts(words, depth):
            out.extend(split_commands(script, depth + 1))
    return out


def _resolve_stdin(words: Command, depth: int) -> None:
    """Add the known output of the commands feeding `words` (a pipe, `< <(cmd)`) to its stdin."""
    for source in words.stdin_from:
        out = output_of_text(source, depth + 1) if isinstance(source, str) else output_of(source)
        if out is not None:
            words.stdin.append(out)
    words.stdin_from = []


# ---------------------------------------------------------------- what a command prints


def output_of_text(command: str, depth: int) -> str | None:
    """What a command line prints, when it is one `echo` / `printf` / `cat` of known text."""
    if depth > MAX_DEPTH:
        return None
    commands, _ = lex(command, depth)
    if len(commands) != 1:
        return None
    _resolve_stdin(commands[0], depth)
    return output_of(commands[0])


def output_of(words: Command) -> str | None:
    """The text a simple command writes to stdout, when the lexer can know it: `echo` (with
    `-n`/`-e`/`-E`), `printf FORMAT ARGS…` (escapes decoded, `%s`/`%b` filled in order) and
    `cat` of its known stdin. None for anything else."""
    k = command_index(words)
    if k is None:
        return None
    name = command_name(words[k])
    args = [w.text for w in words[k + 1 :]]
    if name == "echo":
        escapes = False
        while args and len(args[0]) > 1 and args[0][0] == "-" and set(args[0][1:]) <= set("neE"):
            escapes = escapes or "e" in args[0]
            args = args[1:]
        text = " ".join(args)
        return (decode_escapes(text, echo=True) if escapes else text) + "\n"
    if name == "printf":
        if args[:1] == ["-v"]:
            return None
        if args[:1] == ["--"]:
            args = args[1:]
        if not args:
            return None
        fmt, rest = decode_escapes(args[0], echo=True), args[1:]
        parts, i = [], 0
        while i < len(fmt):
            if fmt[i] == "%" and i + 1 < len(fmt):
                spec = fmt[i + 1]
                if spec == "%":
                    parts.append("%")
                elif spec in "sbdqc":
                    value = rest.pop(0) if rest else ""
                    parts.append(decode_escapes(value, echo=True) if spec == "b" else value)
                else:
                    parts.append(fmt[i : i + 2])
                i += 2
                continue
            parts.append(fmt[i])
            i += 1
        return "".join(parts) + (" " + " ".join(rest) if rest else "")
    if name == "cat" and all(a == "-" for a in args) and words.stdin:
        return "".join(words.stdin)
    return None


# ---------------------------------------------------------------- scripts handed to a shell

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "busybox", "fish", "rbash", "yash",
                    "posh", "tcsh", "csh"})
_SHELL_LONG_WITH_VALUE = {"--rcfile", "--init-file"}
_STDIN_PATHS = {"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"}

NAMES = ("tmux", "cafleet", *sorted(SHELLS), "eval", "env", "source", "exec", "command", "builtin", "xargs",
         "sudo", "doas", "nohup", "timeout", "nice", "setsid", "watch", "find")
"""The command names the hook must recognise even behind a glob: a command word with an
unquoted `*`, `?` or `[` counts as the first of these it matches (`/usr/bin/tmu[x]` is tmux)."""


def command_name(word: Word) -> str:
    """The base name a word runs as a command (`/usr/bin/tmux` → `tmux`); for a glob, the first
    of `NAMES` it matches, else ""; "" for a dynamic word."""
    if word.dynamic:
        return ""
    if word.glob is not None:
        pattern = word.glob.rstrip("/").rsplit("/", 1)[-1]
        return next((name for name in NAMES if glob_match(pattern, name)), "")
    return word.text.rstrip("/").rsplit("/", 1)[-1]


def _script_from_file(word: Word, stdin: list[str], depth: int) -> str | None:
    if word.procsub is not None:
        return output_of_text(word.procsub, depth + 1)
    if word.text in _STDIN_PATHS:
        return "".join(stdin) or None
    return None


def _shell_script(words: Command, k: int, depth: int, at_command: bool) -> str | None:
    """The script a shell at `words[k]` runs, when the lexer can know it: the `-c` string
    (after any options: `bash --norc -o errexit -c -- S`), else its script operand when that is
    a process substitution or /dev/stdin, else (no operand, or `-s`) its known stdin."""
    j, n, c_flag, s_flag = k + 1, len(words), False, False
    while j < n:
        t = words[j].text
        if t in ("--", "-"):
            j += 1
            break
        if t.startswith("--"):
            j += 2 if t in _SHELL_LONG_WITH_VALUE else 1
            continue
        if len(t) > 1 and t[0] in "-+" and not words[j].dynamic:
            j += 1
            for c in t[1:]:
                if c == "c":
                    c_flag = True
                elif c == "s":
                    s_flag = True
                elif c in "oO":
                    j += 1  # -o errexit, +O extglob
            continue
        break
    if c_flag:
        return words[j].text if j < n else None
    if j < n and not s_flag:
        return _script_from_file(words[j], words.stdin, depth)
    if at_command and words.stdin:
        return "".join(words.stdin)
    return None


def inner_scripts(words: Command, depth: int = 0) -> list[str]:
    """Command strings a simple command hands to a shell (see the module docstring); shells are
    found anywhere in the words, so `sudo bash -c S`, `xargs sh -c S` and `find -exec sh -c S`
    count."""
    out = []
    ci = command_index(words)
    for k, w in enumerate(words):
        b = command_name(w)
        if b in SHELLS:
            script = _shell_script(words, k, depth, at_command=(k == ci))
            if script is not None:
                out.append(script)
        elif b in ("source", ".") and k == ci and k + 1 < len(words):
            script = _script_from_file(words[k + 1], words.stdin, depth)
            if script is not None:
                out.append(script)
        elif b == "eval" and k + 1 < len(words):
            out.append(" ".join(x.text for x in words[k + 1 :]))
        elif b == "env":
            for j in range(k + 1, len(words)):
                t = words[j].text
                if t in ("-S", "--split-string") and j + 1 < len(words):
                    out.append(" ".join(x.text for x in words[j + 1 :]))
                    break
                if t.startswith("--split-string="):
                    out.append(" ".join([t.partition("=")[2]] + [x.text for x in words[j + 1 :]]))
                    break
                if t.startswith("-") and not t.startswith("--") and "S" in t:
                    rest = t[t.index("S") + 1 :]
                    out.append(" ".join(([rest] if rest else []) + [x.text for x in words[j + 1 :]]))
                    break
                if not t.startswith("-") and "=" not in t:
                    break
    return out


# ---------------------------------------------------------------- command position


_KEYWORDS = {"!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time",
             "[[", "((", "coproc"}
WRAPPERS = {
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
"""Commands that run another command: wrapper -> its options that take a value (the wrapped
command follows the options)."""
_WRAPPER_POSITIONAL = {"timeout": 1, "flock": 1}  # timeout DURATION cmd, flock FILE cmd


def is_assignment(text: str) -> bool:
    """Whether a word is a variable assignment (`NAME=…`, `NAME+=…`, `NAME[i]=…`)."""
    eq = text.find("=")
    if eq <= 0 or text[0] not in _NAME_START:
        return False
    name = text[:eq].rstrip("+")
    if "[" in name:
        name = name[: name.index("[")]
    return all(c in _NAME_CHARS for c in name)


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
        if is_assignment(t):
            k += 1
            continue
        b = command_name(w)
        if b in WRAPPERS:
            takes_value = WRAPPERS[b]
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
                while k < n and is_assignment(words[k].text):
                    k += 1
            k += _WRAPPER_POSITIONAL.get(b, 0)
            continue
        return k
    return None
