"""A stand-in coding agent: a tiny scripted TUI that behaves like a member in a pane.

Used by `cafleet demo` and the tests so a whole fleet can run with no LLM and no network.
It reads its tty key by key (cbreak mode, like a real TUI) and reacts the way a coding
agent following the cafleet skill would:

- at start: sends `ready` to its Director (`cafleet … message send`);
- a `[cafleet]` preview (two lines) or a typed `cafleet … message poll` command: polls its
  inbox, acks each task, and answers it — a body containing `choose` opens a 4-option
  choice frame (`1.`–`3.`, `4. Type something.`) answered by one key `1`–`3`, or `4` then a
  line of text; any other body is answered `done: <body>`;
- `! CMD` + Enter: runs CMD in a shell (the coding agents' shell shortcut), showing a busy
  line (`Running… · esc to interrupt`) until it ends, then its output;
- `/exit` (the claude backend's exit command): quits.

Like Claude Code 2.1.332 it echoes what is typed into an input line, takes LF as a line
break inside the input and CR (tmux's Enter) as submit, and Backspace (DEL) deletes the last
character. It can misbehave the way real TUIs do, for the keystroke gate's tests: a task body
or typed line ``misbehave: MODE`` (or ``$CAFLEET_STANDIN_MISBEHAVE=MODE`` at start) with MODE

- ``dialog``: open a permission dialog now (``❯ 1. Yes`` … ``Esc to cancel``). While it is
  open every key goes to it: ``1`` or Enter approves (logged ``dialog: approved``), ``3`` or
  Esc declines, anything else is dropped; the input line typed before it comes back after.
- ``late-dialog``: the next input line opens that dialog 100 ms after its first key arrives.
- ``shell``: exec a shell in the pane (the agent "exits to a shell", same pid).
- ``exit1``: exit with status 1 three seconds later.

Every key it receives is also logged, with whether a dialog was open, to
``$CAFLEET_STANDIN_LOG.raw`` (one JSON object a line: ``{"key", "dialog"}``).

Its identity comes from `CAFLEET_FLEET_ID`, `CAFLEET_AGENT_ID`, `CAFLEET_DIRECTOR_ID`; the
argv a real backend would get (prompt, `--model`, `--settings` …) is accepted and ignored,
so an executable named `claude` that starts it can stand in for the real one
(`cafleet.demo.install_standin`). With `--director` it only shows
what it is sent (a Director pane for the demo). Every line it receives is appended, as
`repr`, to `$CAFLEET_STANDIN_LOG` when set (tests read it to see exactly what arrived).
"""

from __future__ import annotations

import codecs
import json
import os
import select
import shlex
import subprocess
import sys
import time

CHOICES = ("Red", "Green", "Blue")


class StandIn:
    def __init__(self, director_mode: bool = False):
        self.director_mode = director_mode
        self.fleet_id = os.environ.get("CAFLEET_FLEET_ID", "")
        self.agent_id = os.environ.get("CAFLEET_AGENT_ID", "")
        self.director_id = os.environ.get("CAFLEET_DIRECTOR_ID", "")
        self.log_path = os.environ.get("CAFLEET_STANDIN_LOG")
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.pending = ""
        self.dialog_open = False
        self.late_dialog = False
        self.buffer: list[str] = []

    # -- io ------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def log(self, kind: str, value: str) -> None:
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"kind": kind, "value": value}, ensure_ascii=False) + "\n")

    def _next_char(self, timeout: float | None = None) -> str | None:
        """One character from the tty (None on timeout), logged raw with the dialog state."""
        fd = sys.stdin.fileno()
        while not self.pending:
            if timeout is not None and not select.select([fd], [], [], timeout)[0]:
                return None
            data = os.read(fd, 1024)
            if not data:
                raise EOFError
            self.pending += self.decoder.decode(data)
        ch, self.pending = self.pending[0], self.pending[1:]
        if self.log_path:
            with open(self.log_path + ".raw", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": ch, "dialog": self.dialog_open}, ensure_ascii=False) + "\n")
        return ch

    def read_key(self) -> str:
        ch = self._next_char()
        assert ch is not None
        return ch

    def read_line(self) -> str:
        """An input line: echoed as typed; LF is a line break inside it, CR submits, DEL
        deletes. Each of its lines is logged ("line") when it is submitted."""
        self.buffer = []
        first_key_at = None
        while True:
            timeout = None
            if self.late_dialog and first_key_at is not None:
                timeout = max(0.0, first_key_at + 0.1 - time.monotonic())
            ch = self._next_char(timeout)
            if ch is None:  # the late dialog's moment
                self.late_dialog = False
                self.dialog()
                continue
            if first_key_at is None:
                first_key_at = time.monotonic()
            if ch == "\r":
                text = "".join(self.buffer)
                sys.stdout.write("\n")
                for line in text.split("\n"):
                    self.log("line", line)
                return text
            if ch in "\x7f\x08":
                if self.buffer:
                    gone = self.buffer.pop()
                    sys.stdout.write("\b \b" if gone != "\n" else "\x1b[A")
            else:
                self.buffer.append(ch)
                sys.stdout.write("\n  " if ch == "\n" else ch)
            sys.stdout.flush()

    def dialog(self) -> str:
        """Draw a permission dialog like Claude Code's and block until it is answered; then
        redraw the input line typed before it. Returns `approved` or `declined`."""
        self.dialog_open = True
        self.say("\n Bash command\n touch /tmp/cafleet-standin-approved\n Do you want to proceed?\n"
                 " ❯ 1. Yes\n   2. Yes, and don't ask again\n   3. No\n Esc to cancel · Tab to amend")
        while True:
            key = self.read_key()
            if key in "1\r":
                answer = "approved"
                break
            if key in "3\x1b":
                answer = "declined"
                break
        self.dialog_open = False
        self.log("dialog", answer)
        sys.stdout.write("\x1b[2J\x1b[H")
        self.say(f"(permission {answer})")
        sys.stdout.write("> " + "".join(self.buffer).replace("\n", "\n  "))
        sys.stdout.flush()
        return answer

    def misbehave(self, mode: str) -> None:
        """Start misbehaving (see the module docstring)."""
        mode = mode.strip()
        if mode == "dialog":
            self.dialog()
        elif mode == "late-dialog":
            self.late_dialog = True
        elif mode == "shell":
            sys.stdout.flush()
            os.execvp("sh", ["sh"])
        elif mode == "exit1":
            self.say("(exiting with status 1 in 3 s)")
            time.sleep(3)
            self.say("Unable to connect")
            os._exit(1)

    # -- cafleet -------------------------------------------------------------

    def cafleet(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cafleet", *args], capture_output=True, text=True)

    def send(self, text: str) -> None:
        r = self.cafleet("--fleet-id", self.fleet_id, "message", "send", "--agent-id", self.agent_id,
                         "--to", self.director_id, "--text", text)
        self.say(f"  sent to Director: {text!r}" if r.returncode == 0 else f"  send failed: {r.stderr.strip()}")

    def poll_and_answer(self, argv: list[str] | None = None) -> None:
        argv = argv or ["--fleet-id", self.fleet_id, "message", "poll", "--agent-id", self.agent_id]
        if "--json" not in argv:
            argv = ["--json", *argv]
        for _ in range(100):  # a page at a time, as a real agent reads: ack it, poll again while more wait
            r = self.cafleet(*argv)
            if r.returncode != 0:
                self.say(f"  poll failed: {r.stderr.strip()}")
                return
            page = json.loads(r.stdout)
            tasks = page["tasks"]
            self.say(f"  polled {len(tasks)} task(s)")
            for task in reversed(tasks):  # oldest first
                self.cafleet("--fleet-id", self.fleet_id, "message", "ack", "--agent-id", self.agent_id,
                             "--task-id", task["task_id"])
                self.say(f"  acked {task['task_id']}: {task['body']!r}")
                if task["body"].startswith("misbehave: "):
                    mode = task["body"][len("misbehave: "):]
                    if mode == "late-dialog":  # armed before it says so
                        self.misbehave(mode)
                    self.send(f"done: {task['body']}")
                    if mode != "late-dialog":
                        self.misbehave(mode)
                elif "choose" in task["body"].lower():
                    self.send(f"chose: {self.choice_frame(task['body'])}")
                else:
                    self.send(f"done: {task['body']}")
            if not page["more"]:
                return

    def choice_frame(self, question: str) -> str:
        """Draw a 4-option frame like Claude Code's AskUserQuestion (cursor on option 1, an
        `Esc to cancel` footer), read the answer, then erase the frame as Claude does."""
        self.say(f"? {question}")
        for i, name in enumerate(CHOICES, 1):
            self.say(f"{'❯' if i == 1 else ' '} {i}. {name}")
        self.say("  4. Type something.")
        self.say("Enter to select · Esc to cancel")
        while True:
            key = self.read_key()
            self.log("key", key)
            if key in "123":
                answer = CHOICES[int(key) - 1]
                break
            if key == "4":
                self.say("  (type your answer, then Enter)")
                answer = self.read_line()
                break
        sys.stdout.write("\x1b[2J\x1b[H")  # erase the frame, as a TUI redraws
        self.say(f"answered: {question} -> {answer}")
        return answer

    # -- main loop -----------------------------------------------------------

    def handle(self, line: str) -> bool:
        """React to one input line; False means quit."""
        if line.strip() == "/exit":
            self.say("bye")
            return False
        if line.startswith("misbehave: "):
            self.misbehave(line[len("misbehave: "):])
            return True
        if self.director_mode:
            self.say(f"Director received: {line}")
            return True
        if line.startswith("[cafleet]"):
            head, _, body_line = line.partition("\n")  # line 2: the body, read in full by polling
            self.say(f"preview: {head}\n         {body_line}")
            self.poll_and_answer()
        elif line.startswith("!"):
            cmd = line[1:].strip()
            # like Claude Code 2.1.332: a busy line while it runs, erased when it ends
            sys.stdout.write("  ⎿  Running… · esc to interrupt")
            sys.stdout.flush()
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
            sys.stdout.write("\r\x1b[2K")
            self.say(f"$ {cmd}\n{r.stdout}{r.stderr}".rstrip())
        elif line.startswith("cafleet "):
            argv = shlex.split(line)[1:]
            if "poll" in argv:
                self.poll_and_answer(argv)
            else:
                r = self.cafleet(*argv)
                self.say((r.stdout + r.stderr).rstrip())
        elif line.strip():
            self.say(f"(stand-in) got: {line}")
        return True

    def run(self) -> int:
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
        if saved is not None:
            tty.setcbreak(fd)
            mode = termios.tcgetattr(fd)
            mode[0] &= ~termios.ICRNL  # keep CR (tmux's Enter) apart from LF (a line break), as TUIs do
            termios.tcsetattr(fd, termios.TCSANOW, mode)
        try:
            role = "Director" if self.director_mode else f"member {self.agent_id}"
            self.say(f"stand-in agent ({role}); /exit quits")
            if not self.director_mode and self.fleet_id:
                self.send("ready")
            if os.environ.get("CAFLEET_STANDIN_MISBEHAVE"):
                self.misbehave(os.environ["CAFLEET_STANDIN_MISBEHAVE"])
            while True:
                try:
                    line = self.read_line()
                except (EOFError, KeyboardInterrupt):
                    return 0
                if not self.handle(line):
                    return 0
        finally:
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return StandIn(director_mode="--director" in argv).run()


if __name__ == "__main__":
    sys.exit(main())
