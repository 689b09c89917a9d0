#!/bin/sh
# Installs the socknotify C library: PREFIX/lib/libsocknotify.{a,so}, PREFIX/include/socknotify.h
# and PREFIX/lib/pkgconfig/socknotify.pc.
#
#   socknotify-c/install.sh PREFIX
#
# By default it builds the release libraries first (cargo build --release -p socknotify-c,
# honouring CARGO_TARGET_DIR). To install libraries built elsewhere, point
# SOCKNOTIFY_LIB_DIR at the folder that holds libsocknotify.a and libsocknotify.so; nothing
# is built then. Set DESTDIR to stage the install (as for packaging).
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
prefix=$1
case $prefix in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/.." && pwd)

if [ -n "${SOCKNOTIFY_LIB_DIR:-}" ]; then
    libdir_src=$SOCKNOTIFY_LIB_DIR
else
    (cd "$workspace" && cargo build --release -p socknotify-c)
    libdir_src=${CARGO_TARGET_DIR:-$workspace/target}/release
fi
for f in libsocknotify.a libsocknotify.so; do
    if [ ! -f "$libdir_src/$f" ]; then
        echo "$0: $libdir_src/$f not found" >&2
        exit 1
    fi
done

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$here/Cargo.toml" | head -n 1)
dest=${DESTDIR:-}
install -d "$dest$prefix/lib/pkgconfig" "$dest$prefix/include"
install -m 644 "$libdir_src/libsocknotify.a" "$dest$prefix/lib/libsocknotify.a"
install -m 755 "$libdir_src/libsocknotify.so" "$dest$prefix/lib/libsocknotify.so"
install -m 644 "$here/include/socknotify.h" "$dest$prefix/include/socknotify.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$here/socknotify.pc.in" \
    > "$dest$prefix/lib/pkgconfig/socknotify.pc"
chmod 644 "$dest$prefix/lib/pkgconfig/socknotify.pc"
echo "installed socknotify $version under $dest$prefix"
