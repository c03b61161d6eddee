#!/usr/bin/env bash
# Soak: minutes of mixed load (calls created and read, calls ringing invitees'
# sockets, sockets opened, held and closed) against one server, with its RSS,
# open files, threads and each load's p99 sampled every minute. Flat is the goal.
#   bench/soak.sh --minutes 30                   the release check (issue 13)
#   bench/soak.sh --minutes 5 --profile debug    a short run on a debug build
# Options: --backend sqlite|postgres, --rate N (createCall and getCallLogById
# requests per second each; calls per second ring at N/5; default 40).
# Writes bench/results/soak-<UTC time>.jsonl, one JSON line per minute.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=30; PROFILE=release; BACKEND=sqlite; RATE=40
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        --backend) BACKEND="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        *) echo "unknown option $1"; exit 2 ;;
    esac
done
TARGET="${CARGO_TARGET_DIR:-target}"
if [ "$PROFILE" = release ]; then
    cargo build --locked --release -p callhub-server -p callhub-bench
else
    cargo build --locked -p callhub-server -p callhub-bench
fi
BIN="$TARGET/$PROFILE"
PG="${CALLHUB_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
mkdir -p bench/results
OUT="bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ).jsonl"

WORK="$(mktemp -d)"; PG_DB=""; SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    [ -n "$PG_DB" ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
if [ "$BACKEND" = postgres ]; then
    PG_DB="callhub_soak_$$"
    psql "$PG/postgres" -qc "CREATE DATABASE $PG_DB"
    DB_URL="$PG/$PG_DB"
else
    DB_URL="sqlite://$WORK/callhub.db"
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
CALLHUB_LISTEN="127.0.0.1:$PORT" CALLHUB_DATABASE_URL="$DB_URL" CALLHUB_DATA_DIR="$WORK" CALLHUB_LOG=warn \
    CALLHUB_RING_TIMEOUT_SECS=20 "$BIN/callhub" serve 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "$URL/health" >/dev/null && break; sleep 0.1; done
"$BIN/callhub-bench" setup --database-url "$DB_URL" --data-dir "$WORK" --users 400 --tokens "$WORK/tokens" >/dev/null

sample() { # minute, then the files of that minute's loads
    local m="$1" rss fds threads
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
    fds=$(ls "/proc/$SERVER_PID/fd" | wc -l)
    threads=$(awk '/Threads/ {print $2}' "/proc/$SERVER_PID/status")
    python3 - "$m" "$rss" "$fds" "$threads" "$WORK/m$m" <<'PY' | tee -a "$OUT"
import json, sys, glob, os
minute, rss, fds, threads, prefix = sys.argv[1:]
row = {"minute": int(minute), "rss_kib": int(rss), "open_files": int(fds), "threads": int(threads)}
for name in ("create", "get", "ring", "sockets"):
    path = f"{prefix}.{name}"
    try:
        v = json.loads(open(path).read().strip().splitlines()[-1])
    except Exception as e:
        row[name] = f"no result: {e}"
        continue
    keep = {k: v[k] for k in ("achieved_per_sec", "p50_ms", "p99_ms", "errors", "dropped", "lost", "open", "failed") if k in v}
    row[name] = keep
print(json.dumps(row))
PY
}

L="--url $URL --tokens $WORK/tokens"
for m in $(seq 1 "$MINUTES"); do
    started=$(date +%s)
    "$BIN/callhub-bench" http $L --route create --rate "$RATE" --duration-secs 50 > "$WORK/m$m.create" 2>>"$WORK/load.log" &
    a=$!
    "$BIN/callhub-bench" http $L --route get --rate "$RATE" --duration-secs 50 > "$WORK/m$m.get" 2>>"$WORK/load.log" &
    b=$!
    "$BIN/callhub-bench" ring $L --rate $(( RATE / 5 > 0 ? RATE / 5 : 1 )) --invitees 20 --duration-secs 45 > "$WORK/m$m.ring" 2>>"$WORK/load.log" &
    c=$!
    # Sockets come and go: 300 open, held, closed, every minute.
    "$BIN/callhub-bench" sockets $L --count 300 --source-ips 127.0.0.2 --hold-secs 30 > "$WORK/m$m.sockets" 2>>"$WORK/load.log" &
    d=$!
    wait $a $b $c $d || true
    sample "$m"
    left=$(( 60 - ($(date +%s) - started) ))
    [ "$left" -gt 0 ] && sleep "$left"
done
if grep -q "internal error\|panicked" "$WORK/server.log"; then
    echo "the server logged errors:"; grep -m 20 "internal error\|panicked" "$WORK/server.log"; exit 1
fi
echo "soak results: $OUT"
