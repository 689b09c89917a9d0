#!/bin/sh
# Runs the C test programs, the echo server and the ported Winsock server under
# AddressSanitizer (with LeakSanitizer: ASAN_OPTIONS=detect_leaks=1) and under valgrind
# (memcheck, --leak-check=full), one case per process. Any sanitizer error, leak, failed
# check or hang fails the run.
#
#   socknotify-c/tests/run-sanitizers.sh [asan|valgrind|all]     (default: all)
#
# Needs: cargo, gcc and g++ (with libasan, as Debian's gcc package brings), valgrind,
# coreutils' timeout. It builds the library with `cargo build -p socknotify-c` (debug,
# honouring CARGO_TARGET_DIR), or uses SOCKNOTIFY_LIB_DIR (a folder with the static library,
# libsocknotify_c.a as cargo names it, or an installed libsocknotify.a) if set. Works offline
# once the crate's dependencies are in cargo's cache.
# The valgrind run uses the core's epoll path (SOCKNOTIFY_BACKEND=epoll unless set): valgrind
# 3.19 cannot run a thread that blocks in io_uring_enter concurrently with the others.
# The last line is "N passed, M failed".
set -u

mode=${1:-all}
case $mode in
    asan | valgrind | all) ;;
    *)
        echo "usage: $0 [asan|valgrind|all]" >&2
        exit 2
        ;;
esac

here=$(cd "$(dirname "$0")/.." && pwd)  # the socknotify-c crate
workspace=$(cd "$here/.." && pwd)
CC=${CC:-gcc}
CXX=${CXX:-g++}

if [ -n "${SOCKNOTIFY_LIB_DIR:-}" ]; then
    lib=$SOCKNOTIFY_LIB_DIR/libsocknotify_c.a
    [ -f "$lib" ] || lib=$SOCKNOTIFY_LIB_DIR/libsocknotify.a
else
    (cd "$workspace" && cargo build -p socknotify-c) || exit 1
    lib=${CARGO_TARGET_DIR:-$workspace/target}/debug/libsocknotify_c.a
fi
if [ ! -f "$lib" ]; then
    echo "$0: $lib not found" >&2
    exit 1
fi
for tool in "$CC" "$CXX" timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$0: $tool not found" >&2; exit 1; }
done
if [ "$mode" != asan ] && ! command -v valgrind >/dev/null 2>&1; then
    echo "$0: valgrind not found (apt-get install valgrind)" >&2
    exit 1
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/socknotify-sanitizers.XXXXXX")
trap 'rm -rf "$out"' EXIT
libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl"
warn="-Wall -Wextra -Werror -pedantic"
programs="layout psn_validation psn_flow psn_batches iocp capi porting"
passed=0
failed=0
failures=""

# build NAME FLAGS...: compiles every test program, the C++ check and the example.
build() {
    suffix=$1
    shift
    for p in $programs; do
        # shellcheck disable=SC2086
        $CC -std=c99 $warn "$@" -I"$here/include" -I"$here/tests/c" "$here/tests/c/harness.c" \
            "$here/tests/c/$p.c" "$lib" $libs -o "$out/$p.$suffix" || return 1
    done
    # shellcheck disable=SC2086
    $CXX -std=c++11 $warn "$@" -I"$here/include" "$here/tests/c/header_cpp.cpp" "$lib" $libs \
        -o "$out/header_cpp.$suffix" || return 1
    # shellcheck disable=SC2086
    $CXX -std=c++17 $warn "$@" -I"$here/include" "$here/tests/c/porting_cpp.cpp" "$lib" $libs \
        -o "$out/porting_cpp.$suffix" || return 1
    # shellcheck disable=SC2086
    $CC -std=c99 $warn "$@" -I"$here/include" "$here/examples/echo_server.c" "$lib" $libs \
        -o "$out/echo_server.$suffix" || return 1
    # shellcheck disable=SC2086
    $CC -std=c11 $warn "$@" -I"$here/include" "$here/examples/winsock_server.c" "$lib" $libs \
        -o "$out/winsock_server.$suffix" || return 1
    # shellcheck disable=SC2086
    $CXX -std=c++17 $warn "$@" -I"$here/include" -x c++ "$here/examples/winsock_server.c" -x none "$lib" $libs \
        -o "$out/winsock_server_cxx.$suffix" || return 1
}

# check LABEL LIMIT COMMAND...: runs one command with a time limit and records the outcome.
check() {
    label=$1
    limit=$2
    shift 2
    if timeout -k 10 "$limit" "$@" >"$out/log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $label"
    else
        rc=$?
        failed=$((failed + 1))
        failures="$failures $label"
        echo "FAIL $label (exit $rc)"
        sed 's/^/     | /' "$out/log" | tail -n 60
    fi
}

# run_all SUFFIX LIMIT RUNNER...: every case of every program, the C++ check and the example.
run_all() {
    suffix=$1
    limit=$2
    shift 2
    for p in $programs; do
        for c in $("$out/$p.$suffix" --list | cut -f1); do
            check "$suffix $p $c" "$limit" "$@" "$out/$p.$suffix" "$c"
        done
    done
    check "$suffix header_cpp" "$limit" "$@" "$out/header_cpp.$suffix"
    check "$suffix porting_cpp" "$limit" "$@" "$out/porting_cpp.$suffix"
    check "$suffix echo_server" "$limit" "$@" "$out/echo_server.$suffix" -w 4 -c 40 -m 10 -s 200 -t 2 -T 240
    check "$suffix winsock_server" "$limit" "$@" "$out/winsock_server.$suffix" 4 2 10 5
    check "$suffix winsock_server_cxx" "$limit" "$@" "$out/winsock_server_cxx.$suffix" 2 2 10 5
}

if [ "$mode" != valgrind ]; then
    echo "== AddressSanitizer + LeakSanitizer"
    if build asan -fsanitize=address -fno-omit-frame-pointer -O1 -g; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1
        export ASAN_OPTIONS
        run_all asan 300
        unset ASAN_OPTIONS
    else
        failed=$((failed + 1))
        failures="$failures asan-build"
    fi
fi

if [ "$mode" != asan ]; then
    echo "== valgrind memcheck"
    if build vg -O0 -g; then
        # Waits and "must not arrive" windows are stretched under valgrind's slower threads.
        SOCKNOTIFY_TIME_SCALE=5
        export SOCKNOTIFY_TIME_SCALE
        # valgrind (3.19) runs io_uring_enter as a non-blocking system call, holding its
        # global lock while a thread waits in it, so the core's io_uring wait path deadlocks
        # under valgrind only. Use the epoll path there unless told otherwise; the ASan run
        # (and cargo test) cover the io_uring path.
        vg_backend_set=${SOCKNOTIFY_BACKEND+set}
        if [ -z "$vg_backend_set" ]; then
            SOCKNOTIFY_BACKEND=epoll
            export SOCKNOTIFY_BACKEND
        fi
        run_all vg 600 valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible \
            --show-leak-kinds=definite,possible --track-fds=no
        unset SOCKNOTIFY_TIME_SCALE
        if [ -z "$vg_backend_set" ]; then
            unset SOCKNOTIFY_BACKEND
        fi
    else
        failed=$((failed + 1))
        failures="$failures valgrind-build"
    fi
fi

if [ "$failed" -ne 0 ]; then
    echo "failed:$failures"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
