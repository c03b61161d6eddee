#!/usr/bin/env bash
# Memory per idle authenticated socket on a fresh server of the build in DIR:
#   bench/sockmem.sh DIR COUNT   (DIR holds callhub and callhub-bench)
set -euo pipefail
DIR=$1; N=$2; W=$(mktemp -d); PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CALLHUB_LISTEN=127.0.0.1:$PORT CALLHUB_DATABASE_URL=sqlite://$W/db CALLHUB_DATA_DIR=$W CALLHUB_LOG=warn $DIR/callhub serve 2>/dev/null & SP=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
$DIR/callhub-bench setup --database-url sqlite://$W/db --data-dir $W --users 100 --tokens $W/tokens
B=$(awk '/VmRSS/{print $2}' /proc/$SP/status)
$DIR/callhub-bench sockets --url http://127.0.0.1:$PORT --tokens $W/tokens --count $N --source-ips 127.0.0.5 --hold-secs 5 > $W/out &
C=$!
while [ ! -s $W/out ]; do sleep 0.2; done; sleep 1
L=$(awk '/VmRSS/{print $2}' /proc/$SP/status)
echo "$DIR: $(cat $W/out) base=$B loaded=$L per_socket_kib=$(python3 -c "print(round(($L-$B)/$N,2))")"
wait $C; kill $SP; wait $SP 2>/dev/null || true; rm -rf $W
