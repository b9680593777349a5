#!/usr/bin/env bash
# Install the real coding-agent CLIs the end-to-end tests run, from the npm registry, into a
# cache directory outside the repository tree (so a checkout, and a plugin installed from it,
# stays small): $CAFLEET_E2E_TOOLS, else ${XDG_CACHE_HOME:-~/.cache}/cafleet/e2e-tools.
# Reused while the pinned versions match (keep the pins in step with tests/e2e_tools.py).
# Usage: tests/e2e/install-tools.sh        (needs node + npm)
set -euo pipefail
dest="${CAFLEET_E2E_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/cafleet/e2e-tools}"
pins=(@anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0 opencode-ai@1.18.33)
stamp="$dest/.pins"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ] && [ -x "$dest/node_modules/.bin/claude" ]; then
  echo "e2e tools already installed in $dest"; exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: the e2e tests will be skipped" >&2; exit 0
fi
mkdir -p "$dest"
npm install --no-audit --no-fund --loglevel=error --prefix "$dest" "${pins[@]}"
echo "${pins[*]}" > "$stamp"
"$dest/node_modules/.bin/claude" --version
