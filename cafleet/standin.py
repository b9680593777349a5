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

Its identity comes from `CAFLEET_FLEET_ID`, `CAFLEET_AGENT_ID`, `CAFLEET_DIRECTOR_ID`; the
argv a real backend would get (prompt, `--model`, `--settings` …) is accepted and ignored,
so an executable named `claude` that starts it can stand in for the real one
(`cafleet.demo.install_standin`). With `--director` it only shows
what it is sent (a Director pane for the demo). Every line it receives is appended, as
`repr`, to `$CAFLEET_STANDIN_LOG` when set (tests read it to see exactly what arrived).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

CHOICES = ("Red", "Green", "Blue")


class StandIn:
    def __init__(self, director_mode: bool = False):
        self.director_mode = director_mode
        self.fleet_id = os.environ.get("CAFLEET_FLEET_ID", "")
        self.agent_id = os.environ.get("CAFLEET_AGENT_ID", "")
        self.director_id = os.environ.get("CAFLEET_DIRECTOR_ID", "")
        self.log_path = os.environ.get("CAFLEET_STANDIN_LOG")

    # -- io ------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def log(self, kind: str, value: str) -> None:
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"kind": kind, "value": value}, ensure_ascii=False) + "\n")

    def read_key(self) -> str:
        ch = sys.stdin.read(1)
        if ch == "":
            raise EOFError
        return ch

    def read_line(self) -> str:
        buf = []
        while True:
            ch = self.read_key()
            if ch in "\r\n":
                line = "".join(buf)
                self.log("line", line)
                return line
            buf.append(ch)

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
        r = self.cafleet(*argv)
        if r.returncode != 0:
            self.say(f"  poll failed: {r.stderr.strip()}")
            return
        tasks = json.loads(r.stdout)
        self.say(f"  polled {len(tasks)} task(s)")
        for task in reversed(tasks):  # oldest first
            self.cafleet("--fleet-id", self.fleet_id, "message", "ack", "--agent-id", self.agent_id,
                         "--task-id", task["task_id"])
            self.say(f"  acked {task['task_id']}: {task['body']!r}")
            if "choose" in task["body"].lower():
                self.send(f"chose: {self.choice_frame(task['body'])}")
            else:
                self.send(f"done: {task['body']}")

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
        if self.director_mode:
            self.say(f"Director received: {line}")
            return True
        if line.startswith("[cafleet]"):
            body_line = self.read_line()  # line 2 of the preview: the body, read in full by polling
            self.say(f"preview: {line}\n         {body_line}")
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
        try:
            role = "Director" if self.director_mode else f"member {self.agent_id}"
            self.say(f"stand-in agent ({role}); /exit quits")
            if not self.director_mode and self.fleet_id:
                self.send("ready")
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
