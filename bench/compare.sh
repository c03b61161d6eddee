#!/usr/bin/env bash
# Two builds of callhub side by side in one run, interleaved (A B A B) so the
# machine's drift falls on both, on SQLite and PostgreSQL: createCall's DB floor;
# /health, createCall, getCallLogById and joinCall/leaveCall at saturation;
# /health and createCall at BENCH_RATE/s offered (2,000). Each line is labelled with its build, round and
# the load average when it ended; `python3 bench/report.py FILE` renders them.
#   bench/compare.sh DIR_A DIR_B   (each holding callhub and callhub-bench)
#   BENCH_BACKENDS="sqlite": one backend only (default both)
set -euo pipefail
A="$1"; B="$2"; DUR=${BENCH_SECS:-8}; ROUNDS=${BENCH_ROUNDS:-2}; RATE=${BENCH_RATE:-2000}
PG="${CALLHUB_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"

# Runs a generator and prints its line with the label and the load average after it.
rec() { # label command...
    local label="$1"; shift
    python3 -c 'import json,sys; v=json.loads(sys.argv[2]); v.update(json.loads(sys.argv[1])); v["loadavg"]=open("/proc/loadavg").read().split()[0]; print(json.dumps(v))' "$label" "$("$@")"
}

one() { # dir backend round
    local dir="$1" backend="$2" round="$3" work port url db pid
    work=$(mktemp -d); port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ "$backend" = postgres ]; then
        db="callhub_cmp_$$_$RANDOM"; psql "$PG/postgres" -qc "CREATE DATABASE $db"; url="$PG/$db"
    else url="sqlite://$work/callhub.db"; fi
    CALLHUB_LISTEN="127.0.0.1:$port" CALLHUB_DATABASE_URL="$url" CALLHUB_DATA_DIR="$work" CALLHUB_LOG=warn \
        CALLHUB_DB_MAX_CONNECTIONS=32 CALLHUB_SFU_UDP=127.0.0.1:0 "$dir/callhub" serve 2>/dev/null & pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "$dir/callhub did not start (a port taken?)" >&2; exit 1; }
    "$dir/callhub-bench" setup --database-url "$url" --data-dir "$work" --users 400 --tokens "$work/tokens"
    local label="{\"build\":\"$dir\",\"backend\":\"$backend\",\"round\":$round}"
    local http=("$dir/callhub-bench" http --url "http://127.0.0.1:$port" --tokens "$work/tokens" --duration-secs "$DUR")
    rec "$label" "$dir/callhub-bench" floor --database-url "$url" --users 400 --concurrency 16 --duration-secs "$DUR"
    rec "$label" "${http[@]}" --route health --concurrency 64
    rec "$label" "${http[@]}" --route create --concurrency 64
    rec "$label" "${http[@]}" --route health --rate "$RATE"
    rec "$label" "${http[@]}" --route create --rate "$RATE"
    rec "$label" "${http[@]}" --route get --concurrency 64
    rec "$label" "${http[@]}" --route join-leave --concurrency 64
    kill "$pid"; wait "$pid" 2>/dev/null || true
    [ "$backend" = postgres ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    rm -rf "$work"
}

for round in $(seq 1 "$ROUNDS"); do
    for backend in ${BENCH_BACKENDS:-sqlite postgres}; do
        one "$A" "$backend" "$round"
        one "$B" "$backend" "$round"
    done
done
