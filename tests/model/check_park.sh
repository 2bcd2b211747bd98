#!/usr/bin/env bash
# tests/model/check_park.sh: model-checks the idle-parking protocol
# (tests/model/park.pml, docs/park-model.md) with spin.
#
# The fixed protocol must have no error in an exhaustive search of each
# configuration a mutant is checked in (and of A); each mutant (a defect the
# code had, or a rule of the waking token left out) must be caught: an
# assertion violation of the lost-wake-up check, with a trail. Prints the
# states stored and errors per run and a summary line; exits non-zero on
# any deviation. Runs from any directory; works in a temporary directory.
#
#   PARK_MODEL_KEEP=1     keep the temporary directory (trails, pan logs)
#   PARK_MODEL_VERBOSE=1  replay each mutant's counterexample (spin -t)
#   PARK_MODEL_FULL=1     also the fixed protocol at 3 workers and 2+1 and
#                         3+1 items and at 4 workers and 2+0 items, and
#                         MUTANT_PASS_AS_SENT breadth-first (its shortest
#                         counterexample): ~10 min of CPU, up to 6 GB
#                         (docs/park-model.md, "Measured")
#   CC                    the C compiler for pan (default cc)
set -u
# Our per-run knobs (check, below) come from here only.
unset PAN_SEARCH PAN_MEMLIM PAN_HASHBITS PAN_OPT

src=${BASH_SOURCE[0]}
case $src in */*) here=${src%/*} ;; *) here=. ;; esac
here=$(cd "$here" && pwd) || exit 1
model=$here/park.pml
cc=${CC:-cc}

if ! command -v spin >/dev/null 2>&1; then
    echo "check_park: spin is not installed (Debian/Ubuntu: apt-get install spin)" >&2
    exit 1
fi
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "check_park: no C compiler '$cc' to build spin's verifier (set CC)" >&2
    exit 1
fi
if [ ! -f "$model" ]; then
    echo "check_park: $model not found" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/park-model.XXXXXX") || exit 1
if [ "${PARK_MODEL_KEEP:-0}" = 1 ]; then
    trap 'echo "check_park: kept $tmp"' EXIT
else
    trap 'rm -rf "$tmp"' EXIT
fi

# Configurations (see docs/park-model.md):
#   A: owner + 1 thief, 3 owner items, 1 injected item (path (2) needs 3)
#   M: A without the injected item, for the deque mutants: their shortest
#      counterexamples then show only the deque and the parking
#   D: owner + 2 thieves, 2 owner items (a notify of 2; futex wake-one with
#      two sleepers)
#   E: owner + 2 thieves, 1 owner item, 1 injected item (both notifiers)
#   I1, I2, I3: 1, 2, 3 thieves and a burst of 1, 2, 3 injected items, no
#      owner items, for the token's mutants (a long task needs a second
#      thief to leave asleep, a pass-on chain of two hops a third)
cfg_A="-DNT=1 -DNPUSH=3 -DNINJ=1"
cfg_M="-DNT=1 -DNPUSH=3 -DNINJ=0"
cfg_D="-DNT=2 -DNPUSH=2 -DNINJ=0"
cfg_E="-DNT=2 -DNPUSH=1 -DNINJ=1"
cfg_I1="-DNT=1 -DNPUSH=0 -DNINJ=2"
cfg_I2="-DNT=2 -DNPUSH=0 -DNINJ=2"
cfg_I3="-DNT=3 -DNPUSH=0 -DNINJ=3"
# PARK_MODEL_FULL:
#   B: owner + 2 thieves, 2 owner items, 1 injected item
#   C: owner + 2 thieves, 3 owner items, 1 injected item
#   F: owner + 3 thieves, 2 owner items
cfg_B="-DNT=2 -DNPUSH=2 -DNINJ=1"
cfg_C="-DNT=2 -DNPUSH=3 -DNINJ=1"
cfg_F="-DNT=3 -DNPUSH=2 -DNINJ=0"

passed=0
failed=0
start=$(date +%s.%N)

# [PAN_SEARCH=dfs] [PAN_MEMLIM=MB] [PAN_HASHBITS=n] [PAN_OPT=-O0] \
#     check NAME EXPECT CONFIG DEFINES...
#   EXPECT: ok (exhaustive, no error) or caught (lost wake-up found).
#   PAN_OPT: pan's optimization, -O1 unless told: -O0 compiles in a quarter of
#   the time, for the searches that take less than that.
#   Mutants search breadth-first (the counterexample is a shortest one)
#   unless PAN_SEARCH=dfs (depth-first, the first counterexample found: for a
#   mutant whose breadth-first search needs gigabytes).
check() {
    local name=$1 expect=$2 cfg=$3
    shift 3
    local dir=$tmp/${name//[^A-Za-z0-9_]/_}
    mkdir -p "$dir" && cp "$model" "$dir/park.pml" || return 1
    local t0 verdict="" why="" hashbits=${PAN_HASHBITS:-22} memlim=${PAN_MEMLIM:-2048} opt=${PAN_OPT:--O1}
    local search="-DCOLLAPSE"
    [ "$expect" = caught ] && [ "${PAN_SEARCH:-bfs}" = bfs ] && search="-DBFS"
    t0=$(date +%s.%N)
    (
        cd "$dir" || exit 1
        spin $cfg "$@" -a park.pml >spin.log 2>&1 || exit 2
        "$cc" -w $opt -DSAFETY -DMEMLIM=$memlim $search -o pan pan.c >cc.log 2>&1 || exit 3
        ./pan -m30000 -w$hashbits >pan.log 2>&1
        exit 0
    )
    local rc=$?
    local secs
    secs=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}')
    local log=$dir/pan.log
    local states="-" errors="-"
    if [ $rc -eq 0 ]; then
        states=$(awk '/states, stored/ {print $1; exit}' "$log")
        errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
        [ -n "$states" ] || states="-"
        [ -n "$errors" ] || errors="-"
    fi

    if [ $rc -eq 2 ]; then
        why="spin -a failed: $(head -n 3 "$dir/spin.log" | tr '\n' ' ')"
    elif [ $rc -eq 3 ]; then
        why="compiling pan failed: $(head -n 3 "$dir/cc.log" | tr '\n' ' ')"
    elif [ $rc -ne 0 ]; then
        why="could not run"
    elif [ "$errors" = "-" ]; then
        why="no result from pan: $(tail -n 3 "$log" | tr '\n' ' ')"
    elif grep -q "max search depth too small" "$log"; then
        why="search depth limit reached: the search was not exhaustive"
    elif grep -qiE "out of memory|memory limit|MEMLIM bound" "$log"; then
        why="pan ran out of memory (-DMEMLIM=$memlim): the search was not exhaustive"
    elif [ "$expect" = ok ] && grep -q "Search not completed" "$log"; then
        why="pan did not complete the search: $(grep -m1 -iE 'pan:|error' "$log")"
    elif [ "$expect" = ok ]; then
        if [ "$errors" != 0 ]; then
            why="the fixed protocol has $errors error(s): $(grep -m1 -E 'assertion violated|invalid end state|pan:1:' "$log")"
        elif [ -e "$dir/park.pml.trail" ]; then
            why="a trail was written"
        fi
    else
        if [ "$errors" = 0 ]; then
            why="the mutant was not caught (0 errors)"
        elif [ ! -s "$dir/park.pml.trail" ]; then
            why="no trail was written"
        elif ! grep -q "assertion violated.*top<split" "$log"; then
            why="caught by something else than the lost-wake-up check: $(grep -m1 -E 'pan:1:|violated|invalid' "$log")"
        fi
    fi

    if [ -z "$why" ]; then
        verdict=PASS
        passed=$((passed + 1))
    else
        verdict=FAIL
        failed=$((failed + 1))
    fi
    printf '%-4s %-34s %-7s states stored %9s  errors %-2s %5ss\n' \
        "$verdict" "$name" "$expect" "$states" "$errors" "$secs"
    [ -z "$why" ] || echo "     $why"
    if [ "$expect" = caught ] && [ -s "$dir/park.pml.trail" ]; then
        local depth
        depth=$(sed -n 's/.*assertion violated.*(at depth \([0-9]*\)).*/\1/p' "$log" | head -n 1)
        [ -n "$depth" ] && echo "     counterexample: $depth steps (park.pml.trail)"
        if [ "${PARK_MODEL_VERBOSE:-0}" = 1 ]; then
            (cd "$dir" && spin $cfg "$@" -t -p park.pml 2>&1 |
                grep -E '^ *[0-9]+:.*proc|assert' | sed 's/^/       /')
        fi
    fi
}

echo "park model: spin $(spin -V 2>/dev/null | sed -n 's/Spin Version \([^ ]*\).*/\1/p'), $model"
check "fixed/A (2 workers, 3+1 items)"  ok     "$cfg_A"
check "fixed/D (3 workers, 2+0 items)"  ok     "$cfg_D"
check "fixed/E (3 workers, 1+1 items)"  ok     "$cfg_E"
PAN_HASHBITS=24 \
check "fixed/I3 (4 workers, 0+3 items)" ok     "$cfg_I3"
# The small searches: pan at -O0.
export PAN_OPT=-O0
check "fixed/M (2 workers, 3+0 items)"  ok     "$cfg_M"
check "fixed/I1 (2 workers, 0+2 items)" ok     "$cfg_I1"
check "fixed/I2 (3 workers, 0+2 items)" ok     "$cfg_I2"
check "MUTANT_NO_NOTIFY_AFTER_PUBLISH"   caught "$cfg_M" -DMUTANT_NO_NOTIFY_AFTER_PUBLISH
check "MUTANT_NO_NOTIFY_ON_TAKE_PUBLISH" caught "$cfg_M" -DMUTANT_NO_NOTIFY_ON_TAKE_PUBLISH
check "MUTANT_RELAXED_SLEEPERS_LOAD"     caught "$cfg_M" -DMUTANT_RELAXED_SLEEPERS_LOAD
check "MUTANT_NO_NOTIFY_AFTER_INJECT"    caught "$cfg_A" -DMUTANT_NO_NOTIFY_AFTER_INJECT
check "MUTANT_NO_ENTRY_EXCHANGE"         caught "$cfg_I1" -DMUTANT_NO_ENTRY_EXCHANGE
check "MUTANT_NO_EXIT_EXCHANGE"          caught "$cfg_I2" -DMUTANT_NO_EXIT_EXCHANGE
check "MUTANT_NO_PASS"                   caught "$cfg_I2" -DMUTANT_NO_PASS
check "MUTANT_SKIP_UNMARKED"             caught "$cfg_I2" -DMUTANT_SKIP_UNMARKED
# Breadth-first it needs 19 million states and 2.5 GB (PARK_MODEL_FULL).
PAN_SEARCH=dfs \
check "MUTANT_PASS_AS_SENT"              caught "$cfg_I3" -DMUTANT_PASS_AS_SENT
# What each rule of the token needs to show: its mutant has no error one
# size down (1 thief and 1 item for the entry exchange; I1 for the exit
# exchange, the pass-on and the PASS mark; 2 thieves and 3 items for the
# mark's kind).
check "NO_ENTRY_EXCHANGE, 1 thief, 0+1"  ok     "-DNT=1 -DNPUSH=0 -DNINJ=1" -DMUTANT_NO_ENTRY_EXCHANGE
check "NO_EXIT_EXCHANGE, I1"             ok     "$cfg_I1" -DMUTANT_NO_EXIT_EXCHANGE
check "NO_PASS, I1"                      ok     "$cfg_I1" -DMUTANT_NO_PASS
check "SKIP_UNMARKED, I1"                ok     "$cfg_I1" -DMUTANT_SKIP_UNMARKED
check "PASS_AS_SENT, 2 thieves, 0+3"     ok     "-DNT=2 -DNPUSH=0 -DNINJ=3" -DMUTANT_PASS_AS_SENT
unset PAN_OPT
expected=21
if [ "${PARK_MODEL_FULL:-0}" = 1 ]; then
    # Bigger: up to 8 GB each (docs/park-model.md, "Measured").
    export PAN_HASHBITS=26 PAN_MEMLIM=8192
    check "fixed/B (3 workers, 2+1 items)"  ok     "$cfg_B"
    check "fixed/C (3 workers, 3+1 items)"  ok     "$cfg_C"
    check "fixed/F (4 workers, 2+0 items)"  ok     "$cfg_F"
    check "MUTANT_PASS_AS_SENT, BFS"         caught "$cfg_I3" -DMUTANT_PASS_AS_SENT
    unset PAN_HASHBITS PAN_MEMLIM
    expected=25
fi

total=$(echo "$(date +%s.%N) $start" | awk '{printf "%.1f", $1 - $2}')
echo "park model: $passed passed, $failed failed (${total}s)"
[ "$failed" -eq 0 ] && [ "$passed" -eq "$expected" ]
