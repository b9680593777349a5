"""Scripted codex and opencode members (and a codex Director) for the e2e scenarios.

A :class:`ShellMember` plays one member the way a model following its first prompt
(``cafleet.members.identity_prompt``) would: it reads its ids from that prompt, sends the
Director ``ready``, and on every ``[cafleet] task …`` preview that reaches it polls its inbox,
acks the newest task and reports ``done: <body>`` — all with the literal commands of its
prompt, through its client's own shell tool (codex 0.171.0: ``exec_command`` ``{"cmd"}``;
opencode 1.18.33: ``bash`` ``{"command", "description"}``). Requests are routed to members by
the agent id in their first prompt (:class:`Router`).
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Generator

from fakeapi import Reply, Request, ToolUse
from scenario_helpers import PREVIEW_RE, UUID_RE, parse_poll

IDS_RE = re.compile(r"Your fleet id: (" + UUID_RE + r")\. Your agent id: (" + UUID_RE
                    + r")\. Your Director's agent id: (" + UUID_RE + r")\.")

Chain = Generator[Reply, str, "Reply | str | None"]


def shell(wire: str, command: str, **extra: Any) -> Reply:
    """One shell call in the client's own tool (``extra``: more tool arguments)."""
    if wire == "responses":
        return Reply(tool_uses=[ToolUse("exec_command", {"cmd": command, **extra})])
    if wire == "anthropic":  # Claude Code's Bash tool
        return Reply.bash(command, description="cafleet")
    return Reply(tool_uses=[ToolUse("bash", {"command": command, "description": "cafleet"})])


def output_of(text: str) -> str:
    """A shell tool result without codex's header (``Chunk ID … Output:``)."""
    return text.split("\nOutput:\n", 1)[1] if "\nOutput:\n" in text else text


class ChainBrain:
    """Answers requests with chains (generators yielding one tool call at a time and receiving
    the tool's output); a request that is not the result of a running chain starts one with
    :meth:`on_turn`. Records every command and its output in ``calls``."""

    def __init__(self, wire: str):
        self.wire = wire
        self.chain: Chain | None = None
        self.calls: list[tuple[str, str]] = []
        self.notes: dict[str, Any] = {}
        self.cond = threading.Condition()
        self._pending: str | None = None
        self._answered: tuple[str, Any] | None = None  # (tool call id of the result, reply)

    def note(self, key: str, value: Any = True) -> None:
        with self.cond:
            self.notes[key] = value
            self.cond.notify_all()

    def wait_note(self, key: str, timeout: float) -> Any:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.notes, timeout):
                raise AssertionError(f"{type(self).__name__}: no note {key!r} in {timeout}s; "
                                     f"notes {list(self.notes)}; calls {self.calls[-6:]}")
            return self.notes[key]

    def sh(self, command: str, **extra: Any) -> Reply:
        self._pending = command
        return shell(self.wire, command, **extra)

    def tool(self, name: str, **args: Any) -> Reply:
        """A call of any other tool (e.g. an MCP tool: codex offers it in a namespace)."""
        self._pending = f"{name}({args})"
        return Reply(tool_uses=[ToolUse(name, args)])

    def on_turn(self, req: Request) -> "Chain | Reply | str | None":  # pragma: no cover
        return None

    def __call__(self, req: Request):
        results = req.latest_tool_results()
        if results and self._answered is not None and results[0].tool_use_id \
                and results[0].tool_use_id == self._answered[0]:
            # The client sent the same request again (codex retries a turn whose response
            # stream broke, e.g. under load): answer it as before. Feeding the old tool output
            # to the chain again would take it for the output of the call it then made, and
            # the chain would skip that call (seen in CI: a `message send` never ran).
            return self._answered[1]
        if results and self.chain is not None:
            out = output_of(results[0].text)
            self.calls.append((self._pending or "", out))
            reply = self._step(lambda: self.chain.send(out))
            self._answered = (results[0].tool_use_id, reply)
            return reply
        got = self.on_turn(req)
        if isinstance(got, Generator):
            self.chain = got
            return self._step(lambda: next(got))
        return got

    def _step(self, advance: Callable[[], Reply]):
        try:
            return advance()
        except StopIteration as stop:
            self.chain = None
            return stop.value if stop.value is not None else "ok"


class ShellMember(ChainBrain):
    """See the module docstring."""

    def __init__(self, wire: str, first: Request):
        super().__init__(wire)
        m = IDS_RE.search(first.all_text())
        assert m, "no member identity in the first prompt"
        self.fleet_id, self.agent_id, self.director_id = m.groups()
        self.seen_tasks: set[str] = set()
        self.started = False

    @property
    def base(self) -> str:
        return f"cafleet --fleet-id {self.fleet_id} message"

    def on_turn(self, req: Request):
        if not self.started:
            self.started = True
            return self.ready()
        if PREVIEW_RE.search(req.latest_turn_text()):
            return self.work()
        return "Waiting for a task."

    def ready(self) -> Chain:
        out = yield self.sh(f'{self.base} send --agent-id {self.agent_id} --to {self.director_id} '
                            f'--text "ready"')
        self.note("ready", out)
        return "Sent ready; waiting for tasks."

    def work(self) -> Chain:
        out = yield self.sh(f"{self.base} poll --agent-id {self.agent_id}")
        tasks = [t for t in parse_poll(out) if t.task_id not in self.seen_tasks]
        self.note("polled", out)
        if not tasks:
            return "Nothing new in my inbox."
        for t in reversed(tasks):  # oldest first
            self.seen_tasks.add(t.task_id)
            out = yield self.sh(f"{self.base} ack --agent-id {self.agent_id} --task-id {t.task_id}")
            self.note(f"acked:{t.task_id}", out)
            out = yield self.sh(f'{self.base} send --agent-id {self.agent_id} --to '
                                f'{self.director_id} --text "done: {t.body}"')
            self.note(f"reported:{t.task_id}", out)
        return "Reported to the Director."


class Router:
    """The fake API's script: a request whose first prompt is a member's goes to that member's
    brain (made by ``make_member(wire, request)`` on first sight); anything else to
    ``director`` (or the default reply)."""

    def __init__(self, make_member: Callable[[str, Request], ChainBrain] = ShellMember,
                 director: ChainBrain | None = None):
        self.make_member = make_member
        self.director = director
        self.members: dict[str, ChainBrain] = {}
        self.lock = threading.Lock()

    def __call__(self, req: Request):
        wire = getattr(req, "wire", "anthropic")
        m = IDS_RE.search(req.all_text())
        if m is None:
            return self.director(req) if self.director is not None else None
        with self.lock:
            brain = self.members.get(m.group(2))
            if brain is None:
                brain = self.members[m.group(2)] = self.make_member(wire, req)
        return brain(req)

    def member(self, agent_id: str, timeout: float = 60) -> ChainBrain:
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if agent_id in self.members:
                    return self.members[agent_id]
            time.sleep(0.1)
        raise AssertionError(f"no request from member {agent_id} in {timeout}s")
