#!/usr/bin/env bash
# Install the real coding-agent CLIs the end-to-end tests run, from the npm registry, into
# .e2e-tools/ at the repo root (git-ignored; reused while the pinned versions match).
# Usage: tests/e2e/install-tools.sh        (needs node + npm)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.e2e-tools"
pins=(@anthropic-ai/claude-code@2.1.330 @openai/codex@0.169.0 opencode-ai@1.18.33)
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
