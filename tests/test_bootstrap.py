"""`bin/cafleet` and its first-use environment (cafleet/bootstrap.py), for real.

The plugin is a clean copy of the checkout (what `claude plugin install` gets); `bin/cafleet`
runs as a subprocess with a PATH that holds no other `cafleet`, a temp data dir, and pip
pointed at a local wheel directory (tests/wheelhouse.py: the test environment's own click and
libtmux repacked), so nothing reaches the network. No uv is on that PATH: the venv + pip path
runs (uv is used when on PATH; its argv is checked without running it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import wheelhouse
from cafleet import __version__, bootstrap
from checkout import clean_copy
from test_members import rig, wait_for  # noqa: F401 - the `rig` fixture: private tmux + stand-ins

KEY = f"{__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"
F = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
A = "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    return clean_copy(tmp_path_factory.mktemp("plugin") / "cafleet")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    return wheelhouse.build(tmp_path_factory.mktemp("wheels"))


def sys_path_dirs() -> str:
    """A PATH with python3 and the basics but no `cafleet` and no `uv`."""
    dirs = []
    for d in (os.path.dirname(os.path.realpath(shutil.which("python3") or sys.executable)), "/usr/bin", "/bin"):
        if d not in dirs and not os.path.exists(os.path.join(d, "cafleet")) and not os.path.exists(os.path.join(d, "uv")):
            dirs.append(d)
    return os.pathsep.join(dirs)


def base_env(tmp: Path, wheels: Path | None) -> dict[str, str]:
    env = {"PATH": sys_path_dirs(), "HOME": str(tmp / "home"), "XDG_DATA_HOME": str(tmp / "data"),
           "CAFLEET_DB": str(tmp / "db" / "cafleet.db"), "LANG": "C.UTF-8"}
    if wheels is not None:
        env.update(wheelhouse.pip_env(wheels))
    return env


def run(plugin: Path, env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(plugin / "bin" / "cafleet"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def envs_dir(tmp: Path) -> Path:
    return tmp / "data" / "cafleet" / "envs"


def test_no_cafleet_on_the_test_path():
    assert shutil.which("cafleet", path=sys_path_dirs()) is None


def test_first_use_twice_at_once_builds_one_env(plugin, wheels, tmp_path):
    env = base_env(tmp_path, wheels)
    results = [None, None]

    def go(i):
        results[i] = run(plugin, env, "--version")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"cafleet {__version__}\n"
    progress = [line for r in results for line in r.stderr.splitlines()]
    assert len(progress) == 1, progress  # the second run waited on the lock, then found it built
    assert progress[0].startswith("cafleet: setting up its Python environment (click>=8.1, libtmux>=0.40) in ")
    env_path = envs_dir(tmp_path) / KEY
    assert sorted(p.name for p in envs_dir(tmp_path).iterdir()) == [".lock", KEY]
    marker = json.loads((env_path / bootstrap.MARKER).read_text())
    assert marker["requirements"] == ["click>=8.1", "libtmux>=0.40"] and marker["extras"] == []
    site = Path(bootstrap.site_packages(str(env_path)))
    assert (site / "click").is_dir() and (site / "libtmux").is_dir()
    assert not (site / "cafleet").exists()  # the package always comes from the plugin root
    # a later run says nothing and builds nothing
    again = run(plugin, env, "--help")
    assert again.returncode == 0 and again.stderr == "" and "fleet" in again.stdout


def test_unreachable_index_says_what_to_run_then_a_later_run_completes(plugin, wheels, tmp_path):
    env = base_env(tmp_path, None)
    env.update({"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": os.devnull})
    r = run(plugin, env, "--version")
    assert r.returncode == 1 and r.stdout == ""
    assert "Traceback" not in r.stderr
    err = r.stderr
    assert "Error: could not set up cafleet's environment in " in err and "is the package index reachable?" in err
    env_path = envs_dir(tmp_path) / KEY
    assert "(pip install exited 1; is the package index reachable?)" in err, err
    assert "then run cafleet again, or run by hand: " in err and "python3 -m venv " in err
    assert err.rstrip().endswith(
        f" -m venv {env_path} && {env_path}/bin/python -m pip install --quiet "
        "--disable-pip-version-check 'click>=8.1' 'libtmux>=0.40'"), err
    assert not (env_path / bootstrap.MARKER).exists()
    # --json: after the progress line, the error as JSON
    r = run(plugin, env, "--json", "fleet", "list")
    assert r.returncode == 1 and json.loads(r.stderr.splitlines()[-1])["error"]["message"].startswith("could not set up")
    # the index comes back: the half-made env (a venv without the packages) is completed
    ok = run(plugin, base_env(tmp_path, wheels), "--version")
    assert ok.returncode == 0 and ok.stdout == f"cafleet {__version__}\n", ok.stderr
    assert (env_path / bootstrap.MARKER).exists()


def test_a_plugin_update_gets_a_fresh_env_and_the_old_one_goes(plugin, wheels, tmp_path):
    old = envs_dir(tmp_path) / "0.0.9-py3.11"
    (old / "lib").mkdir(parents=True)
    (old / bootstrap.MARKER).write_text(json.dumps({"version": "0.0.9", "requirements": [], "extras": []}))
    r = run(plugin, base_env(tmp_path, wheels), "--version")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in envs_dir(tmp_path).iterdir()) == [".lock", KEY]


def test_fast_path_runs_with_no_env_at_all(plugin, tmp_path):
    """poll/ack need only the standard library: no env is built, no index is asked."""
    env = base_env(tmp_path, None)
    env["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"  # would fail if anything were installed
    r = run(plugin, env, "--fleet-id", F, "message", "poll", "--agent-id", A)
    assert not envs_dir(tmp_path).exists()
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and "Traceback" not in r.stderr
    # the same answer as the console script of the test environment
    ref = subprocess.run([sys.executable, "-m", "cafleet", "--fleet-id", F, "message", "poll", "--agent-id", A],
                         env={**os.environ, "CAFLEET_DB": env["CAFLEET_DB"]}, capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (ref.returncode, ref.stdout, ref.stderr)


def test_send_without_an_env_builds_it_first(plugin, wheels, tmp_path):
    """`message send` may type a preview (libtmux): with no env yet it goes the slow way."""
    env = base_env(tmp_path, wheels)
    r = run(plugin, env, "--fleet-id", F, "message", "send", "--agent-id", A, "--to", A, "--text", "x")
    assert r.returncode == 1 and "Error: " in r.stderr
    assert (envs_dir(tmp_path) / KEY / bootstrap.MARKER).exists()


def test_an_extra_is_installed_into_the_same_env_on_first_use(wheels, tmp_path, monkeypatch):
    """What issue 13's optional parts call: `ensure_env(extras=("x",))`."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "cafleet"\ndependencies = ["click>=8.1"]\n'
        '[project.optional-dependencies]\nini = ["iniconfig"]\n')
    extra_wheels = wheelhouse.build(tmp_path / "w", names=("click", "iniconfig"))
    environ = base_env(tmp_path, extra_wheels)
    monkeypatch.setattr(sys, "path", list(sys.path))
    out = []

    class Progress:
        def write(self, s):
            out.append(s)

        def flush(self):
            pass

    site = bootstrap.ensure_env(environ=environ, root=str(root), progress=Progress())
    assert site in sys.path and (Path(site) / "click").is_dir() and not (Path(site) / "iniconfig.py").exists()
    site2 = bootstrap.ensure_env(extras=("ini",), environ=environ, root=str(root), progress=Progress())
    assert site2 == site and (Path(site) / "iniconfig").exists()
    marker = json.loads((Path(bootstrap.env_dir(environ)) / bootstrap.MARKER).read_text())
    assert marker["extras"] == ["ini"] and marker["requirements"] == ["click>=8.1", "iniconfig"]
    def builds():
        return "".join(out).count("cafleet: setting up its Python environment")

    assert builds() == 2
    bootstrap.ensure_env(extras=("ini",), environ=environ, root=str(root), progress=Progress())
    bootstrap.ensure_env(environ=environ, root=str(root), progress=Progress())  # keeps the extra
    assert builds() == 2
    # the same version with other requirements (a checkout whose pyproject changed): reinstalled
    (root / "pyproject.toml").write_text(
        '[project]\nname = "cafleet"\ndependencies = ["click>=8.0"]\n'
        '[project.optional-dependencies]\nini = ["iniconfig"]\n')
    bootstrap.ensure_env(environ=environ, root=str(root), progress=Progress())
    assert builds() == 3
    marker = json.loads((Path(bootstrap.env_dir(environ)) / bootstrap.MARKER).read_text())
    assert marker["requirements"] == ["click>=8.0", "iniconfig"] and marker["extras"] == ["ini"]
    with pytest.raises(Exception, match="no optional part 'nope'"):
        bootstrap.ensure_env(extras=("nope",), environ=environ, root=str(root))


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed (pip install uv)")
def test_uv_when_on_path_builds_the_env(plugin, wheels, tmp_path):
    """With `uv` on PATH the env is made by `uv venv` + `uv pip install` (offline: uv's own
    UV_OFFLINE / UV_FIND_LINKS), and works like pip's."""
    uv_dir = tmp_path / "uvbin"
    uv_dir.mkdir()
    (uv_dir / "uv").symlink_to(shutil.which("uv"))
    env = base_env(tmp_path, None)
    env.update({"PATH": f"{env['PATH']}:{uv_dir}", "UV_OFFLINE": "1", "UV_FIND_LINKS": str(wheels),
                "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_NO_CONFIG": "1"})
    r = run(plugin, env, "--version")
    assert r.returncode == 0 and r.stdout == f"cafleet {__version__}\n", r.stderr
    env_path = envs_dir(tmp_path) / KEY
    assert (env_path / bootstrap.MARKER).exists()
    assert "uv = " in (env_path / "pyvenv.cfg").read_text()  # uv wrote this venv
    assert not (Path(bootstrap.site_packages(str(env_path))) / "pip").exists()  # uv venvs have no pip
    again = run(plugin, env, "--help")
    assert again.returncode == 0 and again.stderr == ""


def test_data_dir_and_member_path(tmp_path):
    assert bootstrap.data_dir({"CLAUDE_PLUGIN_DATA": "/p/data", "XDG_DATA_HOME": "/x"}) == "/p/data"
    assert bootstrap.data_dir({"XDG_DATA_HOME": "/x"}) == "/x/cafleet"
    assert bootstrap.env_dir({"XDG_DATA_HOME": "/x"}) == f"/x/cafleet/envs/{KEY}"
    exe = tmp_path / "b" / "cafleet"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    d = str(exe.parent)
    assert bootstrap.running_cafleet(str(exe)) == str(exe)
    assert bootstrap.member_path({"PATH": f"/usr/bin:{d}:/bin"}, str(exe)) == f"{d}:/usr/bin:/bin"
    assert bootstrap.running_cafleet("/usr/bin/python3") is None
    assert bootstrap.member_path({"PATH": "/usr/bin"}, "/x/pytest") == "/usr/bin"
    exe.chmod(0o644)
    assert bootstrap.running_cafleet(str(exe)) is None


def test_doctor_names_the_cafleet_that_runs_and_warns_on_a_version_mismatch(plugin, wheels, tmp_path):
    env = base_env(tmp_path, wheels)
    r = run(plugin, env, "doctor")
    first = r.stdout.splitlines()[0]
    assert first == f"cafleet:      {plugin}/bin/cafleet  {__version__}  (plugin: {__version__} at {plugin})", r.stdout
    assert r.stdout.splitlines()[1] == f"cafleet env:  {envs_dir(tmp_path) / KEY}", r.stdout
    assert "warning: this cafleet is" not in r.stdout  # (no backend on PATH here: that warning is issue 10's)
    # another cafleet (a console script of another version) first on PATH, the plugin's bin last
    other = tmp_path / "other"
    shutil.copytree(plugin, other, ignore=shutil.ignore_patterns("bin", ".claude-plugin"))
    init = other / "cafleet" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{__version__}"', '__version__ = "9.9.9"'))
    (other / "bin").mkdir()
    script = other / "bin" / "cafleet"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(other)!r})\n"
                      "from cafleet.entry import main\nmain()\n")
    script.chmod(0o755)
    env2 = {**env, "PATH": f"{other / 'bin'}:{env['PATH']}:{plugin / 'bin'}"}
    r = subprocess.run(["cafleet", "--json", "doctor"], env=env2, capture_output=True, text=True, timeout=60)
    c = json.loads(r.stdout)["cafleet"]
    assert c == {"path": str(script), "version": "9.9.9", "plugin_root": str(plugin), "plugin_version": __version__,
                 "env": None, "env_ready": False, "warning": c["warning"]}
    assert c["warning"].startswith(f"this cafleet is 9.9.9 but the plugin at {plugin} is {__version__}")


# ------------------------------------------------------------------ members run the same cafleet


@pytest.fixture(scope="module")
def built_data(plugin, wheels, tmp_path_factory) -> Path:
    """A data dir whose env for `plugin` is already built (shared by the member tests)."""
    tmp = tmp_path_factory.mktemp("built")
    r = run(plugin, base_env(tmp, wheels), "--version")
    assert r.returncode == 0, r.stderr
    return tmp / "data"


@pytest.mark.parametrize("backend", ["claude", "codex", "opencode"])
def test_a_member_pane_finds_the_directors_cafleet_first(backend, plugin, wheels, built_data, rig):
    """The Director runs the plugin's bin/cafleet by its path while another `cafleet` (the test
    environment's console script) is first on its PATH; the member's own shell command in its
    pane (`! command -v cafleet`, typed by `member exec`) finds the plugin's."""
    from cafleet.demo import install_standin

    install_standin(rig.bin, names=("claude", "codex", "opencode"))
    other = shutil.which("cafleet", path=rig.base_env["PATH"])
    assert other and other != str(plugin / "bin" / "cafleet")  # a different cafleet wins on PATH
    rig.start()
    env = {**rig.env, "XDG_DATA_HOME": str(built_data), **wheelhouse.pip_env(wheels)}
    mine = str(plugin / "bin" / "cafleet")

    def cafleet(*args):
        p = subprocess.run([mine, *args], env=env, capture_output=True, text=True, timeout=60, cwd=rig.tmp)
        assert p.returncode == 0 and p.stderr == "", (args, p.stdout, p.stderr)
        return p.stdout

    created = json.loads(cafleet("--json", "fleet", "create", "--name", "t"))
    rig.fleet_id, rig.director_id = created["fleet_id"], created["director"]["agent_id"]
    member = cafleet("--fleet-id", rig.fleet_id, "member", "create", "--name", "m", "--description", "d",
                     "--coding-agent", backend, "--", "Wait.").splitlines()[0]
    rig.wait_ready(member)
    pane = rig.pane_of(member)
    cafleet("--fleet-id", rig.fleet_id, "member", "exec", "--member-id", member, "command -v cafleet")
    try:
        wait_for(lambda: f"$ command -v cafleet\n{mine}\n" in rig.capture(pane) + "\n",
                 f"the {backend} member's `command -v cafleet` output")
    except BaseException:
        print(rig.capture(pane))
        pid = rig.tmux("display", "-p", "-t", pane, "#{pane_pid}")
        print([e for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if e.startswith(b"PATH")])
        raise


# ------------------------------------------------------------------ the fast path's id check


_UUID4_RE = __import__("re").compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _uuidish():
    from hypothesis import strategies as st

    chars = st.sampled_from("0123456789abcdefABCDEF-4g ")
    return st.one_of(st.text(chars, min_size=34, max_size=38), st.uuids().map(str),
                     st.uuids(version=4).map(str), st.uuids(version=4).map(lambda u: str(u).upper()),
                     st.text(max_size=40))


def test_is_uuid4_without_re_matches_the_regex():
    """broker.is_uuid4 no longer imports `re` (a per-tick cost); it accepts exactly what the
    canonical-UUID4 regex accepts."""
    from hypothesis import given, settings

    from cafleet.broker import is_uuid4, new_id

    @settings(max_examples=3000, deadline=None)
    @given(_uuidish())
    def check(s):
        assert is_uuid4(s) == (_UUID4_RE.fullmatch(s) is not None)

    check()
    assert all(is_uuid4(new_id()) for _ in range(100))
    assert not is_uuid4(None) and not is_uuid4(b"0" * 36)


def test_no_python3_on_path_is_a_clear_error(plugin, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run(["/bin/sh", str(plugin / "bin" / "cafleet"), "--version"], env={"PATH": str(empty)},
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "Error: cafleet needs python3 (3.11+) on PATH\n")


def test_an_unwritable_data_dir_is_a_clear_error(plugin, tmp_path):
    env = base_env(tmp_path, None)
    (tmp_path / "data").write_text("a file where the data dir should be")  # even root cannot mkdir here
    r = run(plugin, env, "--version")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"Error: could not set up cafleet's environment in {envs_dir(tmp_path) / KEY}: "), r.stderr
