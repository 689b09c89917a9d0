#!/bin/sh
# Installs the socknotify C library:
#   LIBDIR/libsocknotify.so.VERSION (stripped; SONAME libsocknotify.so.MAJOR), with the
#     symlinks libsocknotify.so.MAJOR -> .so.VERSION and libsocknotify.so -> .so.MAJOR
#   LIBDIR/libsocknotify.a (debug info stripped)
#   INCLUDEDIR/socknotify.h and INCLUDEDIR/socknotify/*.h (the Winsock porting headers)
#   LIBDIR/pkgconfig/socknotify.pc (shared) and socknotify-static.pc (static)
#   LIBDIR/cmake/socknotify/ (find_package(socknotify): socknotify::socknotify and
#     socknotify::socknotify_static)
#
#   socknotify-c/install.sh --prefix=PREFIX [--libdir=DIR] [--includedir=DIR] [--no-build] [--no-strip]
#   socknotify-c/install.sh PREFIX                       (the same as --prefix=PREFIX)
#
# PREFIX may also come from the environment (PREFIX=...). --libdir and --includedir default
# to PREFIX/lib and PREFIX/include; a relative one is taken inside PREFIX (--libdir=lib64).
# DESTDIR (environment) stages the install: files go to DESTDIR/PREFIX/..., while the
# .pc and CMake files name PREFIX (as packagers expect).
#
# By default it builds the release libraries first (cargo build --release -p socknotify-c,
# honouring CARGO_TARGET_DIR). --no-build installs target/release as it is; SOCKNOTIFY_LIB_DIR
# (a folder holding cargo's libsocknotify_c.a and libsocknotify_c.so) installs libraries built
# elsewhere and implies --no-build. STRIP names the strip program (default: strip).
set -eu

usage() {
    echo "usage: $0 --prefix=PREFIX [--libdir=DIR] [--includedir=DIR] [--no-build] [--no-strip]" >&2
    exit 2
}

prefix=${PREFIX:-}
libdir=
includedir=
build=1
do_strip=1
while [ $# -gt 0 ]; do
    case $1 in
        --prefix=*) prefix=${1#--prefix=} ;;
        --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift ;;
        --libdir=*) libdir=${1#--libdir=} ;;
        --libdir) [ $# -ge 2 ] || usage; libdir=$2; shift ;;
        --includedir=*) includedir=${1#--includedir=} ;;
        --includedir) [ $# -ge 2 ] || usage; includedir=$2; shift ;;
        --no-build) build=0 ;;
        --no-strip) do_strip=0 ;;
        -h | --help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) prefix=$1 ;;
    esac
    shift
done
[ -n "$prefix" ] || usage
case $prefix in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac
case ${libdir:=lib} in
    /*) ;;
    *) libdir=$prefix/$libdir ;;
esac
case ${includedir:=include} in
    /*) ;;
    *) includedir=$prefix/$includedir ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/.." && pwd)
if [ -n "${SOCKNOTIFY_LIB_DIR:-}" ]; then
    src=$SOCKNOTIFY_LIB_DIR
else
    if [ "$build" = 1 ]; then
        (cd "$workspace" && cargo build --release -p socknotify-c)
    fi
    src=${CARGO_TARGET_DIR:-$workspace/target}/release
fi
for f in libsocknotify_c.a libsocknotify_c.so; do
    if [ ! -f "$src/$f" ]; then
        echo "$0: $src/$f not found (build it with: cargo build --release -p socknotify-c)" >&2
        exit 1
    fi
done

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$here/Cargo.toml" | head -n 1)
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
# What rustc reports for a static link of this crate (`--print native-static-libs`, less -lc).
native_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl"
dest=${DESTDIR:-}
so=libsocknotify.so.$version

install -d "$dest$libdir/pkgconfig" "$dest$libdir/cmake/socknotify" "$dest$includedir/socknotify"
install -m 755 "$src/libsocknotify_c.so" "$dest$libdir/$so"
install -m 644 "$src/libsocknotify_c.a" "$dest$libdir/libsocknotify.a"
if [ "$do_strip" = 1 ]; then
    ${STRIP:-strip} --strip-unneeded "$dest$libdir/$so"
    ${STRIP:-strip} --strip-debug "$dest$libdir/libsocknotify.a"
fi
ln -sf "$so" "$dest$libdir/libsocknotify.so.$major"
ln -sf "libsocknotify.so.$major" "$dest$libdir/libsocknotify.so"
install -m 644 "$here/include/socknotify.h" "$dest$includedir/socknotify.h"
for h in "$here"/include/socknotify/*.h; do
    install -m 644 "$h" "$dest$includedir/socknotify/$(basename "$h")"
done

subst() {
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@INCLUDEDIR@|$includedir|g" \
        -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" \
        -e "s|@NATIVE_LIBS@|$native_libs|g" "$1" >"$2"
    chmod 644 "$2"
}
subst "$here/packaging/socknotify.pc.in" "$dest$libdir/pkgconfig/socknotify.pc"
subst "$here/packaging/socknotify-static.pc.in" "$dest$libdir/pkgconfig/socknotify-static.pc"
subst "$here/packaging/socknotify-config.cmake.in" "$dest$libdir/cmake/socknotify/socknotify-config.cmake"
subst "$here/packaging/socknotify-config-version.cmake.in" \
    "$dest$libdir/cmake/socknotify/socknotify-config-version.cmake"
echo "installed socknotify $version under $dest$prefix (libraries in $dest$libdir)"
