#!/usr/bin/env bash
# tests/package/check.sh BUILD_DIR SOURCE_DIR — installs the weft built in
# BUILD_DIR into a temporary prefix and builds and runs a consumer three
# ways: CMake find_package (weft::weft and weft::weft_static), pkg-config
# (shared and --static), and add_subdirectory of SOURCE_DIR. Also checks
# that both installed libraries define no global symbol but weft_*.
set -euo pipefail
build=$1 src=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAILED: $*"; fail=$((fail + 1)); }
step() { local what=$1; shift; if "$@" >"$tmp/log" 2>&1; then ok "$what"; else bad "$what"; cat "$tmp/log"; fi; }

step "install into a temporary prefix" cmake --install "$build" --prefix "$prefix"
libdir=$(dirname "$(find "$prefix" -name 'libweft.so' | head -1)")

symbols() { nm -g --defined-only "$1" | awk 'NF == 3 { print $3 }' | grep -v '^weft_' || true; }
for lib in "$libdir/libweft.a" "$libdir/libweft.so"; do
    extra=$(symbols "$lib")
    if [ -z "$extra" ]; then ok "only weft_* global in $(basename "$lib")"; else bad "$(basename "$lib") exports: $extra"; fi
done
soname=$(readelf -d "$libdir/libweft.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ -n "$soname" ] && [ -e "$libdir/$soname" ] && ok "SONAME $soname installed" || bad "SONAME '$soname' missing"

step "find_package: configure" cmake -S "$here/find" -B "$tmp/find" -DCMAKE_PREFIX_PATH="$prefix"
step "find_package: build" cmake --build "$tmp/find"
step "find_package: weft::weft runs" env LD_LIBRARY_PATH="$libdir" "$tmp/find/with_shared"
step "find_package: weft::weft_static runs" "$tmp/find/with_static"
if ldd "$tmp/find/with_static" 2>/dev/null | grep -q libweft; then bad "weft::weft_static links libweft.so"; else ok "weft::weft_static is static"; fi

export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc=${CC:-cc}
step "pkg-config: shared" sh -c "$cc -std=c11 '$here/consumer.c' \$(pkg-config --cflags --libs weft) -o '$tmp/pc_shared' && LD_LIBRARY_PATH='$libdir' '$tmp/pc_shared'"
step "pkg-config: static" sh -c "$cc -std=c11 '$here/consumer.c' -static \$(pkg-config --cflags --libs --static weft) -o '$tmp/pc_static' && '$tmp/pc_static'"

step "add_subdirectory: configure (C only, parent's build type kept, no tests)" \
    cmake -S "$here/subdir" -B "$tmp/subdir" -DWEFT_SOURCE_DIR="$src"
step "add_subdirectory: build" cmake --build "$tmp/subdir" -j2
step "add_subdirectory: weft::weft runs" "$tmp/subdir/with_shared"
step "add_subdirectory: weft::weft_static runs" "$tmp/subdir/with_static"

echo "package: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
