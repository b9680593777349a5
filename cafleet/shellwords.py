"""Shell words: the lexer under the PreToolUse hook's view of a Bash command line.

Enough of POSIX sh / bash (checked against bash 5.2) to split a command line into simple
commands and their words as the shell would run them (`lex`):

- splits at `;` `&` `&&` `||` `|` `|&`, newlines and `( )`; drops comments and redirections,
  keeping here-strings and here-documents as the command's known stdin and a pipe or
  `< <(cmd)` as the command it reads from;
- removes quotes: '…', "…", `$'…'` (ANSI-C escapes decoded: `$'\\x74mux'` is `tmux`),
  backslashes and line continuations (`tm\\⏎ux` is `tmux`);
- expands braces (`{tmux,kill-server}` is two words) and keeps an unquoted glob
  (`/usr/bin/tmu[x]`) as the word's `glob` pattern;
- collects the command texts nested in `$( )`, backticks, `<( )`, `>( )`, `$(( ))`, `${…}`
  and unquoted here-documents (`cafleet.shellcommands` descends into them).

Each word keeps whether the shell would expand something in it (`dynamic`: `$VAR`, `${…}`,
`$(…)`, backticks, `$((…))`). Standard library only, and no `re`: the PreToolUse hook imports
it on every Bash call.
"""

from __future__ import annotations


class Word:
    """One shell word after quote removal.

    `text`: the word as the command will see it (a glob is left unexpanded); `dynamic`: it
    holds an expansion whose value the lexer cannot know; `glob`: an fnmatch-style pattern
    when the word has an unquoted `*`, `?` or `[` (else None); `procsub`: the command text of
    a `<( )` / `>( )` that stands for this word (the word is then a `/dev/fd/N` path).
    """

    __slots__ = ("text", "dynamic", "glob", "procsub")

    def __init__(self, text: str, dynamic: bool, glob: str | None = None, procsub: str | None = None):
        self.text, self.dynamic, self.glob, self.procsub = text, dynamic, glob, procsub

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Word({self.text!r}{', dynamic' if self.dynamic else ''}{', glob' if self.glob else ''})"


class Command(list):
    """A simple command: a list of `Word`s, plus what feeds its standard input: `stdin`, known
    texts (here-strings, here-documents), and `stdin_from`, commands whose output it reads
    (the `Command` before it in a pipeline, or the text of `< <(cmd)`)."""

    __slots__ = ("stdin", "stdin_from")

    def __init__(self, words=()):
        super().__init__(words)
        self.stdin: list[str] = []
        self.stdin_from: list = []


_OPERATORS = set(";&|()\n")
_NAME_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | set("0123456789")
_SPECIAL_PARAMS = set("0123456789@*#?$!-")
_GLOB_CHARS = set("*?[")
_Q = "\x00"  # in a word's pattern, marks the next character as quoted (literal)
MAX_DEPTH = 8


# ---------------------------------------------------------------- escapes

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}
_HEX = set("0123456789abcdefABCDEF")
_OCT = set("01234567")


def decode_escapes(s: str, *, echo: bool = False) -> str:
    """Decode backslash escapes as bash's `$'…'` does (bash(1) "QUOTING"): `\\a \\b \\e \\E \\f
    \\n \\r \\t \\v \\\\ \\' \\" \\?`, `\\nnn` (octal), `\\xHH`, `\\uHHHH`, `\\UHHHHHHHH`, `\\cX`.
    With `echo`, octal is `\\0nnn` as for `echo -e` / `printf %b`. Unknown escapes stay."""
    out, i, n = [], 0, len(s)
    while i < n:
        ch = s[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        c = s[i + 1]
        if c in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[c])
            i += 2
        elif c in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[c]
            k = i + 2
            while k < n and k < i + 2 + width and s[k] in _HEX:
                k += 1
            if k == i + 2:
                out.append(s[i : i + 2])
            else:
                try:
                    out.append(chr(int(s[i + 2 : k], 16)))
                except (ValueError, OverflowError):
                    pass
            i = k
        elif c in _OCT and not (echo and c != "0"):
            start = i + 2 if echo else i + 1
            k = start
            while k < n and k < start + 3 and s[k] in _OCT:
                k += 1
            out.append(chr(int(s[start:k] or "0", 8) & 0xFF))
            i = k
        elif c == "c" and i + 2 < n:
            out.append(chr(ord(s[i + 2]) & 0x1F))
            i += 3
        else:
            out.append(s[i : i + 2])
            i += 2
    return "".join(out)


# ---------------------------------------------------------------- globs and braces


def glob_match(pattern: str, name: str) -> bool:
    """fnmatch-style match (`*`, `?`, `[…]` with `!`/`^` and ranges) without `re`."""
    p, n = len(pattern), len(name)
    star, star_n, i, j = -1, 0, 0, 0
    while j < n:
        if i < p and pattern[i] == "*":
            star, star_n, i = i, j, i + 1
            continue
        if i < p:
            ok, width = _match_one(pattern, i, name[j])
            if ok:
                i, j = i + width, j + 1
                continue
        if star < 0:
            return False
        star_n += 1
        i, j = star + 1, star_n
    while i < p and pattern[i] == "*":
        i += 1
    return i == p


def _match_one(pattern: str, i: int, ch: str) -> tuple[bool, int]:
    c = pattern[i]
    if c == "?":
        return True, 1
    if c == "[":
        k = i + 1
        negate = k < len(pattern) and pattern[k] in "!^"
        if negate:
            k += 1
        end = pattern.find("]", k + 1 if k < len(pattern) and pattern[k] == "]" else k)
        if end < 0:
            return ch == "[", 1
        body, hit, m = pattern[k:end], False, 0
        while m < len(body):
            if m + 2 < len(body) and body[m + 1] == "-":
                hit = hit or body[m] <= ch <= body[m + 2]
                m += 3
            else:
                hit = hit or body[m] == ch
                m += 1
        return hit != negate, end - i + 1
    return c == ch, 1


def _brace_expand(pattern: str) -> list[str]:
    """bash brace expansion of a word's pattern (quoted characters carry the `_Q` mark):
    `a{b,c}d` → `abd acd`, `{1..3}` → `1 2 3`; at most 64 results."""
    depth, start = 0, -1
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == _Q:
            i += 2
            continue
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                inner = pattern[start + 1 : i]
                parts = _split_top(inner)
                if len(parts) < 2:
                    parts = _sequence(inner)
                if parts is None or len(parts) < 2:
                    start = -1
                    i += 1
                    continue
                head, tail = pattern[:start], pattern[i + 1 :]
                out = []
                for part in parts:
                    out.extend(_brace_expand(head + part + tail))
                    if len(out) >= 64:
                        break
                return out[:64]
        i += 1
    return [pattern]


def _split_top(inner: str) -> list[str]:
    parts, depth, last, i = [], 0, 0, 0
    while i < len(inner):
        ch = inner[i]
        if ch == _Q:
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[last:i])
            last = i + 1
        i += 1
    parts.append(inner[last:])
    return parts


def _sequence(inner: str) -> list[str] | None:
    bits = inner.split("..")
    if len(bits) not in (2, 3):
        return None
    a, b = bits[0], bits[1]
    if a.lstrip("-").isdigit() and b.lstrip("-").isdigit():
        lo, hi = int(a), int(b)
        step = 1 if lo <= hi else -1
        return [str(x) for x in range(lo, hi + step, step)][:64]
    if len(a) == 1 and len(b) == 1:
        lo, hi = ord(a), ord(b)
        step = 1 if lo <= hi else -1
        return [chr(x) for x in range(lo, hi + step, step)][:64]
    return None


def _unmark(pattern: str) -> str:
    return pattern.replace(_Q, "")


def _to_glob(pattern: str) -> str | None:
    """The fnmatch pattern of a marked word, or None when it has no unquoted glob character."""
    out, has, i = [], False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == _Q:
            q = pattern[i + 1] if i + 1 < len(pattern) else ""
            out.append(f"[{q}]" if q in _GLOB_CHARS else q)
            i += 2
            continue
        has = has or ch in _GLOB_CHARS
        out.append(ch)
        i += 1
    return "".join(out) if has else None


# ---------------------------------------------------------------- matching brackets


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


# ---------------------------------------------------------------- the lexer


class _Lexer:
    def __init__(self, depth: int):
        self.depth = depth
        self.commands: list[Command] = []
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

    def lex(self, s: str) -> None:  # noqa: C901 - one pass over the text, state kept local for speed
        n = len(s)
        i = 0
        cur = Command()
        buf: list[str] = []  # the word's text, quoted characters marked with _Q
        in_word = False
        dynamic = False
        quoted = False  # the current word had quotes or backslashes (matters for a here-doc delimiter)
        special = False  # an unquoted glob or brace character: expand before use
        target = None  # what the next word is: "drop" (a redirection target), "stdin" (<<< word)
        stdin_sub = False  # the next process substitution is the command's stdin (`< <(cmd)`)
        heredocs: list = []  # (delimiter, quoted, strip_tabs, the owning command's stdin list)
        heredoc_next = None  # (strip_tabs) when the next word is a here-doc delimiter
        pipe_from = None  # the command whose output this one reads (`a | b`)

        def quote(text: str) -> None:
            buf.extend(_Q + c for c in text)

        def end_word():
            nonlocal in_word, dynamic, quoted, special, target, heredoc_next, buf
            if in_word:
                marked = "".join(buf)
                text = _unmark(marked)
                if heredoc_next is not None:
                    heredocs.append((text, quoted, heredoc_next, cur.stdin))
                    heredoc_next = None
                elif target == "drop":
                    target = None
                elif target == "stdin":
                    cur.stdin.append(text + "\n")
                    target = None
                elif special:
                    for part in _brace_expand(marked) if "{" in marked else [marked]:
                        if part:  # an empty unquoted result is no word at all (`{,tmux}`)
                            cur.append(Word(_unmark(part), dynamic, _to_glob(part)))
                else:
                    cur.append(Word(text, dynamic))
            buf = []
            in_word = dynamic = quoted = special = False

        def end_command(piped: bool = False):
            nonlocal cur, pipe_from
            end_word()
            if pipe_from is not None:
                cur.stdin_from.append(pipe_from)
            if cur:
                self.commands.append(cur)
            pipe_from = cur if piped else None
            cur = Command()

        while i < n:
            ch = s[i]
            if ch in "\\'\"":
                quoted = True
            if ch == "\\":
                if i + 1 < n and s[i + 1] == "\n":
                    i += 2
                    continue
                if i + 1 < n:
                    quote(s[i + 1])
                in_word = True
                i += 2
                continue
            if ch == "'":
                k = s.find("'", i + 1)
                k = n if k < 0 else k
                quote(s[i + 1 : k])
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
                            quote(s[i + 1])
                        i += 2
                    elif c2 == "$":
                        inner: list[str] = []
                        i, d = self._dollar(s, i, inner)
                        quote("".join(inner))
                        dynamic = dynamic or d
                    elif c2 == "`":
                        inner = []
                        i = self._backtick(s, i, inner)
                        quote("".join(inner))
                        dynamic = True
                    else:
                        quote(c2)
                        i += 1
                i += 1
                continue
            if ch == "$":
                if i + 1 < n and s[i + 1] == "'":  # $'ANSI-C': escapes decoded, as bash does
                    k = i + 2
                    while k < n and s[k] != "'":
                        k += 2 if s[k] == "\\" else 1
                    quote(decode_escapes(s[i + 2 : k]))
                    quoted = in_word = True
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
                if k < n and s[k] == "(":  # <( … ) / >( … ) process substitution: a /dev/fd path
                    end = _match_paren(s, k + 1)
                    body = s[k + 1 : end]
                    self.nested.append(body)
                    if stdin_sub:
                        cur.stdin_from.append(body)
                        stdin_sub = False
                        target = None
                    elif target == "drop":
                        target = None
                    else:
                        cur.append(Word("/dev/fd/63", False, procsub=body))
                    i = end + 1
                    continue
                op = ch
                while k < n and s[k] in "<>&|-" and len(op) < 3:
                    op += s[k]
                    k += 1
                if op.startswith("<<<"):
                    target = "stdin"
                elif op.startswith("<<"):
                    heredoc_next = op.startswith("<<-")
                else:
                    target = "drop"
                    j = k
                    while j < n and s[j] in " \t":
                        j += 1
                    stdin_sub = op == "<" and s[j : j + 2] == "<("
                i = k
                continue
            if ch in _OPERATORS:
                if ch == "&" and i + 1 < n and s[i + 1] == ">":  # &> / &>> redirect
                    end_word()
                    k = i + 2
                    while k < n and s[k] == ">":
                        k += 1
                    target = "drop"
                    i = k
                    continue
                piped = ch == "|" and not (i + 1 < n and s[i + 1] == "|")
                end_command(piped)
                if ch == "|" and i + 1 < n and s[i + 1] in "|&":
                    i += 2
                    continue
                if ch == "\n" and heredocs:
                    i = self._read_heredocs(s, i + 1, heredocs)
                    heredocs = []
                    continue
                i += 1
                continue
            if ch in "*?[{":
                special = True
            buf.append(ch)
            in_word = True
            i += 1
        end_command()
        if heredocs:  # a here-document at the very end, without its newline
            self._read_heredocs(s, n, heredocs)

    def _read_heredocs(self, s: str, i: int, heredocs) -> int:
        """Read the bodies of the pending here-documents from s[i:]; each body joins its
        command's stdin, and an unquoted one's substitutions are lexed. Returns the index
        after the last delimiter line."""
        n = len(s)
        for delimiter, quoted, strip_tabs, stdin in heredocs:
            body = []
            while i < n:
                k = s.find("\n", i)
                line = s[i:] if k < 0 else s[i:k]
                i = n if k < 0 else k + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                body.append(line.lstrip("\t") if strip_tabs else line)
            text = "\n".join(body) + "\n"
            if not quoted:
                self._substitutions_only(text)
            stdin.append(text)
        return i


def lex(command: str, depth: int = 0) -> tuple[list[Command], list[str]]:
    """`(simple commands, nested command texts)` of one command line, without descending."""
    lexer = _Lexer(depth)
    lexer.lex(command)
    return lexer.commands, lexer.nested
