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
    """`{ok, problem, warnings: [str], cafleet: {path, version, plugin_root, plugin_version, env,
    env_ready, warning} (`bootstrap.cafleet_info`), tmux: {TMUX, TMUX_PANE, socket_path,
    session_name, window_id, pane_id}, db: {path, schema_version, error}, fleet: {fleet_id, name,
    agent_id, agent_name, role} | None (the fleet agent placed in this pane), backends: {name:
    {path, version}}}`. No backend on PATH is a warning (every `member create` would fail), not a
    problem: the Director may still read and message."""
    from cafleet import backends, tmux
    from cafleet.broker import Broker
    from cafleet.store import db_path

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
    fleet = None
    try:
        db["path"] = db_path(env)
        with Broker.open(db["path"]) as broker:
            db["schema_version"] = broker.schema_version()
            fleet = _fleet_of(broker, pane)
    except CafleetError as e:
        db["error"] = e.message
        problem = problem or f"database: {e.message}"
    found = {}
    for name in backends.BACKENDS:
        path = backends.which(name)
        found[name] = {"path": path, "version": backends.version(name) if path else None}
    warnings = []
    missing = [name for name, b in found.items() if not b["path"]]
    if len(missing) == len(found):
        warnings.append("no coding-agent backend (" + ", ".join(found) + ") is on PATH: `member create` would fail "
                        "for every --coding-agent; install one (e.g. `npm install -g @anthropic-ai/claude-code`) "
                        "or fix PATH")
    from cafleet.bootstrap import cafleet_info

    return {"ok": problem is None, "problem": problem, "warnings": warnings, "cafleet": cafleet_info(env),
            "tmux": tmux_info, "db": db, "fleet": fleet, "backends": found}


def _fleet_of(broker, pane) -> dict | None:
    """`{fleet_id, name, agent_id, agent_name, role}` of the fleet agent placed in this pane
    (the one the hooks act on), or None."""
    if pane is None:
        return None
    from cafleet.hooks import placed_in

    agent = placed_in(broker, (pane.socket_path, pane.pane_id))
    if agent is None:
        return None
    return {"fleet_id": agent["fleet_id"], "name": agent["fleet"]["name"], "agent_id": agent["agent_id"],
            "agent_name": agent["name"], "role": agent["role"]}


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
    f = r.get("fleet")
    at = next(i for i, line in enumerate(lines) if line.startswith("database:")) + 1
    lines.insert(at, "fleet:        " + (f"{f['fleet_id']} ({f['name']}); this pane is {f['role']} {f['agent_name']} "
                                       f"({f['agent_id']})" if f else "none (no fleet agent is placed in this pane)"))
    warnings = ([c["warning"]] if c["warning"] else []) + list(r.get("warnings", ()))
    lines.extend(f"warning: {w}" for w in warnings)
    if r["ok"]:
        lines.append("ok, but see the warning above" if warnings else "ok")
    else:
        lines.append(f"problem: {r['problem']}")
    return "\n".join(lines)
