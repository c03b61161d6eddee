#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while (default 20 s each: CI).
#   fuzz/run.sh            every target, 20 s each
#   fuzz/run.sh 3600       every target, an hour each (the release run)
# cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain take them. A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-20}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/callhub/target}-fuzz"
cargo fuzz build -O
for target in $(cargo fuzz list); do
    echo "== $target for ${SECS} s"
    mkdir -p "corpus/$target"
    cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 2>&1 |
        grep -E "^(Done|INFO: seed|==|SUMMARY|#[0-9]+ +DONE)|panicked|crash-" || true
    # cargo fuzz run exits non-zero on a crash; pipefail would hide it behind grep.
    if ls "artifacts/$target"/crash-* "artifacts/$target"/oom-* "artifacts/$target"/leak-* >/dev/null 2>&1; then
        echo "$target found a failing input:"; ls "artifacts/$target"; exit 1
    fi
done
