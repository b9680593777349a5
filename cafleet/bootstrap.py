"""How the plugin's `bin/cafleet` runs the plugin's own `cafleet`, and its private environment.

Claude Code (2.1.332, observed) appends an installed or `--plugin-dir` plugin's `bin/` to the
PATH of its Bash tool, so `<plugin root>/bin/cafleet` runs as plain `cafleet`; it comes last,
so a `cafleet` installed elsewhere (pipx, uv tool, pip) wins. `bin/cafleet` starts
`python3 -I -S` (no site, no user site, no PYTHON* variables) on `main()` below with the
plugin root first on `sys.path`:

- the per-tick commands `cafleet.fastpath` serves (`message poll/ack/send` in their canonical
  forms) run at once with the standard library only, like the hooks;
- everything else needs click and libtmux, which live in a private environment: a venv per
  plugin version and Python version, `<data>/envs/<version>-py<X.Y>/`, where `<data>` is
  `$CLAUDE_PLUGIN_DATA` when set (Claude Code gives it to hooks: `~/.claude/plugins/data/
  <plugin>-<marketplace>/`), else `${XDG_DATA_HOME:-~/.local/share}/cafleet`. It is created
  on first need from the package index (`uv` when on PATH, else `python3 -m venv` + pip, each
  with its own index configuration: `PIP_INDEX_URL`/`PIP_FIND_LINKS`/`PIP_NO_INDEX`, pip.conf,
  `UV_INDEX_URL`/`UV_FIND_LINKS`, uv.toml), with one progress line on stderr, under an
  exclusive `fcntl` lock so two first runs at once build it once. A plugin update (a new
  version) builds a fresh one and removes the others. Only the dependencies go into the venv:
  the `cafleet` package always comes from the plugin root, and the venv's site-packages is
  appended to `sys.path` (no second interpreter is started).

Optional parts ask for their extra the same way: `ensure_env(extras=("mcp",))` installs
`[project.optional-dependencies].mcp` of the plugin's pyproject.toml into the same env on
first use (under the same lock), records it, and puts the env on `sys.path`; it raises
`CafleetError` (exit 1) saying what to run by hand when the index cannot be reached.

Stdlib only; imports nothing heavy until an env has to be built.
"""

from __future__ import annotations

import os
import sys

from cafleet import __version__

#: The file that marks a complete env: `{"version", "python", "requirements", "extras",
#: "pyproject"}` (the last: `[size, mtime_ns]` of the pyproject.toml it was built from).
MARKER = "cafleet-env.json"

#: Seconds a pip/uv step may take before it counts as failed.
INSTALL_TIMEOUT = 600.0


# ------------------------------------------------------------------ where things are


def plugin_root() -> str:
    """The directory holding `cafleet/` (the plugin root in a plugin install)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_dir(environ=None) -> str:
    """`$CLAUDE_PLUGIN_DATA` when set, else `${XDG_DATA_HOME:-~/.local/share}/cafleet`."""
    env = os.environ if environ is None else environ
    if env.get("CLAUDE_PLUGIN_DATA"):
        return env["CLAUDE_PLUGIN_DATA"]
    xdg = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(xdg, "cafleet")


def env_key() -> str:
    """`<cafleet version>-py<major>.<minor>`: one env per plugin version and Python."""
    return f"{__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"


def env_dir(environ=None) -> str:
    """The private env of this plugin version: `<data_dir>/envs/<env_key>`."""
    return os.path.join(data_dir(environ), "envs", env_key())


def site_packages(env: str) -> str:
    """A POSIX venv's site-packages: `<env>/lib/python<X.Y>/site-packages`."""
    return os.path.join(env, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")


def running_cafleet(argv0: str | None = None) -> str | None:
    """Absolute path of the `cafleet` executable this process runs as, or None (e.g. under
    `python -m cafleet` or a test runner): `sys.argv[0]` when its name is `cafleet` and it is
    an executable file (a console script, or the plugin's `bin/cafleet`, whose shell line
    passes its own path as argv[0])."""
    path = sys.argv[0] if argv0 is None else argv0
    if not path or os.path.basename(path) != "cafleet":
        return None
    path = os.path.abspath(path)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def member_path(environ=None, argv0: str | None = None) -> str:
    """The PATH a member pane gets: the running `cafleet`'s directory first, then the
    caller's PATH (without a second copy of that directory). A tmux pane takes its
    environment from the tmux server, not from the Director's shell, so without this a
    member could find no `cafleet`, or a different one."""
    env = os.environ if environ is None else environ
    path = env.get("PATH", os.defpath)
    me = running_cafleet(argv0)
    if me is None:
        return path
    first = os.path.dirname(me)
    return os.pathsep.join([first] + [p for p in path.split(os.pathsep) if p and p != first])


def plugin_version(root: str | None = None) -> str | None:
    """`version` of `<root>/.claude-plugin/plugin.json`, or None when there is none (cafleet
    not running from a plugin checkout) or it cannot be read."""
    import json

    try:
        with open(os.path.join(root or plugin_root(), ".claude-plugin", "plugin.json"), encoding="utf-8") as f:
            version = json.load(f).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def find_plugin_roots(environ=None) -> list[str]:
    """Plugin roots whose `bin/cafleet` is on PATH, in PATH order (Claude Code appends an
    installed plugin's bin/ to its Bash tool's PATH, so a shadowed plugin is still found)."""
    env = os.environ if environ is None else environ
    roots = []
    for d in env.get("PATH", "").split(os.pathsep):
        if d and os.path.basename(os.path.normpath(d)) == "bin" and os.path.isfile(os.path.join(d, "cafleet")):
            root = os.path.dirname(os.path.abspath(d))
            if os.path.isfile(os.path.join(root, ".claude-plugin", "plugin.json")) and root not in roots:
                roots.append(root)
    return roots


def cafleet_info(environ=None, argv0: str | None = None) -> dict:
    """For `cafleet doctor`: `{path, version, plugin_root, plugin_version, env, env_ready,
    warning}`.

    `path` is the running `cafleet` (None under `python -m cafleet`), `version` this
    package's version; `plugin_root` is the plugin this package belongs to when it runs from
    one, else the first plugin found on PATH; `warning` says when the two versions differ
    (the hooks run the plugin's copy, the commands this one, over one DB). `env` is the
    private env's directory when this package is the plugin's (`env_ready`: built)."""
    here = plugin_root()
    root = here if plugin_version(here) is not None else next(iter(find_plugin_roots(environ)), None)
    pv = plugin_version(root) if root else None
    warning = None
    if pv is not None and pv != __version__:
        warning = (f"this cafleet is {__version__} but the plugin at {root} is {pv}; its hooks run the "
                   "plugin's copy: update one of them (or remove the other cafleet from PATH)")
    env = env_dir(environ) if root == here else None
    return {"path": running_cafleet(argv0), "version": __version__, "plugin_root": root,
            "plugin_version": pv, "env": env, "env_ready": bool(env) and os.path.exists(os.path.join(env, MARKER)),
            "warning": warning}


# ------------------------------------------------------------------ requirements


def requirements(extras: tuple[str, ...] = (), root: str | None = None) -> list[str]:
    """The requirement strings for cafleet plus `extras`: from `<root>/pyproject.toml`
    (`[project].dependencies` and `[project.optional-dependencies]`) when the plugin root
    has one, else from the installed `cafleet` distribution's metadata. An unknown extra is
    a `CafleetError`."""
    from cafleet.errors import CafleetError

    path = os.path.join(root or plugin_root(), "pyproject.toml")
    if os.path.exists(path):
        import tomllib

        with open(path, "rb") as f:
            project = tomllib.load(f).get("project", {})
        reqs = list(project.get("dependencies", []))
        optional = project.get("optional-dependencies", {})
        for extra in extras:
            if extra not in optional:
                raise CafleetError(f"cafleet has no optional part {extra!r} (known: {', '.join(sorted(optional))})")
            reqs += optional[extra]
        return reqs
    from importlib import metadata

    try:
        declared = metadata.requires("cafleet") or []
    except metadata.PackageNotFoundError:
        raise CafleetError("cannot tell cafleet's requirements: no pyproject.toml next to the package "
                           "and no installed cafleet distribution") from None
    reqs = []
    for req in declared:
        name, _, marker = req.partition(";")
        extra = marker.split("extra ==")[-1].strip().strip("\"'") if "extra ==" in marker else None
        if extra is None or extra in extras:
            reqs.append(name.strip())
    return reqs


# ------------------------------------------------------------------ the env


def _read_marker(env: str) -> dict | None:
    import json

    try:
        with open(os.path.join(env, MARKER), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _use(env: str) -> str:
    site = site_packages(env)
    if site not in sys.path:
        sys.path.append(site)  # after the stdlib: the env only adds packages
    return site


def ensure_env(extras: tuple[str, ...] = (), *, environ=None, root: str | None = None,
               progress=None) -> str:
    """Make sure the private env exists with cafleet's requirements (plus `extras`), put its
    site-packages on `sys.path`, and return that path.

    Cheap when the env is ready (one marker read, one stat of pyproject.toml). Otherwise takes the
    lock `<data_dir>/envs/.lock` (other first runs wait for it), prints one progress line to
    `progress` (default stderr), creates the venv (`uv venv`, else `python -m venv`), installs
    the requirements (of every extra the env already had, too), writes the marker, and
    removes the envs of other versions. Raises `CafleetError` (exit 1) naming the commands to
    run by hand when creation or the install fails (e.g. the package index is unreachable);
    a partial env is completed by the next run.
    """
    env = env_dir(environ)
    if _satisfied(_read_marker(env), extras, root, env):
        return _use(env)
    import fcntl

    from cafleet.errors import CafleetError

    envs = os.path.dirname(env)
    try:
        os.makedirs(envs, mode=0o700, exist_ok=True)
        with open(os.path.join(envs, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            marker = _read_marker(env)
            if _satisfied(marker, extras, root):
                return _use(env)  # another first run built it while we waited
            every = tuple(sorted(set(extras) | set((marker or {}).get("extras", []))))
            try:
                reqs = requirements(every, root)
            except CafleetError:  # an extra the env had no longer exists
                every = tuple(sorted(set(extras)))
                reqs = requirements(every, root)
            _build(env, reqs, progress if progress is not None else sys.stderr, environ)
            _write_marker(env, reqs, every, _pyproject_stamp(root))
            _remove_others(envs, os.path.basename(env))
    except OSError as e:  # an unwritable data dir, a full disk
        raise CafleetError(f"could not set up cafleet's environment in {env}: {e.strerror or e} "
                           f"({e.filename or envs})") from None
    return _use(env)


def _pyproject_stamp(root: str | None) -> list[int] | None:
    """`[size, mtime_ns]` of the plugin's pyproject.toml (None without one): an unchanged
    file needs no TOML parse on every slow-path call."""
    try:
        st = os.stat(os.path.join(root or plugin_root(), "pyproject.toml"))
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _satisfied(marker: dict | None, extras: tuple[str, ...], root: str | None, env: str | None = None) -> bool:
    """The env's marker says it holds cafleet's current requirements and `extras`."""
    from cafleet.errors import CafleetError

    if not marker or not set(extras) <= set(marker.get("extras", [])):
        return False
    stamp = _pyproject_stamp(root)
    if stamp is not None and marker.get("pyproject") == stamp:
        return True
    have = tuple(sorted(marker.get("extras", [])))
    try:
        same = marker.get("requirements") == requirements(have, root)
    except CafleetError:  # an extra that no longer exists: rebuild
        return False
    if same and stamp is not None and env is not None:
        try:  # the same requirements in a touched file: remember its new stamp
            _write_marker(env, marker["requirements"], have, stamp)
        except OSError:
            pass
    return same


def _write_marker(env: str, reqs: list[str], extras: tuple[str, ...], stamp: list[int] | None) -> None:
    import json

    tmp = os.path.join(env, f"{MARKER}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"version": __version__, "python": sys.version.split()[0], "requirements": reqs,
                   "extras": list(extras), "pyproject": stamp}, f)
    os.replace(tmp, os.path.join(env, MARKER))


def _commands(env: str, reqs: list[str], environ=None) -> list[list[str]]:
    """The argv lists that build `env` with `reqs`: uv when on PATH, else venv + pip."""
    import shutil

    py = os.path.join(env, "bin", "python")
    uv = shutil.which("uv", path=(os.environ if environ is None else environ).get("PATH"))
    steps = []
    if uv:
        if not os.path.exists(py):
            steps.append([uv, "venv", "--quiet", "--python", sys.executable, env])
        steps.append([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", py, *reqs])
    else:
        if not os.path.exists(py):
            steps.append([sys.executable, "-m", "venv", env])
        steps.append([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs])
    return steps


def _build(env: str, reqs: list[str], progress, environ=None) -> None:
    import shlex
    import subprocess

    from cafleet.errors import CafleetError

    if os.path.isdir(env) and not os.path.exists(os.path.join(env, "bin", "python")):
        import shutil

        shutil.rmtree(env, ignore_errors=True)  # a venv that never got its interpreter
    steps = _commands(env, reqs, environ)
    print(f"cafleet: setting up its Python environment ({', '.join(reqs)}) in {env} "
          "— once per plugin version …", file=progress, flush=True)
    by_hand = " && ".join(shlex.join(s) for s in steps)
    for argv in steps:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT, env=None if environ is None else dict(environ))
        except (OSError, subprocess.SubprocessError) as e:
            raise CafleetError(f"could not set up cafleet's environment: `{shlex.join(argv)}` failed: {e}\n"
                               f"Run by hand: {by_hand}") from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-6:])
            raise CafleetError(
                f"could not set up cafleet's environment in {env} "
                f"({'creating the venv' if 'venv' in argv[:3] else 'pip install'} exited {done.returncode}; "
                f"is the package index reachable?):\n{tail}\n"
                f"Fix the network or the index settings (pip: PIP_INDEX_URL / pip.conf; uv: UV_INDEX_URL), "
                f"then run cafleet again, or run by hand: {by_hand}")


def _remove_others(envs: str, keep: str) -> None:
    """Remove the envs of other plugin versions (called with the lock held)."""
    import shutil

    for name in os.listdir(envs):
        path = os.path.join(envs, name)
        if name != keep and not name.startswith(".") and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ bin/cafleet


def main(argv: list[str] | None = None) -> None:
    """`bin/cafleet`: run `argv` (default `sys.argv[1:]`) with the plugin's own package;
    exits with the command's exit code. A fast-path command runs with the standard library
    (plus the env's site-packages when it exists, for the tmux push of `message send`);
    anything else first makes sure the private env exists (`ensure_env`)."""
    args = sys.argv[1:] if argv is None else argv
    env = env_dir()
    ready = os.path.exists(os.path.join(env, MARKER))
    if ready:
        _use(env)
    from cafleet import fastpath

    hot = fastpath.hot_command(args)
    if hot is not None and (ready or hot != "send"):  # send may type a preview: needs libtmux
        sys.exit(fastpath.run(args))
    from cafleet.errors import CafleetError

    try:
        ensure_env()
    except CafleetError as e:
        from cafleet import render

        render.echo_error(e.message, e.code, "--json" in args)
        sys.exit(e.exit_code)
    from cafleet.cli import main as cli_main

    cli_main()
