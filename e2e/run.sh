#!/usr/bin/env bash
# Runs a command (default: the Playwright suite) inside a network namespace of
# its own whose only interface is loopback, so every packet of the browsers,
# the server, coturn and the SMTP sink stays on this machine (MEDIA.md).
# A PID namespace too, so nothing it started outlives it. Needs root. Arguments go to `playwright test`, e.g. -g relay;
# E2E_CMD replaces the command (e.g. E2E_CMD="node bench/answer-to-frame.mjs").
set -euo pipefail
cd "$(dirname "$0")"
cmd="${E2E_CMD:-npx --no-install playwright test}"
exec unshare --net --pid --fork --mount-proc --kill-child bash -c 'ip link set lo up && exec '"$cmd"' "$@"' e2e "$@"
