#!/bin/sh
# Checks that the C library works in a `panic = "abort"` build: builds socknotify-c with
# RUSTFLAGS="-C panic=abort" (its own target folder, so the usual build is untouched),
# checks that the static library carries the abort runtime and not the unwinding one, then
# runs the whole C suite (every C case, the header checks, the examples and the install
# tests) against those libraries (SOCKNOTIFY_LIB_DIR).
#
#   socknotify-c/tests/panic-abort.sh
#
# Needs what `cargo test -p socknotify-c` needs. Honours CARGO_TARGET_DIR (the abort build
# goes to $CARGO_TARGET_DIR/panic-abort).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
workspace=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$workspace/target}/panic-abort

cd "$workspace"
RUSTFLAGS="-C panic=abort" CARGO_TARGET_DIR="$target" cargo build -p socknotify-c
lib=$target/debug/libsocknotify_c.a
members=$(ar t "$lib")
if ! printf '%s\n' "$members" | grep -q '^panic_abort-'; then
    echo "$0: $lib has no panic_abort runtime" >&2
    exit 1
fi
if printf '%s\n' "$members" | grep -q '^panic_unwind-'; then
    echo "$0: $lib still has the panic_unwind runtime" >&2
    exit 1
fi
echo "panic-abort.sh: $lib is a panic=abort build; running the C suite against it"
SOCKNOTIFY_LIB_DIR=$target/debug cargo test -p socknotify-c --test c_suite
