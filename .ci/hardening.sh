#!/usr/bin/env bash
# Issue 13's campaigns in CI: schemathesis against the served document (about 3
# minutes) and every cargo-fuzz target for 20 s. Either failing fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== schemathesis against /openapi.json (.ci/schemathesis.sh)"
bash .ci/schemathesis.sh
echo "== cargo-fuzz, 20 s per target (fuzz/run.sh)"
bash fuzz/run.sh 20
