#!/usr/bin/env bash
# Two builds of callhub side by side in one run, interleaved (A B A B) so the
# machine's drift falls on both: createCall at saturation and its DB floor, on
# SQLite and PostgreSQL.
#   bench/compare.sh DIR_A DIR_B   (each holding callhub and callhub-bench)
set -euo pipefail
A="$1"; B="$2"; DUR=${BENCH_SECS:-8}; ROUNDS=${BENCH_ROUNDS:-2}
PG="${CALLHUB_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"

one() { # dir backend
    local dir="$1" backend="$2" work port url db pid
    work=$(mktemp -d); port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ "$backend" = postgres ]; then
        db="callhub_cmp_$$_$RANDOM"; psql "$PG/postgres" -qc "CREATE DATABASE $db"; url="$PG/$db"
    else url="sqlite://$work/callhub.db"; fi
    CALLHUB_LISTEN="127.0.0.1:$port" CALLHUB_DATABASE_URL="$url" CALLHUB_DATA_DIR="$work" CALLHUB_LOG=warn \
        CALLHUB_DB_MAX_CONNECTIONS=32 "$dir/callhub" serve 2>/dev/null & pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    "$dir/callhub-bench" setup --database-url "$url" --data-dir "$work" --users 400 --tokens "$work/tokens"
    local label="{\"build\":\"$dir\",\"backend\":\"$backend\"}"
    for line in "$("$dir/callhub-bench" floor --database-url "$url" --users 400 --concurrency 16 --duration-secs "$DUR")" \
                "$("$dir/callhub-bench" http --url "http://127.0.0.1:$port" --tokens "$work/tokens" --route create --concurrency 64 --duration-secs "$DUR")"; do
        python3 -c 'import json,sys; v=json.loads(sys.argv[2]); v.update(json.loads(sys.argv[1])); print(json.dumps(v))' "$label" "$line"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    [ "$backend" = postgres ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    rm -rf "$work"
}

for _ in $(seq 1 "$ROUNDS"); do
    for backend in sqlite postgres; do
        one "$A" "$backend"
        one "$B" "$backend"
    done
done
