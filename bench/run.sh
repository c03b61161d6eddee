#!/usr/bin/env bash
# callhub's benchmarks, side by side in one run: each figure beside its floor.
#   bench/run.sh            full run on a release build (about 10 minutes)
#   bench/run.sh --smoke    every load generator for a second, debug build (CI)
# Figures go to bench/results/<time>.jsonl (one JSON line each) and a table is
# printed by bench/report.py.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
TARGET="${CARGO_TARGET_DIR:-target}"
if [ "$SMOKE" = 1 ]; then
    cargo build --locked -p callhub-server -p callhub-bench
    BIN="$TARGET/debug"; DUR=1; USERS=60; INVITEES=20; RATES="50"; RING_RATES="20"; SOCKETS=300; FAN_USERS=200; DIR_USERS=200; DIR_RATE=50; OUT="$(mktemp -d)/smoke.jsonl"
else
    cargo build --locked --release -p callhub-server -p callhub-bench
    BIN="$TARGET/release"; DUR=${BENCH_SECS:-10}; USERS=400; INVITEES=100; RATES="500 2000"; RING_RATES="100 500 2000"; SOCKETS=${BENCH_SOCKETS:-19000}; FAN_USERS=10000; DIR_USERS=10000; DIR_RATE=500
    mkdir -p bench/results; OUT="bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
fi
PG="${CALLHUB_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
BENCH="$BIN/callhub-bench"
SERVER_PID=""; WORK=""; PG_DB=""

# Appends a labelled figure to the results.
record() { python3 -c 'import json,sys; v=json.loads(sys.argv[2]); v.update(json.loads(sys.argv[1])); print(json.dumps(v))' "$1" "$2" | tee -a "$OUT"; }

start_server() { # backend
    WORK="$(mktemp -d)"
    local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ "$1" = postgres ]; then
        PG_DB="callhub_bench_$$_$RANDOM"
        psql "$PG/postgres" -qc "CREATE DATABASE $PG_DB"
        DB_URL="$PG/$PG_DB"
    else
        DB_URL="sqlite://$WORK/callhub.db"
    fi
    URL="http://127.0.0.1:$port"
    CALLHUB_LISTEN="127.0.0.1:$port" CALLHUB_DATABASE_URL="$DB_URL" CALLHUB_DATA_DIR="$WORK" CALLHUB_LOG=warn \
        CALLHUB_DB_MAX_CONNECTIONS=32 CALLHUB_CONNECTIONS_PER_IP=30000 CALLHUB_SFU_UDP=127.0.0.1:0 "$BIN/callhub" serve 2>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do curl -sf "$URL/health" >/dev/null && return 0; sleep 0.1; done
    echo "server did not start"; cat "$WORK/server.log"; exit 1
}

stop_server() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    [ -n "$PG_DB" ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" || true
    PG_DB=""
    [ -n "$WORK" ] && rm -rf "$WORK"
    WORK=""
}
trap stop_server EXIT

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

for backend in sqlite postgres; do
    start_server "$backend"
    "$BENCH" setup --database-url "$DB_URL" --data-dir "$WORK" --users "$USERS" --tokens "$WORK/tokens"
    L="{\"backend\":\"$backend\"}"
    record "$L" "$("$BENCH" floor --database-url "$DB_URL" --users "$USERS" --concurrency 16 --duration-secs "$DUR")"
    record "$L" "$("$BENCH" http --url "$URL" --tokens "$WORK/tokens" --route health --concurrency 64 --duration-secs "$DUR")"
    record "$L" "$("$BENCH" http --url "$URL" --tokens "$WORK/tokens" --route create --concurrency 64 --duration-secs "$DUR")"
    for rate in $RATES; do
        record "$L" "$("$BENCH" http --url "$URL" --tokens "$WORK/tokens" --route health --rate "$rate" --duration-secs "$DUR")"
        record "$L" "$("$BENCH" http --url "$URL" --tokens "$WORK/tokens" --route create --rate "$rate" --duration-secs "$DUR")"
    done
    record "$L" "$("$BENCH" http --url "$URL" --tokens "$WORK/tokens" --route get --concurrency 64 --duration-secs "$DUR")"
    for rate in $RING_RATES; do
        record "$L" "$("$BENCH" ring --url "$URL" --tokens "$WORK/tokens" --rate "$rate" --invitees "$INVITEES" --duration-secs "$DUR")"
    done
    stop_server
done

# The directory with DIR_USERS accounts in one domain, beside /health, at saturation
# and at a fixed rate (its p99 is the directory's own latency, not queueing).
for backend in sqlite postgres; do
    start_server "$backend"
    "$BENCH" setup --database-url "$DB_URL" --data-dir "$WORK" --users "$DIR_USERS" --tokens "$WORK/tokens"
    L="{\"backend\":\"$backend\",\"accounts\":$DIR_USERS}"
    for route in health contacts; do
        record "$L" "$("$BENCH" http --url "$URL" --tokens "$WORK/tokens" --route "$route" --concurrency 16 --duration-secs "$DUR")"
        record "$L" "$("$BENCH" http --url "$URL" --tokens "$WORK/tokens" --route "$route" --rate "$DIR_RATE" --duration-secs "$DUR")"
    done
    stop_server
done

# Idle sockets: several client processes from several source addresses, each
# under the 20,000 open files a process may hold; the server's own bound is that
# limit too. Memory per connection = RSS delta / sockets.
start_server sqlite
"$BENCH" setup --database-url "$DB_URL" --data-dir "$WORK" --users "$USERS" --tokens "$WORK/tokens"
base=$(rss_kib "$SERVER_PID")
per=$(( (SOCKETS + 2) / 3 ))
hold=$(( SMOKE == 1 ? 5 : 40 ))
clients=()
for i in 2 3 4; do
    "$BENCH" sockets --url "$URL" --tokens "$WORK/tokens" --count "$per" --source-ips "127.0.0.$i" --hold-secs "$hold" > "$WORK/sockets.$i" &
    clients+=($!)
done
for _ in $(seq 1 $(( hold * 10 ))); do
    [ "$(cat "$WORK"/sockets.* 2>/dev/null | wc -l)" = 3 ] && break
    sleep 0.1
done
sleep 1
loaded=$(rss_kib "$SERVER_PID")
opened=$(cat "$WORK"/sockets.* | python3 -c 'import json,sys; print(sum(json.loads(l)["open"] for l in sys.stdin))')
fds=$(ls "/proc/$SERVER_PID/fd" | wc -l)
record '{"backend":"sqlite"}' "$(python3 -c "import json; o=$opened; d=$loaded-$base; print(json.dumps({'bench':'idle sockets','open':o,'server_fds':$fds,'rss_base_kib':$base,'rss_loaded_kib':$loaded,'kib_per_socket':round(d/max(o,1),2),'projected_100k_mib':round(d/max(o,1)*100000/1024)}))")"
wait "${clients[@]}"
stop_server

# Fan-out: many connected users, calls inviting ten of them each.
start_server sqlite
"$BENCH" setup --database-url "$DB_URL" --data-dir "$WORK" --users "$FAN_USERS" --tokens "$WORK/tokens"
record '{"backend":"sqlite"}' "$("$BENCH" fanout --url "$URL" --tokens "$WORK/tokens" --users "$FAN_USERS" --invitees-per-call 10 --rate $(( SMOKE == 1 ? 20 : 300 )) --duration-secs "$DUR" --source-ips 127.0.0.2,127.0.0.3 --server-pid "$SERVER_PID")"
stop_server

# The SFU: here only a smoke of the generator (3 participants on loopback, str0m to
# str0m); its figures against Janus come from bench/sfu.sh (root, a namespace).
if [ "$SMOKE" = 1 ]; then
    start_server sqlite
    "$BENCH" setup --database-url "$DB_URL" --data-dir "$WORK" --users 3 --tokens "$WORK/tokens"
    line="$("$BENCH" sfu --url "$URL" --tokens "$WORK/tokens" --participants 3 --seconds 2 --server-pid "$SERVER_PID" --connect-secs 20)"
    record '{"backend":"sqlite"}' "$line"
    echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if r["connected"] and r["video_frames_received"] > 0 else "sfu: not everyone saw everyone")'
    stop_server
else
    echo "SFU figures: bench/sfu.sh (callhub against Janus, in a network namespace)"
fi

python3 bench/report.py "$OUT"
