"""Which shell commands a claude member may run itself: the ones that plainly only read.

A claude member runs non-interactively approved for its own cafleet commands; anything else
would stop it on a permission prompt in a pane nobody watches. So the PreToolUse hook
(`cafleet.pretooluse.member_guard`) routes every other command to the member's Director,
except the simple commands this module can prove only read. The list is small and exact: a command
is read-only when its command word is one of `READ_ONLY` (or `find`, `sed`, `git` with the
checks below), it comes first (no `NAME=value` before it: `PATH=… ls`, `LD_PRELOAD=… ls`,
`LESSOPEN=… less` change what runs; no wrapper such as `env` or `sudo`), none of its words is
expanded at run time, and none of its options is one that writes or runs something:

- `sort -o/--output/-T/--compress-program`, `uniq IN OUT` (a second operand is written),
  `tree -o`, `file -C`, `date -s/--set`, `rg --pre/--hostname-bin` (run a program);
- `find` with `-exec`, `-execdir`, `-ok`, `-okdir`, `-delete`, `-fprint`, `-fprint0`,
  `-fprintf`, `-fls`;
- `sed` only with scripts made of printing and editing-buffer commands (`p`, `=`, `l`, `d`,
  `n`, `q`, `s///` with flags from `gpiImM` and digits, `y///`, blocks and branches) and the
  options `-n -E -r -s -u -z -e` (no `-i`, no `-f`, no `e`/`w`/`W`/`r`/`R` commands or
  flags: `sed -n '1e cmd'` runs cmd, `1w path` writes);
- `git` only as `git [--no-pager|-P|--no-optional-locks] SUB` with SUB one of `READ_ONLY_GIT`,
  and without `--output` (writes a file), `-O`/`--open-files-in-pager` (runs a program) or
  `--ext-diff`; any other global option is routed (`-c core.fsmonitor=…`, `--config-env`,
  `-C`, `--git-dir`, `--exec-path` can make git run a program).

Long options are matched as GNU getopt_long matches them: any unambiguous prefix
(`sort --out=F` is `--output`), so a prefix of a refused option is refused.
`less`/`more` are not on the list (`LESSOPEN`, `-o`/`--log-file`, `!` commands). A command
with a `>` anywhere is never read-only (`pretooluse.member_guard` checks that on the whole line).
Standard library only: the hook imports it.
"""

from __future__ import annotations

from cafleet.shellcommands import command_name


class _Rule:
    """Refused options of one command: `short` letters (in a `-abc` cluster, up to a letter of
    `short_values`, whose value is the rest of the word or the next word), `long` names (any
    prefix of one refuses; `long_values` take the next word as their value), and
    `max_operands` (more operands write a file, as `uniq IN OUT` does)."""

    __slots__ = ("short", "long", "max_operands", "short_values", "long_values")

    def __init__(self, short="", long=(), max_operands=None, short_values="", long_values=()):
        self.short, self.long, self.max_operands = set(short), tuple(long), max_operands
        self.short_values, self.long_values = set(short_values), set(long_values)


_PLAIN = _Rule()
READ_ONLY = {
    **{name: _PLAIN for name in (
        "ls", "cat", "head", "tail", "wc", "grep", "egrep", "fgrep", "pwd", "echo", "printf", "which", "type",
        "stat", "du", "df", "cut", "tr", "diff", "cmp", "basename", "dirname", "realpath", "readlink", "true",
        "false", "test", "[", "jq", "nl")},
    "rg": _Rule(long=("pre", "hostname-bin")),
    "file": _Rule(short="C", long=("compile",)),
    "tree": _Rule(short="o", long=("output",), short_values="LPIHT"),
    "sort": _Rule(short="oT", long=("output", "compress-program", "temporary-directory"), short_values="kSt"),
    "uniq": _Rule(max_operands=1, short_values="fsw", long_values=("skip-fields", "skip-chars", "check-chars")),
    "date": _Rule(short="s", long=("set",), short_values="dfrI"),
}
"""Commands that only read, each with the options that would make it write or run something."""

READ_ONLY_GIT = frozenset({"status", "diff", "log", "show", "rev-parse", "ls-files", "blame", "describe",
                           "shortlog", "grep"})
_GIT_GLOBAL_OK = frozenset({"--no-pager", "-P", "--no-optional-locks"})
_GIT_REFUSED = _Rule(short="O", long=("output", "open-files-in-pager", "ext-diff"), short_values="nSGLeABCfm")
_FIND_ACTIONS = frozenset({"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf",
                           "-fls"})


def is_read_only(words) -> bool:
    """Whether one simple command (a list of `shellwords.Word`) plainly only reads."""
    if not words or any(w.dynamic for w in words):
        return False
    name = command_name(words[0])
    if words[0].glob is not None or name != words[0].text.rsplit("/", 1)[-1]:
        return False
    args = [w.text for w in words[1:]]
    if name == "git":
        return _git_ok(args)
    if name == "find":
        return not any(a in _FIND_ACTIONS for a in args)
    if name == "sed":
        return _sed_ok(args)
    rule = READ_ONLY.get(name)
    return rule is not None and _options_ok(args, rule)


def _refused_long(arg: str, names) -> bool:
    name = arg[2:].split("=", 1)[0]
    return bool(name) and any(n.startswith(name) for n in names)


def _options_ok(args: list[str], rule: _Rule) -> bool:
    operands, k, options_done = 0, 0, False
    while k < len(args):
        a = args[k]
        k += 1
        if a == "--" and not options_done:
            options_done = True
            continue
        if a.startswith("--") and len(a) > 2:
            if _refused_long(a, rule.long):
                return False
            if options_done:
                operands += 1
            elif "=" not in a and a[2:] in rule.long_values:
                k += 1
            continue
        if a.startswith("-") and len(a) > 1:
            for pos, c in enumerate(a[1:], 1):
                if c in rule.short:
                    return False
                if c in rule.short_values:  # the rest of the word, or the next word, is its value
                    if not options_done and pos == len(a) - 1:
                        k += 1
                    break
            if not options_done:
                continue
        operands += 1
    return rule.max_operands is None or operands <= rule.max_operands


def _git_ok(args: list[str]) -> bool:
    k = 0
    while k < len(args) and args[k].startswith("-"):
        if args[k] not in _GIT_GLOBAL_OK:
            return False
        k += 1
    if k >= len(args) or args[k] not in READ_ONLY_GIT:
        return False
    return _options_ok(args[k + 1 :], _GIT_REFUSED)


# ---------------------------------------------------------------- sed

_SED_FLAGS = set("nErsuz")
_SED_LONG = {"--quiet", "--silent", "--regexp-extended", "--separate", "--unbuffered", "--null-data", "--posix",
             "--sandbox"}
_SED_SIMPLE = set("pPl=dDnNgGhHxzqQ")
_SED_S_FLAGS = set("gpiImM0123456789")
_SED_SEPARATORS = set(";\n")


def _sed_ok(args: list[str]) -> bool:
    scripts, operands, k = [], [], 0
    while k < len(args):
        a = args[k]
        k += 1
        if a.startswith("--expression="):
            scripts.append(a.partition("=")[2])
        elif a == "--expression":
            if k >= len(args):
                return False
            scripts.append(args[k])
            k += 1
        elif a.startswith("--"):
            if a not in _SED_LONG:
                return False
        elif a.startswith("-") and len(a) > 1:
            for pos, c in enumerate(a[1:], 1):
                if c == "e":
                    rest = a[pos + 1 :]
                    if rest:
                        scripts.append(rest)
                    elif k < len(args):
                        scripts.append(args[k])
                        k += 1
                    else:
                        return False
                    break
                if c not in _SED_FLAGS:
                    return False
        else:
            operands.append(a)
    if not scripts:
        if not operands:
            return False
        scripts.append(operands[0])
    return all(sed_script_is_read_only(s) for s in scripts)


def sed_script_is_read_only(script: str) -> bool:
    """Whether a sed script only prints and edits its buffers (GNU sed 4.9 syntax): addresses,
    `!`, blocks, the commands `pPl=dDnNgGhHxzqQ`, branches and labels, `s` with flags from
    `gpiImM` and digits, `y`, comments. Anything else (`e`, `w`, `W`, `r`, `R`, `a`, `i`, `c`,
    `s///e`, `s///w f`, …) is not."""
    i, n = 0, len(script)

    def skip_ws(j: int) -> int:
        while j < n and script[j] in " \t":
            j += 1
        return j

    def delimited(j: int, count: int) -> int:
        """Skip `count` delimiter-terminated parts starting after the delimiter at j; -1 if bad."""
        if j >= n or script[j] in "\\\n":
            return -1
        delim = script[j]
        j += 1
        for _ in range(count):
            while j < n and script[j] != delim:
                if script[j] == "\n":
                    return -1
                j += 2 if script[j] == "\\" else 1
            if j >= n:
                return -1
            j += 1
        return j

    def address(j: int) -> int:
        if j < n and script[j].isdigit():
            while j < n and (script[j].isdigit() or script[j] == "~"):
                j += 1
            return j
        if j < n and script[j] == "$":
            return j + 1
        if j < n and script[j] in "/\\":
            j = delimited(j + 1 if script[j] == "\\" else j, 1)
            while 0 <= j < n and script[j] in "IM":
                j += 1
            return j
        return j

    while True:
        i = skip_ws(i)
        while i < n and (script[i] in _SED_SEPARATORS or script[i] in " \t"):
            i += 1
        if i >= n:
            return True
        if script[i] == "#":
            k = script.find("\n", i)
            if k < 0:
                return True
            i = k + 1
            continue
        i = address(i)
        if i < 0:
            return False
        i = skip_ws(i)
        if i < n and script[i] == ",":
            i = skip_ws(i + 1)
            if i < n and script[i] in "+~":
                i += 1
                while i < n and script[i].isdigit():
                    i += 1
            else:
                i = address(i)
                if i < 0:
                    return False
        i = skip_ws(i)
        while i < n and script[i] == "!":
            i = skip_ws(i + 1)
        if i >= n:
            return False
        c = script[i]
        i += 1
        if c in "{}":
            continue
        if c in _SED_SIMPLE:
            if c in "qQ":
                i = skip_ws(i)
                while i < n and script[i].isdigit():
                    i += 1
        elif c in "btT:":
            i = skip_ws(i)
            while i < n and script[i] not in ";\n}":
                if c != ":" and script[i] in " \t":
                    break
                i += 1
            if c == ":":
                continue
        elif c == "s":
            i = delimited(i, 2)
            if i < 0:
                return False
            while i < n and script[i] in _SED_S_FLAGS:
                i += 1
        elif c == "y":
            i = delimited(i, 2)
            if i < 0:
                return False
        else:
            return False
        i = skip_ws(i)
        if i < n and script[i] not in ";\n}#":
            return False
