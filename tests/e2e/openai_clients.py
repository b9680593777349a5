"""codex and opencode offline: their config in a temp HOME, pointed at tests/e2e/fakeapi.py.

Checked with codex-cli 0.171.0 and opencode 1.18.33 (tests/e2e/test_openai_wires.py):

- codex reads ``$HOME/.codex/config.toml`` (its ``CODEX_HOME``). A custom provider
  (``model_provider = "fake"``, ``[model_providers.fake] base_url = "<api>/v1"``,
  ``wire_api = "responses"``, ``env_key = "FAKE_KEY"``) sends ``POST /v1/responses`` with the
  key from ``$FAKE_KEY`` and skips the ChatGPT sign-in screen. The shell tool it offers is
  ``exec_command`` (``{"cmd": "<shell text>"}``, run as ``/bin/bash -lc``), not ``shell``; an
  unknown tool name comes back as the output ``unsupported call: <name>``. A thread-title
  request without tools follows the first turn. A non-git cwd shows no trust dialog.
- opencode merges ``$HOME/.config/opencode/opencode.json`` (provider ``fake`` via
  ``@ai-sdk/openai-compatible``, ``"model": "fake/m"``) with a member's own
  ``OPENCODE_CONFIG_CONTENT`` (the ``cafleet`` agent), so a member spawned by cafleet uses
  the fake provider without ``--model``. Its shell tool is ``bash``
  (``{"command", "description"}``); a title request without tools comes first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import claude_env as ce

#: Env a codex/opencode pane needs besides HOME (the provider key codex reads; no updates).
CLIENT_ENV = {
    "FAKE_KEY": "sk-fake-e2e",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "NO_UPDATE_NOTIFIER": "1",
}

CODEX_MODEL = "fake-model"
OPENCODE_MODEL = "fake/m"


def codex_config(api_url: str, *, extra: str = "") -> str:
    """The ``config.toml`` text: the fake provider as the default, ``extra`` appended."""
    return (f'model = "{CODEX_MODEL}"\n'
            'model_provider = "fake"\n'
            "\n[model_providers.fake]\n"
            'name = "fake"\n'
            f'base_url = "{api_url}/v1"\n'
            'wire_api = "responses"\n'
            'env_key = "FAKE_KEY"\n'
            + (("\n" + extra) if extra else ""))


def write_codex_config(home: os.PathLike | str, api_url: str, *, extra: str = "") -> Path:
    d = Path(home) / ".codex"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "config.toml"
    p.write_text(codex_config(api_url, extra=extra))
    return p


def opencode_provider(api_url: str) -> dict:
    """A config holding the fake provider and making ``fake/m`` the default model."""
    return {"model": OPENCODE_MODEL,
            "provider": {"fake": {"npm": "@ai-sdk/openai-compatible", "name": "Fake",
                                  "options": {"baseURL": api_url + "/v1", "apiKey": "x"},
                                  "models": {"m": {"name": "m", "tool_call": True}}}}}


def write_opencode_config(home: os.PathLike | str, api_url: str) -> Path:
    d = Path(home) / ".config" / "opencode"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "opencode.json"
    p.write_text(json.dumps(opencode_provider(api_url)))
    return p


def write_login_profile(home: os.PathLike | str, path_dirs: list[str]) -> Path:
    """``$HOME/.bash_profile`` putting ``path_dirs`` first on PATH. codex 0.171.0 runs its
    shell tool as ``/bin/bash -lc <cmd>`` (a login shell), and Debian's ``/etc/profile``
    resets PATH, so a ``cafleet`` that is only on the pane's PATH is "command not found" there;
    a user's login PATH is where cafleet has to be."""
    p = Path(home) / ".bash_profile"
    dirs = ":".join(path_dirs)
    p.write_text(f'export PATH="{dirs}:$PATH"\n')
    return p


# ------------------------------------------------------------------ fixtures for codex + opencode panes
# (import them into a test module: `from openai_clients import clients, e2e_env  # noqa: F401`)


@pytest.fixture
def clients() -> dict[str, str]:
    """Paths of the real codex and opencode (tests/e2e_tools.py); the test is skipped without them."""
    found = {b: ce.find_tool(b) for b in ("codex", "opencode")}
    missing = [b for b, p in found.items() if p is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (tests/e2e/install-tools.sh)")
    return found


@pytest.fixture
def e2e_env(tmp_path, claude_home, fake_api, e2e_path_prepend, clients):
    """The pane environment of tests/e2e/conftest.py's ``e2e_env``, plus both clients' config
    in the temp HOME pointed at the fake API, a login profile that keeps cafleet on PATH, and
    ``CLIENT_ENV``."""
    write_codex_config(claude_home.path, fake_api.url)
    write_opencode_config(claude_home.path, fake_api.url)
    write_login_profile(claude_home.path, ce.python_bin_dirs())
    return ce.claude_env(claude_home, fake_api.url, path_prepend=e2e_path_prepend,
                         extra={"CAFLEET_DB": str(tmp_path / "data" / "cafleet.db"), **CLIENT_ENV})
