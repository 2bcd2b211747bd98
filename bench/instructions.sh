#!/usr/bin/env bash
# bench/instructions.sh BUILD_DIR... — instructions that fib(22) (three
# shapes) and skynet(10^5) take on one worker (bench/fib_instructions.c; counted by callgrind in run_root
# only), per shape, for each weft build directory given (a Release build:
# cmake -S . -B DIR -DCMAKE_BUILD_TYPE=Release; its libweft.a is used).
# Deterministic: the same binary gives the same count on a busy machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
command -v valgrind >/dev/null || { echo "bench/instructions.sh: apt-get install valgrind" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-40s %14s %14s %14s %14s\n' build join flow1 flow2 skynet
for dir in "$@"; do
    inc=(-I"$root/include")
    [ -d "$dir/include" ] && inc+=(-I"$dir/include")
    # An older tree keeps its header in its own include/ (no generated one).
    [ -f "$dir/../include/weft.h" ] && inc=(-I"$dir/../include" "${inc[@]}")
    cc -O2 "${inc[@]}" "$here/fib_instructions.c" "$dir/libweft.a" -lpthread -o "$tmp/fib"
    counts=()
    for k in 0 1 2 3; do
        valgrind --tool=callgrind --toggle-collect=run_root --callgrind-out-file="$tmp/cg" \
            "$tmp/fib" "$k" >/dev/null 2>"$tmp/log"
        counts+=("$(sed -n 's/.*Collected : *//p' "$tmp/log")")
    done
    printf '%-40s %14s %14s %14s %14s\n' "$dir" "${counts[@]}"
done
