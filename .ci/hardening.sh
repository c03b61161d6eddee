#!/usr/bin/env bash
# Issue 13's campaigns in CI: schemathesis against the served document (about 3
# minutes), then every cargo-fuzz target for 20 s. Either failing fails CI.
# The fuzz targets depend on callhub-core and callhub-tokens only (no server, no
# database driver), so their sanitizer build fits a cold run.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== schemathesis against /openapi.json (.ci/schemathesis.sh)"
bash .ci/schemathesis.sh
echo "== cargo-fuzz: every target for 20 s (fuzz/run.sh)"
bash fuzz/run.sh 20
