#!/usr/bin/env bash
# The SFU benchmark (issue 18): N str0m participants sending a VP8 clip, everyone
# receiving everyone, through callhub's SFU and through Janus VideoRoom, A B A B
# for each N in one session, release builds. Root: it runs in a network namespace
# of its own with a veth pair (libnice in Janus gathers nothing on lo); both
# servers serve UDP on 10.99.0.1, the participants bind 10.99.0.2.
#   bench/sfu.sh                       N = 4 8 16 32, 10 s each
#   SFU_NS="4 8" SFU_SECS=5 SFU_ROUNDS=2 bench/sfu.sh
#   SFU_BENCH_ARGS="--muted 12" bench/sfu.sh   generator flags (here: 12 muted microphones)
#   CALLHUB_SFU_AUDIBLE=0 bench/sfu.sh   callhub forwards every microphone, not its four
#       loudest: the same streams as Janus
#   SFU_BIN=/tmp/bin-a bench/sfu.sh   binaries from that directory (callhub, callhub-bench), no build
#   SFU_SERVERS=callhub SFU_PERF=/tmp/sfuperf bench/sfu.sh   callhub only, with a
#       `perf record -g` of the server per run (<dir>/callhub-<N>-<round>.data)
# Writes bench/results/<UTC time>-sfu.jsonl and prints the table (bench/report.py).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
NS_LIST="${SFU_NS:-4 8 16 32}"; SECS="${SFU_SECS:-10}"; ROUNDS="${SFU_ROUNDS:-1}"
SERVERS="${SFU_SERVERS:-callhub janus}"; PERF_DIR="${SFU_PERF:-}"

if [ -z "${SFU_INSIDE:-}" ]; then
    command -v janus >/dev/null || { echo "janus is missing: apt-get install -y janus"; exit 1; }
    [ -n "${SFU_BIN:-}" ] || nice cargo build --locked --release -p callhub-server -p callhub-bench
    mkdir -p bench/results
    OUT="${SFU_OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)-sfu.jsonl}"
    SFU_INSIDE=1 SFU_OUT="$OUT" exec unshare -n "$0" "$@"
fi

OUT="$SFU_OUT"; BIN="${SFU_BIN:-$TARGET/release}"; BENCH="$BIN/callhub-bench"
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.99.0.1/24 dev v0; ip addr add 10.99.0.2/24 dev v1
ip link set v0 up; ip link set v1 up
# libnice binds its sockets to v0, so Janus's datagrams to 10.99.0.2 leave by v0 and
# arrive on v1 from an address of this host: without accept_local the kernel drops
# them (and the ARP for them), and ICE fails with Janus's send queue stuck.
sysctl -qw net.ipv4.conf.all.accept_local=1 net.ipv4.conf.v0.accept_local=1 net.ipv4.conf.v1.accept_local=1

WORK="$(mktemp -d)"; CALLHUB_PID=""; JANUS_PID=""
cleanup() {
    [ -n "$CALLHUB_PID" ] && kill "$CALLHUB_PID" 2>/dev/null && wait "$CALLHUB_PID" 2>/dev/null || true
    [ -n "$JANUS_PID" ] && kill "$JANUS_PID" 2>/dev/null && wait "$JANUS_PID" 2>/dev/null || true
    # The servers' logs beside the figures, for a run that went wrong (not committed).
    cp "$WORK/janus.log" "${OUT%.jsonl}.janus.log" 2>/dev/null || true
    cp "$WORK/callhub.log" "${OUT%.jsonl}.callhub.log" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

record() { python3 -c 'import json,sys; v=json.loads(sys.argv[2]); v.update(json.loads(sys.argv[1])); print(json.dumps(v))' "$1" "$2" | tee -a "$OUT"; }

# Each run gets fresh servers, so memory per participant is theirs alone.
# callhub: SQLite, its SFU on the veth address, /metrics' SFU counters every 0.5 s.
URL="http://127.0.0.1:18080"
start_callhub() {
    rm -rf "$WORK/db"; mkdir -p "$WORK/db"
    CALLHUB_LISTEN=127.0.0.1:18080 CALLHUB_DATABASE_URL="sqlite://$WORK/db/callhub.db" CALLHUB_DATA_DIR="$WORK/db" \
        CALLHUB_LOG="${SFU_LOG:-warn}" CALLHUB_SFU_UDP=10.99.0.1:0 CALLHUB_GAUGE_REFRESH_MILLIS=500 \
        "$BIN/callhub" serve 2>>"$WORK/callhub.log" &
    CALLHUB_PID=$!
    for _ in $(seq 1 100); do curl -sf "$URL/health" >/dev/null && break; sleep 0.1; done
    "$BENCH" setup --database-url "sqlite://$WORK/db/callhub.db" --data-dir "$WORK/db" --users "$1" --tokens "$WORK/tokens"
}
start_janus() {
    janus -F "$PWD/bench/janus" -L "$WORK/janus.log" >/dev/null 2>&1 &
    JANUS_PID=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8088/janus/info >/dev/null && break; sleep 0.1; done
    curl -sf http://127.0.0.1:8088/janus/info >/dev/null || { echo "janus did not start"; cat "$WORK/janus.log"; exit 1; }
}
stop() { # pid variable name
    local pid="${!1}"
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    printf -v "$1" ''
}

for round in $(seq 1 "$ROUNDS"); do
    for n in $NS_LIST; do
        L="{\"round\":$round}"
        ARGS=(--participants "$n" --seconds "$SECS" --local-ip 10.99.0.2 --clip bench/media/clip.ivf)
        # shellcheck disable=SC2206 # extra generator flags, e.g. SFU_BENCH_ARGS="--muted 28"
        ARGS+=(${SFU_BENCH_ARGS:-})
        if [[ " $SERVERS " == *" callhub "* ]]; then
            start_callhub "$n"
            PERF_PID=""
            if [ -n "$PERF_DIR" ]; then
                mkdir -p "$PERF_DIR"
                perf record -q ${SFU_PERF_ARGS:--g} -p "$CALLHUB_PID" -o "$PERF_DIR/callhub-$n-$round.data" 2>/dev/null &
                PERF_PID=$!
            fi
            record "$L" "$("$BENCH" sfu --url "$URL" --tokens "$WORK/tokens" --server-pid "$CALLHUB_PID" "${ARGS[@]}")"
            if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
            stop CALLHUB_PID
        fi
        if [[ " $SERVERS " == *" janus "* ]]; then
            start_janus
            record "$L" "$("$BENCH" janus --server-pid "$JANUS_PID" "${ARGS[@]}")"
            stop JANUS_PID
        fi
    done
done
echo "callhub log:"; grep -ciE "error|panic" "$WORK/callhub.log" || true
python3 bench/report.py "$OUT"
