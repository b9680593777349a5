"""cafleet.tmux against a real tmux server (a private one per test, see conftest).

Stand-in processes in panes record exactly what they receive: `RECORDER` puts its terminal
in raw mode (no line discipline: a C-c byte is a byte, not SIGINT) and logs every read
with its time, so the tests assert on the bytes a program in the pane really got.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from cafleet import tmux
from cafleet.errors import TmuxError, UsageError

RECORDER = r"""
import json, os, sys, time, tty
out = sys.argv[1]
tty.setraw(0)
open(out + ".tmp", "w").close()
os.rename(out + ".tmp", out)  # ready: raw mode is on
with open(out, "a") as f:
    while True:
        try:
            data = os.read(0, 65536)
        except OSError:
            break
        if not data:
            break
        f.write(json.dumps({"t": time.monotonic(), "hex": data.hex()}) + "\n")
        f.flush()
"""

REPORTER = r"""
import json, os, sys
out = sys.argv[1]
names = sys.argv[2].split(",")
json.dump({"argv": sys.argv[3:], "env": {n: os.environ.get(n) for n in names},
           "cwd": os.getcwd()}, open(out + ".tmp", "w"))
os.rename(out + ".tmp", out)
"""

FMT = "#{pane_id}\t#{window_id}\t#{session_name}"


def wait_for(predicate, timeout=3.0):
    assert tmux.wait_until(predicate, timeout, 0.02), "condition not met in time"


@pytest.fixture
def director(tmux_server):
    """A session on the private server whose only pane (the 'Director') runs `sleep`."""
    out = tmux_server.cmd(
        "new-session", "-d", "-s", "fleet", "-x", "200", "-y", "50",
        "-P", "-F", FMT, "--", "sleep", "600",
    )
    assert out.returncode == 0, out.stderr
    pane_id, window_id, session = out.stdout[0].split("\t")
    return tmux.PaneRef(tmux_server.socket_path, session, window_id, pane_id)


@pytest.fixture
def recorder(director, tmp_path):
    """Start a RECORDER in a new pane; returns (pane, read) where read() -> (bytes, chunks)."""
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    out = tmp_path / "received.jsonl"
    pane = tmux.split_window(director, [sys.executable, str(script), str(out)], {}, None)
    wait_for(out.exists)

    def read():
        chunks = [json.loads(line) for line in out.read_text().splitlines()]
        return b"".join(bytes.fromhex(c["hex"]) for c in chunks), chunks

    return pane, read


def receives(read, expected: bytes, timeout=3.0) -> bytes:
    tmux.wait_until(lambda: len(read()[0]) >= len(expected), timeout, 0.02)
    time.sleep(0.05)  # nothing extra may follow
    got = read()[0]
    assert got == expected
    return got


def active_pane(socket_path, window_id) -> str:
    out = subprocess.run(
        ["tmux", "-S", socket_path, "list-panes", "-t", window_id, "-F",
         "#{pane_active} #{pane_id}"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    return [line.split()[1] for line in out if line.startswith("1 ")][0]


def run_reporter(director, tmp_path, argv_tail, env=None, cwd=None):
    script = tmp_path / "reporter.py"
    script.write_text(REPORTER)
    out = tmp_path / "report.json"
    env = env or {}
    names = ",".join(list(env) + ["TMUX_PANE"])
    pane = tmux.split_window(
        director, [sys.executable, str(script), str(out), names, *argv_tail], env, cwd
    )
    wait_for(out.exists)
    return pane, json.loads(out.read_text())


# ---------------------------------------------------------------------- split_window


def test_split_window_keeps_the_active_pane(director, tmp_path):
    assert active_pane(director.socket_path, director.window_id) == director.pane_id
    pane, _ = run_reporter(director, tmp_path, [])
    member = tmux.split_window(director, ["sleep", "30"], {}, None)
    assert active_pane(director.socket_path, director.window_id) == director.pane_id
    assert member.window_id == director.window_id
    assert member.session_name == director.session_name
    assert member.socket_path == director.socket_path
    assert member.pane_id not in (director.pane_id, pane.pane_id)
    assert tmux.pane_alive(member.socket_path, member.pane_id)


def test_split_window_argv_reaches_child_verbatim(director, tmp_path):
    tail = ["a b", "'sq'", '"dq"', "$HOME", "`id`", "x;", ";", "a\\;", "#{pane_id}",
            "", "-e", "--", "é🙂", "*"]
    _, report = run_reporter(director, tmp_path, tail)
    assert report["argv"] == tail


def test_split_window_env_reaches_child(director, tmp_path):
    env = {"CAFLEET_AGENT_ID": "abc", "WITH_SPACE": "a b", "SEMI": "v;", "FMT": "#{pane_id}",
           "EMPTY": ""}
    pane, report = run_reporter(director, tmp_path, [], env=env)
    for name, value in env.items():
        assert report["env"][name] == value
    assert report["env"]["TMUX_PANE"] == pane.pane_id


def test_split_window_cwd(director, tmp_path):
    odd = tmp_path / "dir with #{pane_id} and ##"
    odd.mkdir()
    _, report = run_reporter(director, tmp_path, [], cwd=str(odd))
    assert report["cwd"] == str(odd)


def test_split_window_missing_cwd(director, tmp_path):
    with pytest.raises(TmuxError, match="does not exist"):
        tmux.split_window(director, ["sleep", "1"], {}, str(tmp_path / "nope"))


def test_split_window_single_argv_item_runs_without_shell(director, tmp_path):
    bindir = tmp_path / "bin dir;$(x)"
    bindir.mkdir()
    prog = bindir / "prog; echo pwned"
    marker = tmp_path / "ran"
    prog.write_text(f"#!/bin/sh\necho \"$0\" > '{marker}'\n")
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR)
    tmux.split_window(director, [str(prog)], {}, None)
    wait_for(marker.exists)
    assert marker.read_text().strip() == str(prog)


def test_split_window_gone_director(director):
    gone = tmux.PaneRef(director.socket_path, director.session_name, director.window_id, "%999")
    with pytest.raises(tmux.TargetGone):
        tmux.split_window(gone, ["sleep", "1"], {}, None)


def test_split_window_refuses_bad_input(director):
    with pytest.raises(ValueError):
        tmux.split_window(director, [], {}, None)
    with pytest.raises(ValueError):
        tmux.split_window(director, ["sleep", "1"], {"A=B": "x"}, None)
    with pytest.raises(TmuxError):  # NUL cannot be an argv item: clean error, no traceback
        tmux.split_window(director, ["sleep", "1\x00"], {}, None)


def test_split_window_makes_room_when_the_window_is_full(tmux_server):
    out = tmux_server.cmd("new-session", "-d", "-x", "80", "-y", "24", "-P", "-F", FMT,
                          "--", "sleep", "600").stdout[0].split("\t")
    small = tmux.PaneRef(tmux_server.socket_path, out[2], out[1], out[0])
    made = [tmux.split_window(small, ["sleep", "600"], {}, None) for _ in range(11)]
    assert len(tmux.list_panes(small.socket_path, small.window_id)) == 12
    assert active_pane(small.socket_path, small.window_id) == small.pane_id
    assert all(tmux.pane_alive(p.socket_path, p.pane_id) for p in made)


# --------------------------------------------------------------------------- capture


def test_capture_last_lines(director, tmp_path):
    ready = tmp_path / "printed"
    code = (
        "import sys, time\n"
        "for i in range(1, 121): print(f'line {i}')\n"
        "sys.stdout.flush(); open(sys.argv[1], 'w').close(); time.sleep(60)\n"
    )
    pane = tmux.split_window(director, [sys.executable, "-c", code, str(ready)], {}, None)
    wait_for(ready.exists)
    wait_for(lambda: "line 120" in tmux.capture(pane.socket_path, pane.pane_id, 3))
    assert tmux.capture(pane.socket_path, pane.pane_id, 3) == "line 118\nline 119\nline 120"
    assert tmux.capture(pane.socket_path, pane.pane_id, 1) == "line 120"
    # 120 lines do not fit on screen: the history is included
    got = tmux.capture(pane.socket_path, pane.pane_id, 100).split("\n")
    assert got == [f"line {i}" for i in range(21, 121)]
    # more lines than exist: everything, no blank padding
    everything = tmux.capture(pane.socket_path, pane.pane_id, 5000).split("\n")
    assert everything[-1] == "line 120" and everything[0] == "line 1"


def test_capture_short_output_strips_blank_rows(director, tmp_path):
    ready = tmp_path / "printed"
    code = "import sys, time\nprint('one\\n\\ntwo')\nsys.stdout.flush()\n" \
           "open(sys.argv[1], 'w').close(); time.sleep(60)\n"
    pane = tmux.split_window(director, [sys.executable, "-c", code, str(ready)], {}, None)
    wait_for(ready.exists)
    wait_for(lambda: tmux.capture(pane.socket_path, pane.pane_id, 30).endswith("two"))
    assert tmux.capture(pane.socket_path, pane.pane_id, 30) == "one\n\ntwo"


def test_capture_bad_lines_and_gone_pane(director):
    with pytest.raises(UsageError):
        tmux.capture(director.socket_path, director.pane_id, 0)
    with pytest.raises(tmux.TargetGone):
        tmux.capture(director.socket_path, "%999", 5)


# ------------------------------------------------------------------- alive, kill, pid


def test_pane_alive_until_process_exits(director, tmp_path):
    go = tmp_path / "go"
    code = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"
    pane = tmux.split_window(director, [sys.executable, "-c", code, str(go)], {}, None)
    assert tmux.pane_alive(pane.socket_path, pane.pane_id)
    go.touch()
    assert tmux.wait_pane_dead(pane.socket_path, pane.pane_id, 3)
    assert not tmux.pane_alive(pane.socket_path, pane.pane_id)
    assert tmux.pane_info(pane.socket_path, pane.pane_id) is None  # closed (no remain-on-exit)


def test_remain_on_exit_pane_counts_as_dead(director, tmux_server, tmp_path):
    tmux_server.cmd("set-option", "-g", "remain-on-exit", "on")
    go = tmp_path / "go"
    code = ("import os, sys, time\nprint('last words', flush=True)\n"
            "while not os.path.exists(sys.argv[1]): time.sleep(0.02)\n")
    pane = tmux.split_window(director, [sys.executable, "-c", code, str(go)], {}, None)
    assert tmux.pane_alive(pane.socket_path, pane.pane_id)
    go.touch()
    assert tmux.wait_pane_dead(pane.socket_path, pane.pane_id, 3)
    info = tmux.pane_info(pane.socket_path, pane.pane_id)
    assert info is not None and info.dead  # the pane is still there, its process is not
    assert not tmux.pane_alive(pane.socket_path, pane.pane_id)
    assert "last words" in tmux.capture(pane.socket_path, pane.pane_id, 200)
    assert tmux.kill_pane(pane.socket_path, pane.pane_id)
    assert tmux.pane_info(pane.socket_path, pane.pane_id) is None


def test_kill_pane_twice(director):
    member = tmux.split_window(director, ["sleep", "30"], {}, None)
    assert tmux.kill_pane(member.socket_path, member.pane_id) is True
    assert not tmux.pane_alive(member.socket_path, member.pane_id)
    assert tmux.kill_pane(member.socket_path, member.pane_id) is False
    assert tmux.pane_alive(director.socket_path, director.pane_id)


def test_pane_pid_and_current_command(director):
    member = tmux.split_window(director, ["sleep", "30"], {}, None)
    pid = tmux.pane_pid(member.socket_path, member.pane_id)
    assert isinstance(pid, int) and pid > 0
    os.kill(pid, 0)  # a real process
    wait_for(lambda: tmux.pane_current_command(member.socket_path, member.pane_id) == "sleep")
    assert tmux.pane_pid(member.socket_path, "%999") is None
    assert tmux.pane_current_command(member.socket_path, "%999") is None


def test_everything_after_the_server_is_killed(director, tmux_server):
    member = tmux.split_window(director, ["sleep", "30"], {}, None)
    assert tmux.server_alive(director.socket_path)
    tmux_server.cmd("kill-server")
    wait_for(lambda: not tmux.server_alive(director.socket_path))
    assert not tmux.pane_alive(member.socket_path, member.pane_id)
    assert tmux.kill_pane(member.socket_path, member.pane_id) is False
    assert tmux.rebalance(member.socket_path, member.window_id) is False
    assert tmux.list_panes(member.socket_path, member.window_id) == []
    with pytest.raises(tmux.TargetGone):
        tmux.capture(member.socket_path, member.pane_id, 5)
    with pytest.raises(tmux.TargetGone):
        tmux.split_window(director, ["sleep", "1"], {}, None)


def test_never_started_server(tmp_path):
    sock = str(tmp_path / "no-such-socket")
    assert not tmux.server_alive(sock)
    assert not tmux.pane_alive(sock, "%0")
    assert tmux.kill_pane(sock, "%0") is False


# ------------------------------------------------------------------------- rebalance


def test_rebalance_tiles_and_keeps_focus(director):
    members = [tmux.split_window(director, ["sleep", "30"], {}, None) for _ in range(3)]
    assert tmux.rebalance(director.socket_path, director.window_id) is True
    assert active_pane(director.socket_path, director.window_id) == director.pane_id
    sizes = [tmux.pane_info(p.socket_path, p.pane_id) for p in [director, *members]]
    widths = {i.width for i in sizes}
    heights = {i.height for i in sizes}
    assert max(widths) - min(widths) <= 1 and max(heights) - min(heights) <= 1  # 2x2 grid
    assert tmux.rebalance(director.socket_path, "@999") is False
    with pytest.raises(TmuxError):
        tmux.rebalance(director.socket_path, "not-a-window")


# ----------------------------------------------------------------------- current_pane


def test_current_pane_outside_tmux():
    assert tmux.current_pane({}) is None
    assert tmux.current_pane({"TMUX": "/tmp/x,1,0"}) is None
    assert tmux.current_pane({"TMUX_PANE": "%1"}) is None


def test_current_pane_from_environment(director):
    environ = {"TMUX": f"{director.socket_path},12345,0", "TMUX_PANE": director.pane_id}
    assert tmux.current_pane(environ) == director
    assert tmux.socket_path_from_env(environ) == director.socket_path


def test_current_pane_gone_or_malformed(director):
    with pytest.raises(tmux.TargetGone):
        tmux.current_pane({"TMUX": f"{director.socket_path},1,0", "TMUX_PANE": "%999"})
    with pytest.raises(TmuxError):
        tmux.current_pane({"TMUX": f"{director.socket_path},1,0", "TMUX_PANE": "oops"})


def test_current_pane_inside_a_real_pane(director, tmp_path):
    out = tmp_path / "where.json"
    code = (
        "import json, sys, dataclasses\nfrom cafleet.tmux import current_pane\n"
        "json.dump(dataclasses.asdict(current_pane()), open(sys.argv[1] + '.tmp', 'w'))\n"
        "import os; os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    )
    member = tmux.split_window(director, [sys.executable, "-c", code, str(out)],
                               {"PYTHONPATH": os.getcwd()}, os.getcwd())
    wait_for(out.exists, timeout=5)
    assert tmux.PaneRef(**json.loads(out.read_text())) == member


# ------------------------------------------------------------------- missing tmux etc.


def test_missing_tmux_binary_is_a_tmux_error(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert not tmux.tmux_available()
    calls = [
        lambda: tmux.pane_alive("/tmp/s", "%0"),
        lambda: tmux.capture("/tmp/s", "%0", 5),
        lambda: tmux.kill_pane("/tmp/s", "%0"),
        lambda: tmux.rebalance("/tmp/s", "@0"),
        lambda: tmux.current_pane({"TMUX": "/tmp/s,1,0", "TMUX_PANE": "%0"}),
    ]
    for call in calls:
        with pytest.raises(TmuxError, match="tmux is not installed") as info:
            call()
        assert not isinstance(info.value, tmux.TargetGone)
        assert info.value.exit_code == 1


def test_other_tmux_failure_is_a_plain_tmux_error(director):
    with pytest.raises(TmuxError) as info:
        tmux._run(director.socket_path, "no-such-command")
    assert not isinstance(info.value, tmux.TargetGone)
    assert "no-such-command" in info.value.message


def test_wait_until():
    calls = []
    assert tmux.wait_until(lambda: calls.append(1) or len(calls) >= 3, 1, 0.01)
    start = time.monotonic()
    assert not tmux.wait_until(lambda: False, 0.1, 0.02)
    assert 0.09 <= time.monotonic() - start < 2  # generous: CI machines stall
    assert not tmux.wait_until(lambda: False, 0)


def test_importing_cafleet_tmux_does_not_import_libtmux():
    code = "import sys, cafleet.tmux; print('libtmux' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
