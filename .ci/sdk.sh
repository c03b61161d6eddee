#!/usr/bin/env bash
# The TypeScript SDK (sdk/typescript): install, build, fail when its generated
# types differ from the server's OpenAPI document, and run its tests against a
# real server binary.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/callhub/target}"

node_major() { node -e 'console.log(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ] || ! command -v npm >/dev/null; then
    echo "Node.js 20 or later is needed; trying apt-get"
    if command -v apt-get >/dev/null; then
        sudo_cmd=""
        [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq nodejs npm || true
    fi
    [ "$(node_major)" -ge 20 ] || { echo "Node.js 20 or later is not installed: failing"; exit 1; }
fi
echo "node $(node --version), npm $(npm --version)"

cargo build --locked -p callhub-server --bin callhub
export CALLHUB_BIN="$CARGO_TARGET_DIR/debug/callhub"

cd sdk/typescript
npm ci --no-audit --no-fund
npm run check-generated
npm test
