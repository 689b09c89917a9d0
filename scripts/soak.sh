#!/usr/bin/env bash
# Soak run (not part of the default tests): many threads and thousands of loopback TCP
# connections churning through one completion port for a bounded time, every invariant
# checked (see socknotify/examples/soak.rs). Exit status 0 only if every check passed.
#
#   scripts/soak.sh [seconds] [extra soak arguments...]     (default: 180 s)
#   e.g. scripts/soak.sh 300 --workers 6 --clients 12 --per-client 300
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-180}
shift || true
cargo build --release -p socknotify --example soak
dir=${CARGO_TARGET_DIR:-target}
# A hard bound on top of the run's own deadline (drain and final checks take seconds).
timeout --signal=KILL $((secs + 120)) "$dir/release/examples/soak" --seconds "$secs" "$@"
