#!/usr/bin/env bash
# Several nodes on one PostgreSQL database and the local NATS (issue 19), release
# build: the cross-node pop-up against the same-node one at a rate, interleaved,
# and fan-out (messages delivered per server CPU-second, all nodes' CPU summed)
# with 1, 2 and 3 nodes. Writes bench/results/<ts>-nodes.jsonl.
#
#   bench/nodes.sh [--rate 500] [--invitees 200] [--secs 10] [--rounds 2]
#                  [--fanout-users 3000] [--fanout-rate 100]
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=500 INVITEES=200 SECS=10 ROUNDS=2 FUSERS=3000 FRATE=100
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=$2; shift 2 ;;
        --invitees) INVITEES=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --fanout-users) FUSERS=$2; shift 2 ;;
        --fanout-rate) FRATE=$2; shift 2 ;;
        *) echo "unknown argument $1"; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/callhub/target}"
cargo build --release --locked -p callhub-server -p callhub-bench
BIN="$CARGO_TARGET_DIR/release"
PG="${CALLHUB_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
NATS="${CALLHUB_BENCH_NATS:-nats://127.0.0.1:4222}"
OUT="bench/results/$(date -u +%Y%m%dT%H%M%SZ)-nodes.jsonl"
WORK=$(mktemp -d)
DB="callhub_bench_nodes_$$"
PIDS=()

stop_nodes() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_nodes
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_nodes K: K nodes on ports 18081…, one database, one data dir (one JWT secret).
start_nodes() {
    local prefix="bench$RANDOM$$"
    for n in $(seq 1 "$1"); do
        CALLHUB_LISTEN="127.0.0.1:1808$n" CALLHUB_DATABASE_URL="$PG/$DB" CALLHUB_DATA_DIR="$WORK" \
            CALLHUB_NATS_URL="$NATS" CALLHUB_NATS_PREFIX="$prefix" CALLHUB_SFU_UDP=127.0.0.1:0 \
            CALLHUB_LOG=warn CALLHUB_DB_MAX_CONNECTIONS=32 CALLHUB_CONNECTIONS_PER_IP=100000 \
            "$BIN/callhub" serve 2>>"$WORK/node$n.log" &
        PIDS+=($!)
    done
    for n in $(seq 1 "$1"); do
        for _ in $(seq 1 100); do
            curl -sf "127.0.0.1:1808$n/health" | grep -q '"connected"' && break
            sleep 0.1
        done
    done
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }
note() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(json.loads(sys.argv[2])); print(json.dumps(d))' "$1" "$2"; }

psql "$PG/postgres" -qc "CREATE DATABASE $DB"
"$BIN/callhub-bench" setup --database-url "$PG/$DB" --data-dir "$WORK" --users $((FUSERS > 2 * INVITEES ? FUSERS : 2 * INVITEES)) --tokens "$WORK/tokens" >/dev/null

echo "== the pop-up: same node against another node, $ROUNDS rounds at $RATE calls/s"
start_nodes 2
for round in $(seq 1 "$ROUNDS"); do
    for sockets in 18081 18082; do
        line=$("$BIN/callhub-bench" ring --url http://127.0.0.1:18081 --socket-url "http://127.0.0.1:$sockets" \
            --tokens "$WORK/tokens" --rate "$RATE" --invitees "$INVITEES" --duration-secs "$SECS")
        note "$line" "{\"round\": $round, \"load_average\": $(loadavg)}" | tee -a "$OUT"
    done
done
stop_nodes

echo "== fan-out with 1, 2 and 3 nodes: $FUSERS sockets, $FRATE calls/s of 10 invitees"
for round in $(seq 1 "$ROUNDS"); do
    for k in 1 2 3; do
        start_nodes "$k"
        urls=$(seq -s, 1 "$k" | sed 's/\([0-9]\)/http:\/\/127.0.0.1:1808\1/g')
        pids=$(IFS=,; echo "${PIDS[*]}")
        line=$("$BIN/callhub-bench" fanout --url http://127.0.0.1:18081 --tokens "$WORK/tokens" \
            --node-urls "$urls" --node-pids "$pids" --users "$FUSERS" --rate "$FRATE" --duration-secs "$SECS")
        note "$line" "{\"round\": $round, \"load_average\": $(loadavg)}" | tee -a "$OUT"
        stop_nodes
    done
done
echo "wrote $OUT"
