#!/usr/bin/env bash
# The Rust tests that exercise threads, sockets and fault paths, under checkers:
#   asan  AddressSanitizer (+LeakSanitizer): stress, model, faults, scale, conformance_port
#   tsan  ThreadSanitizer (needs the nightly rust-src component: -Zbuild-std)
#   miri  the fuzz `machine` harness (pure state machine, fake kernel) on its seed corpus
#
#   scripts/rust-sanitizers.sh [asan|tsan|miri|all]      (default: asan)
# Build directories: ${SANITIZER_TARGET_DIR:-target}/{asan,tsan,miri}.
# A checker whose toolchain part is missing is skipped with a message (exit 0), unless
# SANITIZERS_REQUIRED=1. (The C API's ASan/valgrind run is socknotify-c/tests/run-sanitizers.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-asan}
target=$(rustc +nightly -vV 2>/dev/null | sed -n 's/^host: //p')
tests=(--test stress --test model --test faults --test scale --test conformance_port)
skip() {
  echo "rust-sanitizers.sh: $1: skipped ($2)"
  [ "${SANITIZERS_REQUIRED:-0}" = 1 ] && exit 1
  return 0
}
installed() { rustup component list --toolchain nightly --installed 2>/dev/null | grep -q "^$1"; }

run_asan() {
  [ -n "$target" ] || { skip asan "no nightly toolchain"; return; }
  echo "rust-sanitizers.sh: AddressSanitizer"
  RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
    CARGO_TARGET_DIR="${SANITIZER_TARGET_DIR:-$root/target}/asan" \
    cargo +nightly test -p socknotify --target "$target" "${tests[@]}"
}
run_tsan() {
  [ -n "$target" ] || { skip tsan "no nightly toolchain"; return; }
  installed rust-src || { skip tsan "no rust-src for -Zbuild-std: rustup component add --toolchain nightly rust-src"; return; }
  echo "rust-sanitizers.sh: ThreadSanitizer"
  RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" \
    CARGO_TARGET_DIR="${SANITIZER_TARGET_DIR:-$root/target}/tsan" \
    cargo +nightly test -Zbuild-std -p socknotify --target "$target" "${tests[@]}" -- \
    --skip socket_closed_by_another_thread_while_enabling
  # (That test closes a descriptor while another thread passes it to epoll_ctl, on purpose:
  # TSan reports the close as a race on the descriptor, which is the fault being injected.)
}
run_miri() {
  installed miri || { skip miri "no miri: rustup component add --toolchain nightly miri rust-src"; return; }
  echo "rust-sanitizers.sh: miri (fuzz machine harness on its seed corpus)"
  # The corpus is read from disk: isolation off.
  (cd fuzz && MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}" \
    CARGO_TARGET_DIR="${SANITIZER_TARGET_DIR:-$root/target}/miri" cargo +nightly miri test --test replay machine)
}

case "$mode" in
  asan) run_asan ;;
  tsan) run_tsan ;;
  miri) run_miri ;;
  all) run_asan; run_tsan; run_miri ;;
  *) echo "usage: $0 [asan|tsan|miri|all]"; exit 2 ;;
esac
