#!/usr/bin/env bash
# Notification fan-out of two builds side by side, interleaved (A B A B): USERS
# connected sockets on one SQLite node, calls inviting 10 of them each, messages
# delivered per server CPU-second; each line carries the load average.
#   bench/fanout.sh DIR_A DIR_B   (each holding callhub and callhub-bench)
#   PERF=DIR: also `perf record -g` each build's server in its first round, to DIR
#   BENCH_FANOUT_ARGS="--no-presence": more arguments for `callhub-bench fanout`
#   BENCH_SETUP_ARGS="--no-mail": accounts without addresses (no invitation mails)
set -euo pipefail
A="$1"; B="$2"; DUR=${BENCH_SECS:-10}; ROUNDS=${BENCH_ROUNDS:-2}
USERS=${BENCH_USERS:-10000}; RATE=${BENCH_RATE:-300}

# The accounts are made once and copied for every server (10,000 take a while).
SEED=$(mktemp -d)
"$A/callhub-bench" setup --database-url "sqlite://$SEED/callhub.db" --data-dir "$SEED" --users "$USERS" --tokens "$SEED/tokens" ${BENCH_SETUP_ARGS:-} >/dev/null

one() { # dir round
    local dir="$1" round="$2" work port pid perf_pid=""
    work=$(mktemp -d); cp -a "$SEED/." "$work/"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    CALLHUB_LISTEN="127.0.0.1:$port" CALLHUB_DATABASE_URL="sqlite://$work/callhub.db" CALLHUB_DATA_DIR="$work" CALLHUB_LOG=warn \
        CALLHUB_DB_MAX_CONNECTIONS=32 CALLHUB_CONNECTIONS_PER_IP=30000 CALLHUB_SFU_UDP=127.0.0.1:0 "$dir/callhub" serve 2>"$work/server.log" & pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    if [ -n "${PERF:-}" ] && [ "$round" = 1 ]; then
        # From when the sockets are open (the generator opens them before the calls).
        ( while [ -d "/proc/$pid" ] && [ "$(ls "/proc/$pid/fd" | wc -l)" -lt "$USERS" ]; do sleep 0.2; done
          exec perf record -g -o "$PERF/$(basename "$dir").data" -p "$pid" -- sleep "$DUR" ) 2>/dev/null & perf_pid=$!
    fi
    local line
    line=$("$dir/callhub-bench" fanout --url "http://127.0.0.1:$port" --tokens "$work/tokens" --users "$USERS" \
        --invitees-per-call 10 --rate "$RATE" --duration-secs "$DUR" --source-ips 127.0.0.2,127.0.0.3 --server-pid "$pid" ${BENCH_FANOUT_ARGS:-})
    local label="{\"build\":\"$dir\",\"round\":$round,\"backend\":\"sqlite\",\"load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
    python3 -c 'import json,sys; v=json.loads(sys.argv[2]); v.update(json.loads(sys.argv[1])); print(json.dumps(v))' "$label" "$line"
    [ -n "$perf_pid" ] && wait "$perf_pid" || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}

for round in $(seq 1 "$ROUNDS"); do
    one "$A" "$round"
    one "$B" "$round"
done
rm -rf "$SEED"
