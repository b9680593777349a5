"""`cafleet doctor`: what a Director needs to know before it spawns a team.

Reports the calling pane (tmux session, window id, pane id, `$TMUX_PANE`), the DB path and
schema version, and which backends are on PATH with their versions. `ok` is False (and the
command exits 1) when `$TMUX` or `$TMUX_PANE` is missing or the pane cannot be resolved.
"""

from __future__ import annotations

import os
import sys

from cafleet.errors import CafleetError


def report(environ=None) -> dict:
    """`{ok, problem, cafleet: {path, version, plugin_root, plugin_version, env, env_ready, warning}
    (`bootstrap.cafleet_info`), tmux: {TMUX, TMUX_PANE, socket_path, session_name, window_id, pane_id},
    db: {path, schema_version, error}, backends: {name: {path, version}}}`."""
    from cafleet import backends, tmux
    from cafleet.broker import Broker, db_path

    env = os.environ if environ is None else environ
    problem = None
    pane = None
    if not env.get("TMUX") or not env.get("TMUX_PANE"):
        problem = "not inside tmux: $TMUX / $TMUX_PANE are not set; start tmux and run cafleet from a pane"
    else:
        try:
            pane = tmux.current_pane(env)
        except CafleetError as e:
            problem = f"cannot resolve the calling pane: {e.message}"
        if pane is None and problem is None:
            problem = f"tmux pane {env.get('TMUX_PANE')} could not be resolved on {env.get('TMUX')}"
    tmux_info = {"TMUX": env.get("TMUX"), "TMUX_PANE": env.get("TMUX_PANE"),
                 "socket_path": pane.socket_path if pane else None,
                 "session_name": pane.session_name if pane else None,
                 "window_id": pane.window_id if pane else None,
                 "pane_id": pane.pane_id if pane else None}
    db = {"path": None, "schema_version": None, "error": None}
    try:
        db["path"] = db_path(env)
        with Broker.open(db["path"]) as broker:
            db["schema_version"] = broker.schema_version()
    except CafleetError as e:
        db["error"] = e.message
        problem = problem or f"database: {e.message}"
    found = {}
    for name in backends.BACKENDS:
        path = backends.which(name)
        found[name] = {"path": path, "version": backends.version(name) if path else None}
    from cafleet.bootstrap import cafleet_info

    return {"ok": problem is None, "problem": problem, "cafleet": cafleet_info(env), "tmux": tmux_info, "db": db,
            "backends": found}


def format_report(r: dict) -> str:
    """The text form of `report()`: one fact per line."""
    t, db, c = r["tmux"], r["db"], r["cafleet"]
    lines = [
        f"cafleet:      {c['path'] or sys.executable + ' -m cafleet'}  {c['version']}  (plugin: "
        + (f"{c['plugin_version']} at {c['plugin_root']})" if c["plugin_root"] else "not found)"),
        *([f"cafleet env:  {c['env']}" + ("" if c["env_ready"] else "  (not built yet)")] if c["env"] else []),
        f"tmux session: {t['session_name'] or '-'}",
        f"tmux window:  {t['window_id'] or '-'}",
        f"tmux pane:    {t['pane_id'] or '-'}  (TMUX_PANE={t['TMUX_PANE'] or 'unset'})",
        f"tmux socket:  {t['socket_path'] or '-'}",
        f"database:     {db['path'] or '-'}  schema {db['schema_version'] if db['schema_version'] is not None else '-'}"
        + (f"  ERROR: {db['error']}" if db["error"] else ""),
    ]
    for name, b in r["backends"].items():
        lines.append(f"backend {name + ':':<9} " + (f"{b['path']}  {b['version'] or '(version unknown)'}"
                                                    if b["path"] else "not on PATH"))
    if c["warning"]:
        lines.append(f"warning: {c['warning']}")
    lines.append("ok" if r["ok"] else f"problem: {r['problem']}")
    return "\n".join(lines)
