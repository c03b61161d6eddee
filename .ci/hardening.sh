#!/usr/bin/env bash
# Issue 13's campaign in CI: schemathesis against the served document (about 3
# minutes); it failing fails CI. The cargo-fuzz targets are not run here: their
# first build (the server crate with sanitizer coverage) took 33 minutes on this
# 2-core machine, which a cold CI run cannot afford; `fuzz/run.sh 20` runs them
# (bench/README.md, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== schemathesis against /openapi.json (.ci/schemathesis.sh)"
bash .ci/schemathesis.sh
