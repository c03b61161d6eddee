#!/usr/bin/env bash
# The web client's unit tests: the pure modules of web/public/assets, on Node's own
# test runner (no packages to install).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "web: node is missing: failing"; exit 1; }
echo "== web: unit tests of the client (node --test web/tests)"
node --test web/tests/
