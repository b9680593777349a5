"""A local wheel directory built from the distributions installed in the test environment.

The first-use environment of `bin/cafleet` (cafleet/bootstrap.py) installs cafleet's
requirements from a package index. Tests must not need the network, so they point pip at a
directory of wheels (`PIP_NO_INDEX=1`, `PIP_FIND_LINKS=<dir>`): the very click and libtmux the
test environment runs with, packed back into wheels (both are pure Python, `py3-none-any`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from importlib import metadata
from pathlib import Path

#: What `bin/cafleet` installs into its private env (pyproject.toml's dependencies).
RUNTIME = ("click", "libtmux")

_SKIP = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def repack(name: str, dest: Path) -> Path:
    """Write the installed distribution `name` as `<dest>/<name>-<version>-py3-none-any.whl`
    (its files under site-packages and its .dist-info, with a fresh RECORD); returns the path."""
    dist = metadata.distribution(name)
    norm = dist.metadata["Name"].replace("-", "_")
    info = f"{norm}-{dist.version}.dist-info"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{norm}-{dist.version}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in dist.files or ():
            arc = str(f).replace(os.sep, "/")
            if arc.startswith("..") or "__pycache__" in arc or arc.endswith(".pyc"):
                continue  # console scripts live outside site-packages; pip regenerates them
            if arc.startswith(info + "/") and arc.rsplit("/", 1)[-1] in _SKIP:
                continue
            data = Path(f.locate()).read_bytes()
            zf.writestr(arc, data)
            records.append(_record_line(arc, data))
        records.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return wheel


def build(dest: Path, names=RUNTIME) -> Path:
    """A wheel directory with `names` repacked into `dest`; returns `dest`."""
    for name in names:
        repack(name, dest)
    return dest


def pip_env(wheels: Path) -> dict[str, str]:
    """Environment variables that make pip install from `wheels` only, never the network."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_CONFIG_FILE": os.devnull}  # no machine-wide pip.conf (its indexes, constraints)
