"""Helpers for the scenario tests (``test_scenario_*.py``): a Director and its members, all
real Claude Code processes in one private tmux server, playing the product end to end.

- :func:`install_plugin`: the cafleet plugin installed into the temp HOME the way users do it
  (``claude plugin marketplace add DIR`` + ``claude plugin install cafleet@cafleet``), from a
  clean copy of the files git would ship. Every claude of the test (the Director and the
  members cafleet spawns, which share HOME through the tmux server's environment) loads it.
- :class:`FleetScript`: the fake API's script for *every* claude process. A request is routed
  to a :class:`Brain` by its first user message: a member's starts with
  ``You are <name>, a member of a cafleet team`` (``cafleet.members.identity_prompt``),
  anything else is the Director. A brain answers a user turn with a *chain*: a generator that
  yields one tool call (a :class:`fakeapi.Reply`) at a time and receives its
  :class:`fakeapi.ToolResult`; a reply without tool calls ends the turn. Each brain emits the
  literal commands a model following the cafleet skills would emit, with the ids it read
  from prompts and tool results.
- :class:`Approver`: plays the user at Claude Code permission prompts in the Director's pane
  (key ``1`` after the ~1 s during which a new dialog drops keys), records every prompt, and
  flags any prompt in a member pane (members must run unattended).
- :func:`diagnostics`: pane captures, the brains' notes and the last requests, for failures.

Facts relied on (Claude Code 2.1.330 and 2.1.332, tmux 3.3a; see REAL-CLIENT.md and tests/e2e/README.md):
a message typed while a turn runs is folded into that turn (its text arrives next to the
next tool_result, not as a separate turn), so brains look for previews in every request;
a Stop hook ``block`` arrives as a follow-up turn carrying its reason; CronCreate answers
``Scheduled recurring job <id> …``; AskUserQuestion's tool_result reads
``… "<question>"="<label>" …``; a ``! cmd`` turn carries ``<bash-input>cmd</bash-input>``
and the output.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import claude_env as ce
from checkout import clean_copy  # tests/ is on sys.path (rootdir conftest)
from fakeapi import Reply, Request, ToolResult, ToolUse

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MEMBER_RE = re.compile(r"You are (\S+), a member of a cafleet team")
PREVIEW_RE = re.compile(r"\[cafleet\] task (" + UUID_RE + r") from (\S+) \((" + UUID_RE + r")\)")
STOP_HOOK_MARK = "un-acked cafleet message(s)"
TICK_MARK = "Monitor team health"
DIALOG_MARK = "Do you want to proceed?"
STEP_RE = re.compile(r"E2E-STEP:([\w-]+)(?::(\S+))?")


# --------------------------------------------------------------------------- plugin


def install_plugin(claude_bin: str, env: dict, cwd: Path, workdir: Path) -> Path:
    """Install the cafleet plugin into ``env["HOME"]`` from a clean copy under ``workdir``;
    returns the copy (the plugin's root, ``CLAUDE_PLUGIN_ROOT`` of its hooks)."""
    src = clean_copy(workdir / "cafleet-plugin")
    mkt = json.loads((src / ".claude-plugin" / "marketplace.json").read_text())
    ce.run_cli([claude_bin, "plugin", "marketplace", "add", str(src)], env=env, cwd=cwd)
    ce.run_cli([claude_bin, "plugin", "install", f"cafleet@{mkt['name']}"], env=env, cwd=cwd)
    listed = json.loads(ce.run_cli([claude_bin, "plugin", "list", "--json"], env=env,
                                   cwd=cwd).stdout)
    assert any(p["id"] == f"cafleet@{mkt['name']}" and p["enabled"] for p in listed), listed
    return src


# --------------------------------------------------------------------------- cafleet CLI


def cafleet(env: dict, *args: str, cwd: os.PathLike | str | None = None, check: bool = True,
            pane: tuple[str, str] | None = None, timeout: float = 30,
            extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real ``cafleet`` with the test's env (same CAFLEET_DB as the panes).
    ``pane=(socket_path, pane_id)`` runs it "from" that pane (``TMUX``/``TMUX_PANE``)."""
    e = dict(env)
    if pane is not None:
        e["TMUX"] = f"{pane[0]},0,0"
        e["TMUX_PANE"] = pane[1]
    if extra_env:
        e.update(extra_env)
    p = subprocess.run(["cafleet", *args], env=e, cwd=str(cwd) if cwd else None,
                       capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"cafleet {' '.join(args)} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def cafleet_json(env: dict, *args: str, fleet_id: str | None = None, **kw) -> Any:
    """``cafleet [--fleet-id F] --json ARGS`` parsed."""
    pre = ["--fleet-id", fleet_id] if fleet_id else []
    return json.loads(cafleet(env, *pre, "--json", *args, **kw).stdout)


def broker(env: dict):
    """A read-only view of the test's broker (``cafleet.broker.Broker``); close it."""
    from cafleet.broker import Broker

    return Broker.open(env["CAFLEET_DB"], create=False)


def inbox(env: dict, fleet_id: str, agent_id: str) -> list[dict]:
    """The un-acked tasks addressed to `agent_id`, oldest first (`Broker.inbox`: read-only,
    so the test looking never counts as the agent's own call)."""
    br = broker(env)
    try:
        return br.inbox(fleet_id, agent_id)
    finally:
        br.close()


@dataclass
class Task:
    task_id: str
    sender_name: str
    sender_id: str
    body: str


_POLL_HEAD = re.compile(r"^--- task (" + UUID_RE + r") from (.*?) \((" + UUID_RE + r")\) at \S+$",
                        re.M)


def parse_poll(text: str) -> list[Task]:
    """Tasks of ``message poll`` output (text or ``--json``), in the printed order (newest
    first)."""
    s = text.strip()
    if s.startswith("{"):  # --json: {"tasks": [...], "more": N}
        return [Task(t["task_id"], t["sender_name"], t["sender_agent_id"], t["body"])
                for t in json.loads(s)["tasks"]]
    heads = list(_POLL_HEAD.finditer(text))
    out = []
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out.append(Task(m.group(1), m.group(2), m.group(3), text[m.end():end].strip("\n")))
    return out


# --------------------------------------------------------------------------- requests


def first_user_text(req: Request) -> str:
    msgs = req.messages
    if not msgs:
        return ""
    c = msgs[0].get("content")
    if isinstance(c, str):
        return c
    return "\n".join(b.get("text", "") for b in c or [] if isinstance(b, dict)
                     and b.get("type") == "text")


def turn_text(req: Request) -> str:
    """Text of the latest turn without tool_result contents: typed prompts, previews and
    messages folded into a running turn, hook feedback, role-system messages."""
    out = []
    for m in req.latest_turn():
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out.extend(b.get("text", "") for b in c if isinstance(b, dict) and b.get("type") == "text")
    return "\n".join(out)


def session_context(req: Request) -> str:
    """The SessionStart hook's additional context in this request ('' if none)."""
    for m in req.messages:
        c = m.get("content")
        texts = [c] if isinstance(c, str) else [b.get("text", "") for b in c or []
                                                 if isinstance(b, dict)]
        for t in texts:
            if "SessionStart hook additional context" in t:
                return t
    return ""


# --------------------------------------------------------------------------- brains


@dataclass
class Call:
    """One tool call a brain made and what came back."""

    tool: str
    input: dict
    result: ToolResult | None = None

    @property
    def command(self) -> str:
        return self.input.get("command", "") if self.tool == "Bash" else ""


def bash(command: str, description: str | None = None) -> Reply:
    return Reply.bash(command, description=description or command.split(" --", 1)[0][:60])


def tool(name: str, **input: Any) -> Reply:
    return Reply(tool_uses=[ToolUse(name, dict(input))])


class Brain:
    """One scripted agent. ``on_turn(req)`` answers a turn that is not a tool_result of one of
    its chains: a chain (generator), a Reply, a str or None. ``inbox()`` is the chain run when
    a preview or a Stop-hook reminder showed up while another chain was running."""

    def __init__(self, name: str):
        self.name = name
        self.requests: list[Request] = []
        self.calls: list[Call] = []
        self.notes: dict[str, list[Any]] = {}
        self.inbox_due = False
        self._cond = threading.Condition()

    # ---- notes the test waits on
    def note(self, key: str, value: Any = True) -> None:
        with self._cond:
            self.notes.setdefault(key, []).append(value)
            self._cond.notify_all()

    def wait_note(self, key: str, *, timeout: float, count: int = 1,
                  on_fail: Callable[[], str] | None = None) -> Any:
        """The ``count``-th value noted under ``key`` (waits up to ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.notes.get(key, [])) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    extra = on_fail() if on_fail else ""
                    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {self.name} "
                                         f"to note {key!r} (x{count}); notes: "
                                         f"{sorted(self.notes)}\n{extra}")
                self._cond.wait(min(left, 0.5))
            return self.notes[key][count - 1]

    def last(self, key: str, default: Any = None) -> Any:
        with self._cond:
            v = self.notes.get(key)
            return v[-1] if v else default

    def calls_matching(self, needle: str) -> list[Call]:
        return [c for c in self.calls if needle in c.command or needle == c.tool]

    # ---- hooks for FleetScript
    def observe(self, req: Request) -> None:
        """Called for every request of this agent before it is answered."""
        text = turn_text(req)
        if PREVIEW_RE.search(text) or STOP_HOOK_MARK in text:
            self.inbox_due = True

    def folded(self, req: Request) -> None:
        """Called for a request that continues one of this agent's chains: a prompt typed
        while the turn ran is folded into it (Claude Code 2.1.330, 2.1.332), so look for one here."""

    def on_turn(self, req: Request):
        return None

    def inbox(self):  # pragma: no cover - overridden
        return None

    def next_chain(self):
        """The chain to run when a chain ends because something arrived meanwhile, or None."""
        if self.inbox_due:
            self.inbox_due = False
            return self.inbox()
        return None

    def summary(self) -> str:
        with self._cond:
            notes = {k: (v if len(repr(v)) < 300 else repr(v)[:300] + "…")
                     for k, v in self.notes.items()}
        calls = "\n    ".join(
            f"{c.tool} {json.dumps(c.input)[:160]} -> "
            f"{'ERR ' if c.result and c.result.is_error else ''}"
            f"{(c.result.text if c.result else '(pending)')[:160]!r}" for c in self.calls[-14:])
        return f"[{self.name}] notes={notes}\n  last calls:\n    {calls}"


class FleetScript:
    """The fake API script shared by every claude of a scenario (see module docstring)."""

    def __init__(self, director: Brain, make_member: Callable[[str, Request], Brain]):
        self.director = director
        self.make_member = make_member
        self.members: dict[str, Brain] = {}
        self.pending: dict[str, tuple[Brain, Any, Call]] = {}
        self.lock = threading.RLock()

    def brains(self) -> list[Brain]:
        return [self.director, *self.members.values()]

    def route(self, req: Request) -> Brain:
        m = MEMBER_RE.search(first_user_text(req))
        if m is None:
            return self.director
        name = m.group(1)
        if name not in self.members:
            self.members[name] = self.make_member(name, req)
        return self.members[name]

    def __call__(self, req: Request):
        with self.lock:
            brain = self.route(req)
            brain.requests.append(req)
            brain.observe(req)
            results = req.latest_tool_results()
            if results:
                entry = self.pending.pop(results[0].tool_use_id, None)
                if entry is not None:
                    brain.folded(req)
                    _, gen, call = entry
                    call.result = results[0]
                    return self._advance(brain, gen, results[0])
            return self._begin(brain, brain.on_turn(req))

    def _begin(self, brain: Brain, out):
        if inspect.isgenerator(out):
            return self._advance(brain, out, None)
        reply = Reply(text=out) if isinstance(out, str) else out
        if reply is None or not reply.tool_uses:
            nxt = self._next(brain)
            if nxt is not None:
                return nxt
        return reply

    def _advance(self, brain: Brain, gen, value):
        try:
            reply = gen.send(value)
        except StopIteration as stop:
            reply = stop.value
        if isinstance(reply, str):
            reply = Reply(text=reply)
        if reply is not None and reply.tool_uses:
            use = reply.tool_uses[-1]
            call = Call(use.name, use.input)
            brain.calls.append(call)
            self.pending[use.id] = (brain, gen, call)
            return reply
        gen.close()
        nxt = self._next(brain)
        return nxt if nxt is not None else (reply or Reply(text="Done."))

    def _next(self, brain: Brain):
        chain = brain.next_chain()
        if chain is None:
            return None
        if not inspect.isgenerator(chain):
            return Reply(text=chain) if isinstance(chain, str) else chain
        return self._advance(brain, chain, None)


# --------------------------------------------------------------------------- director


def loop_prompt(fleet_id: str, director_id: str) -> str:
    """The monitoring skill's /loop prompt with the literal ids pasted in (`cafleet.tick`
    holds the one text; tests/test_tick.py checks the skill shows exactly it)."""
    from cafleet import tick

    return tick.loop_prompt(fleet_id, director_id)


WORK = {
    "compute": "compute: 6 times 7, then report the result",
    "choose": "choose: ask the user which colour the report should use",
    "tmux-probe": "tmux-probe: try typing into the Director pane with raw tmux",
    "stop-probe": "stop-probe: read this only when you are reminded",
}


class DirectorBrain(Brain):
    """A Director following the cafleet skills. Test prompts ``E2E-STEP:<step>[:<arg>]`` start
    ``step_<step>`` chains; previews, Stop-hook reminders and /loop ticks start the inbox."""

    member_name = "worker"

    def __init__(self, name: str = "Director"):
        super().__init__(name)
        self.F: str | None = None
        self.D: str | None = None
        self.M: str | None = None
        self.member_pane: str | None = None
        self.loop_id: str | None = None
        self.folded_steps: list[Request] = []

    def base(self) -> str:
        return f"cafleet --fleet-id {self.F}"

    def start_step(self, req: Request):
        m = STEP_RE.search(turn_text(req))
        if m is None:
            return None
        self.note("step", m.group(1))
        return getattr(self, "step_" + m.group(1).replace("-", "_"))(req, m.group(2))

    def folded(self, req: Request) -> None:
        if STEP_RE.search(turn_text(req)):
            self.note("folded-step", req.n)
            self.folded_steps.append(req)

    def next_chain(self):
        if self.folded_steps:
            return self.start_step(self.folded_steps.pop(0))
        return super().next_chain()

    def on_turn(self, req: Request):
        text = turn_text(req)
        if STEP_RE.search(text):
            return self.start_step(req)
        if TICK_MARK in text:
            self.note("tick", req.n)
            return self.inbox(tick=True)
        if PREVIEW_RE.search(text) or STOP_HOOK_MARK in text:
            return self.inbox()
        return None

    # ---- the inbox: poll, act on each task, ack it
    def inbox(self, tick: bool = False):
        self.inbox_due = False
        if not self.F:
            return "No fleet yet."
        if tick:  # the tick reads state first: roster, then inbox
            yield bash(f"{self.base()} member list")
        r = yield bash(f"{self.base()} message poll --agent-id {self.D}")
        tasks = parse_poll(r.text) if not r.is_error else []
        for t in reversed(tasks):  # oldest first
            self.note("task", t)
            if t.body.strip() == "ready":
                self.note("ready", t)
                yield bash(f'{self.base()} message send --agent-id {self.D} --to {t.sender_id} '
                           f'--text "{WORK["compute"]}"')
                self.note("dispatched", "compute")
            else:
                self.note("report", t.body)
            r = yield bash(f"{self.base()} message ack --agent-id {self.D} --task-id {t.task_id}")
            self.note("acked", t.task_id)
        return f"Inbox handled ({len(tasks)} task(s))."

    # ---- steps the test asks for
    def member_create(self) -> str:
        return (f'{self.base()} member create --name {self.member_name} --description '
                f'"Scenario worker" --coding-agent claude -- "Wait for tasks from the Director '
                f'and do them."')

    def step_setup(self, req, arg):
        r = yield bash("cafleet doctor")
        self.note("doctor", r)
        r = yield bash("cafleet fleet create --coding-agent claude")
        lines = r.text.strip().splitlines()
        self.F, self.D = lines[0].strip(), lines[1].strip()
        self.note("fleet", (self.F, self.D))
        r = yield bash(f"{self.base()} permissions --agent-id {self.D} --write")
        self.note("permissions", r)
        r = yield bash(self.member_create())
        self.note("create-before-loop", r)
        yield tool("ToolSearch", query="select:CronCreate", max_results=1)
        r = yield tool("CronCreate", cron="* * * * *", prompt=loop_prompt(self.F, self.D),
                       recurring=True)
        m = re.search(r"job (\S+?)[ .(]", r.text)
        self.loop_id = m.group(1) if m else None
        self.note("loop", (self.loop_id, r))
        r = yield bash(self.member_create())
        self.note("create", r)
        if not r.is_error:
            self.M = r.text.strip().splitlines()[0].strip()
            pm = re.search(r"pane (%\d+)", r.text)
            self.member_pane = pm.group(1) if pm else None
            self.note("member", (self.M, self.member_pane))
        return "SETUP-DONE"

    def step_send(self, req, kind):
        r = yield bash(f'{self.base()} message send --agent-id {self.D} --to {self.M} '
                       f'--text "{WORK[kind]}"')
        self.note("sent", (kind, r))
        return f"SENT {kind}"

    def step_raw_tmux(self, req, arg):
        r = yield bash(f"tmux send-keys -t {self.member_pane} 'hello from raw tmux' Enter")
        self.note("raw-tmux", r)
        return "RAW-TMUX-DONE"

    def step_answer_choice(self, req, arg):
        r = yield bash(f"{self.base()} member capture --member-id {self.M} --changed")
        self.note("capture-choice", r)
        r = yield bash(f"{self.base()} member send-input --member-id {self.M} --choice {arg}")
        self.note("send-input", r)
        return "ANSWERED"

    def step_exec(self, req, arg):
        r = yield bash(f"{self.base()} member exec --member-id {self.M} \"expr 6 '*' 7\"")
        self.note("exec", r)
        r = yield bash(f"{self.base()} member ping --member-id {self.M}")
        self.note("ping", r)
        return "EXEC-DONE"

    def step_whoami(self, req, arg):
        """After /clear: take every id from the SessionStart context, nothing from memory."""
        ctx = session_context(req)
        self.note("session-context", ctx)
        got = {
            "fleet": re.search(r"fleet id: (" + UUID_RE + ")", ctx),
            "agent": re.search(r"your agent id: (" + UUID_RE + ")", ctx),
            "member": re.search(r'"' + self.member_name + r'": agent id (' + UUID_RE + ")", ctx),
            "loop": re.search(r"/loop recorded as running: (\S+?)[ ,.(]", ctx),
        }
        ids = {k: (v.group(1) if v else None) for k, v in got.items()}
        self.note("whoami", ids)
        self.F, self.D, self.M, self.loop_id = ids["fleet"], ids["agent"], ids["member"], ids["loop"]
        return "WHOAMI-DONE"

    def step_teardown(self, req, arg):
        r = yield bash(f"cafleet fleet delete {self.F}")
        self.note("delete-with-loop", r)
        yield tool("ToolSearch", query="select:CronDelete,CronList", max_results=2)
        r = yield tool("CronDelete", id=self.loop_id)
        self.note("cron-delete", r)
        r = yield tool("CronList")
        self.note("cron-list", r)
        r = yield bash(f"{self.base()} member delete --member-id {self.M}")
        self.note("member-delete", r)
        r = yield bash(f"{self.base()} member list")
        self.note("member-list", r)
        r = yield bash(f"cafleet fleet delete {self.F}")
        self.note("fleet-delete", r)
        r = yield bash("cafleet fleet list")
        self.note("fleet-list", r)
        return "TEARDOWN-DONE"


# --------------------------------------------------------------------------- member


CHOICES = ("Red", "Green", "Blue")


class MemberBrain(Brain):
    """A claude member following skills/cafleet/reference/member.md: ``ready`` first, then
    poll / act / report / ack whenever a preview, a ping or a reminder arrives."""

    def __init__(self, name: str, first: Request):
        super().__init__(name)
        prompt = first_user_text(first)
        ids = re.search(r"Your fleet id: (" + UUID_RE + r")\. Your agent id: (" + UUID_RE
                        + r")\. Your Director's agent id: (" + UUID_RE + r")\.", prompt)
        assert ids, f"member prompt without ids: {prompt[:500]!r}"
        self.F, self.M, self.D = ids.groups()
        self.started = False

    def base(self) -> str:
        return f"cafleet --fleet-id {self.F}"

    def poll_command(self) -> str:
        return f"{self.base()} message poll --agent-id {self.M}"

    def send(self, text: str) -> Reply:
        return bash(f'{self.base()} message send --agent-id {self.M} --to {self.D} --text "{text}"')

    def observe(self, req: Request) -> None:
        text = turn_text(req)
        if "stop-probe" in text and STOP_HOOK_MARK not in text:
            return  # this model ignores that preview; the Stop hook must remind it
        super().observe(req)

    def on_turn(self, req: Request):
        text = turn_text(req)
        if not self.started:
            self.started = True
            self.note("context", session_context(req))
            return self.start()
        if "<bash-input>" in text:
            self.note("bash-input", text)
            if self.poll_command() in text.split("<bash-input>")[-1]:
                return self.inbox()
            return "I see the command output."
        if STOP_HOOK_MARK in text:
            self.note("stop-hook", text)
            return self.inbox()
        if "stop-probe" in text:
            self.note("ignored-preview", text)
            return "I will look at that later."
        if self.poll_command() in text:
            self.note("ping", text)
            return self.inbox()
        if PREVIEW_RE.search(text):
            return self.inbox()
        return None

    def start(self):
        r = yield self.send("ready")
        self.note("ready-sent", r)
        return "Sent ready; waiting for tasks."

    def inbox(self):
        self.inbox_due = False
        r = yield bash(self.poll_command())
        self.note("poll", r.text)
        tasks = parse_poll(r.text) if not r.is_error else []
        for t in reversed(tasks):
            self.note("task", t)
            body = t.body
            if body.startswith("compute:"):
                yield self.send("result: 42")
            elif body.startswith("choose:"):
                r = yield tool("AskUserQuestion", questions=[{
                    "question": "Which colour should the report use?", "header": "Colour",
                    "multiSelect": False,
                    "options": [{"label": c, "description": f"use {c.lower()}"} for c in CHOICES]}])
                self.note("answer", r)
                m = re.search(r'"=\s*"([^"]+)"', r.text)
                yield self.send(f"choice: {m.group(1) if m else 'none'}")
            elif body.startswith("tmux-probe:"):
                r = yield bash("tmux send-keys -t %0 'hello from a member' Enter")
                self.note("raw-tmux", r)
                yield self.send("tmux-probe: denied" if r.is_error else "tmux-probe: it ran")
            elif body.startswith("stop-probe:"):
                yield self.send("stop-probe: handled after the reminder")
            elif body.startswith("shell-probe:"):
                cmd = body.split(":", 1)[1].strip()
                r = yield bash(cmd)
                self.note("shell-probe", r)
                # member.md: a command you may not run goes to the Director, verbatim
                yield self.send(f"please run: {cmd}" if r.is_error else "shell-probe: it ran")
            r = yield bash(f"{self.base()} message ack --agent-id {self.M} --task-id {t.task_id}")
            self.note("acked", t.task_id)
        return f"Handled {len(tasks)} task(s); waiting."


# --------------------------------------------------------------------------- approver


@dataclass
class Prompt:
    pane: str
    text: str  # the dialog as drawn (joined lines)
    approved: bool
    t: float = field(default_factory=time.monotonic)

    def shows(self, command: str) -> bool:
        squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731 - the dialog wraps long commands
        return squash(command) in squash(self.text)


class Approver(threading.Thread):
    """Plays the user at permission prompts: in ``approve_panes()`` it presses ``1`` (Yes)
    after ``delay`` s; in ``watch_panes()`` (members) it only records the prompt."""

    def __init__(self, tmux: ce.TmuxServer, approve_panes: Callable[[], Iterable[str]],
                 watch_panes: Callable[[], Iterable[str]] = lambda: (), delay: float = 1.2):
        super().__init__(name="approver", daemon=True)
        self.tmux = tmux
        self.approve_panes = approve_panes
        self.watch_panes = watch_panes
        self.delay = delay
        self.prompts: list[Prompt] = []
        self.unexpected: list[Prompt] = []
        self.enabled = threading.Event()
        self.enabled.set()
        self._stop_ev = threading.Event()
        self._seen_member: set[str] = set()

    def stop(self) -> None:
        self._stop_ev.set()

    def _dialog(self, pane: str) -> str | None:
        try:
            screen = self.tmux.tmux("capture-pane", "-p", "-J", "-t", pane, check=False)
        except Exception:  # noqa: BLE001
            return None
        if DIALOG_MARK not in screen or "Esc to cancel" not in screen:
            return None
        lines = screen.splitlines()
        start = max((i for i, l in enumerate(lines) if l.strip().startswith(("Bash command", "Tool use"))),
                    default=max(0, len(lines) - 25))
        return "\n".join(lines[start:])

    def _answer(self, pane: str, text: str, tries: int = 4) -> None:
        """Press 1 until this dialog is gone (a key that lands in the first ~second after a
        dialog opens is dropped, and a loaded machine draws late); stop at a new dialog."""
        squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
        for _ in range(tries):
            self.tmux.send_keys(pane, "1")
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                now = self._dialog(pane)
                if now is None or squash(now) != squash(text):
                    return
                time.sleep(0.2)

    def run(self) -> None:
        while not self._stop_ev.is_set():
            if self.enabled.is_set():
                for pane in list(self.approve_panes()):
                    text = self._dialog(pane)
                    if text is None:
                        continue
                    time.sleep(self.delay)
                    text = self._dialog(pane) or text
                    self.prompts.append(Prompt(pane, text, True))
                    self._answer(pane, text)
                for pane in list(self.watch_panes()):
                    text = self._dialog(pane)
                    if text is not None and pane not in self._seen_member:
                        self._seen_member.add(pane)
                        self.unexpected.append(Prompt(pane, text, False))
            self._stop_ev.wait(0.2)


# --------------------------------------------------------------------------- diagnostics


def diagnostics(tmux: ce.TmuxServer | None, api: Any = None, brains: Iterable[Brain] = (),
                n_requests: int = 12) -> str:
    out = []
    if tmux is not None:
        for pane in tmux.list_panes():
            cap = "\n".join(l.rstrip() for l in tmux.capture(pane, history=200).splitlines()
                            if l.strip())
            out.append(f"--- pane {pane} ---\n{cap[-3500:]}")
    for b in brains:
        out.append(b.summary())
    if api is not None:
        out.append("--- last requests ---\n  " + "\n  ".join(
            r.summary() for r in api.snapshot()[-n_requests:]))
        if api.errors:
            out.append(f"fake API script errors: {api.errors}")
    return "\n".join(out)


class Phases:
    """Named phases with wall times; a failing phase gets the diagnostics attached."""

    def __init__(self, diag: Callable[[], str]):
        self.diag = diag
        self.times: list[tuple[str, float]] = []
        self.t0 = time.monotonic()

    def __call__(self, name: str):
        phases = self

        class _Ctx:
            def __enter__(self):
                self.t = time.monotonic()
                return self

            def __exit__(self, et, ev, tb):
                phases.times.append((name, time.monotonic() - self.t))
                if et is AssertionError:
                    raise AssertionError(f"[phase {name}] {ev}\n\n{phases.diag()}") from None
                return False

        return _Ctx()

    def report(self) -> str:
        total = time.monotonic() - self.t0
        return "\n".join([f"  {n:<40} {t:6.1f}s" for n, t in self.times]
                         + [f"  {'total':<40} {total:6.1f}s"])


# --------------------------------------------------------------------------- processes


def pane_pid(tmux: ce.TmuxServer, pane: str) -> int:
    return int(tmux.tmux("display-message", "-p", "-t", pane, "#{pane_pid}").strip())


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return [a.decode("utf-8", "surrogateescape") for a in fh.read().split(b"\0")[:-1]]


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        items = fh.read().split(b"\0")
    out = {}
    for it in items:
        k, sep, v = it.decode("utf-8", "surrogateescape").partition("=")
        if sep:
            out[k] = v
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
