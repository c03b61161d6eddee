#!/usr/bin/env bash
# Browser tests of the web client, 1:1 (MESH) and SFU media (e2e/), in Debian's Chromium,
# with coturn and the SMTP sink, inside a loopback-only network namespace.
# Installs what they need on a fresh Debian machine; fails loudly, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

echo "== e2e: Chromium, coturn, nftables (Debian), aiosmtpd (PyPI)"
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v turnserver >/dev/null || need+=(coturn)
command -v nft >/dev/null || need+=(nftables)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${need[@]}"
fi
python3 -c 'import aiosmtpd' 2>/dev/null \
    || python3 -m pip install --quiet aiosmtpd || python3 -m pip install --quiet --break-system-packages aiosmtpd
for tool in chromium turnserver nft unshare node npm; do
    command -v "$tool" >/dev/null || { echo "e2e: $tool is missing: failing"; exit 1; }
done

echo "== e2e: npm ci (Playwright and axe-core from e2e/package-lock.json; no browser download)"
(cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)

echo "== e2e: the server binary"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/callhub/target}"
cargo build --locked -p callhub-server --bin callhub
export CALLHUB_BIN="$CARGO_TARGET_DIR/debug/callhub"

echo "== e2e: the browser suite, in a network namespace with only loopback"
bash e2e/run.sh
echo "== e2e: done in $(($(date +%s) - started)) s"
