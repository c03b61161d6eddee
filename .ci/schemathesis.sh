#!/usr/bin/env bash
# Schemathesis against the served OpenAPI document (issue 13): every check, with a
# valid token, on a fresh server; fails on any 5xx or conformance failure.
#   .ci/schemathesis.sh                 CI: bounded to about 3 minutes
#   .ci/schemathesis.sh --release       a release run: 20 minutes, more examples
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_TIME="${SCHEMATHESIS_MAX_TIME:-150}"
EXAMPLES=40
if [[ "${1:-}" == "--release" ]]; then
    MAX_TIME=1200
    EXAMPLES=500
fi

python3 -m pip install --quiet schemathesis 2>/dev/null || python3 -m pip install --quiet --break-system-packages schemathesis
command -v schemathesis >/dev/null || { echo "schemathesis is not on PATH: failing"; exit 1; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/callhub/target}"
cargo build --locked -p callhub-server --bin callhub
BIN="$CARGO_TARGET_DIR/debug/callhub"

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CALLHUB_DATA_DIR="$WORK" CALLHUB_LISTEN="127.0.0.1:$PORT" CALLHUB_LOG=warn
# Generated requests come fast from one address: the per-address limits would
# answer 429 to most of them and hide the routes behind.
export CALLHUB_LOGIN_RATE_PER_IP=1000000 CALLHUB_LOGIN_FAILURES_PER_ACCOUNT=1000000 \
    CALLHUB_GUEST_FAILURES_PER_IP=1000000 CALLHUB_INVITES_PER_HOUR=100000000

"$BIN" migrate 2>/dev/null # `user add` refuses a database that does not exist yet
for who in tester:user colleague:user root:admin; do
    echo "schemathesis-password" | "$BIN" user add --domain ubimax --user-id "${who%%:*}" \
        --email "${who%%:*}@example.org" --role "${who##*:}" --password-stdin >/dev/null
done

"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.2
done

login() { # user id -> access token
    curl -fsS "http://127.0.0.1:$PORT/login" -H 'content-type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"schemathesis-password\",\"domain\":\"ubimax\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])'
}
# .ci/schemathesis.toml reads these: the user's token for every route, the
# admin's for /admin/*, and a call that takes guests with its link's token for
# the guest page and joinAnonymous (no schema names a call that exists).
export CALLHUB_ST_TOKEN CALLHUB_ST_ADMIN_TOKEN CALLHUB_ST_CALL CALLHUB_ST_GUEST_TOKEN
CALLHUB_ST_TOKEN=$(login tester)
CALLHUB_ST_ADMIN_TOKEN=$(login root)
read -r CALLHUB_ST_CALL CALLHUB_ST_GUEST_TOKEN < <(curl -fsS "http://127.0.0.1:$PORT/rtc/createCall" \
    -H "Authorization: Bearer $CALLHUB_ST_TOKEN" -H 'content-type: application/json' \
    -d '{"callTitle":"guests welcome","callType":"SFU","joinAnonymousAllowed":true,"invitedContacts":[{"userId":"colleague"}]}' |
    python3 -c 'import json,sys,urllib.parse as u; c=json.load(sys.stdin); print(c["callId"], u.parse_qs(u.urlparse(c["joinUrl"]).query)["t"][0])')

status=0
# /ws is left out: schemathesis sends plain GETs, which are no WebSocket upgrade
# (400 by design), and cannot speak the protocol; tests/api/sockets.rs covers it.
schemathesis --config-file .ci/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
    --checks all \
    --exclude-path /ws \
    --max-examples "$EXAMPLES" \
    --max-time "$MAX_TIME" \
    --workers 1 \
    --seed 13 \
    --suppress-health-check all \
    --request-timeout 20 || status=$?

if grep -q "internal error" "$WORK/server.log"; then
    echo "the server logged internal errors:"
    grep -B2 -A10 "internal error" "$WORK/server.log" | head -80
    status=1
fi
exit $status
