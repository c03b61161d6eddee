#!/usr/bin/env bash
# Runs the README's curl walk-through ("A first call, with curl") as written, in a
# fresh folder against a fresh server, so the README stays true. Its shell blocks
# run in this shell under `set -euo pipefail`; `cargo run --release [-p callhub-cli] --`
# is the debug binary CI has built, and localhost:8080 a free port.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
cargo build --locked -q -p callhub-server -p callhub-cli
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

# The blocks of the section, in order.
WALK=$(awk '/^## A first call, with curl/{on=1; next} on && /^## /{exit}
            on && /^```sh$/{block=1; next} on && /^```$/{block=0; next} block' README.md)
[ -n "$WALK" ] || { echo "readme.sh: no walk-through found in README.md"; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WALK=${WALK//localhost:8080/127.0.0.1:$PORT}
WALK=${WALK//127.0.0.1:8080/127.0.0.1:$PORT}

WORK=$(mktemp -d)
cd "$WORK"
CALLHUB_LISTEN=127.0.0.1:$PORT "$BIN/callhub" serve 2>server.log &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "127.0.0.1:$PORT/health" >/dev/null || { cat server.log; echo "readme.sh: the server did not start"; exit 1; }

cargo() { # only the forms the README uses
    case "$*" in
        "run --release -- "*) shift 3; "$BIN/callhub" "$@" ;;
        "run --release -p callhub-cli -- "*) shift 5; "$BIN/callhub-cli" "$@" ;;
        *) echo "readme.sh: the README runs 'cargo $*', which this script does not know" >&2; return 1 ;;
    esac
}

echo "== README walk-through, against 127.0.0.1:$PORT"
eval "$WALK" | tee walk.out
# What the README says the log reads.
jq -se '.[-1] | map(.type) == ["Created", "Join", "Join"] and .[-1].user == "tester"' walk.out >/dev/null \
    || { echo "readme.sh: the call's log is not Created, Join, Join (of tester)"; exit 1; }
echo "== README walk-through: ok"
