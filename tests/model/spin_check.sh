# tests/model/spin_check.sh: sourced by the check_*.sh scripts beside it,
# as `. "$here/spin_check.sh" MODEL` (here: this directory). Sets cc (from
# CC, default cc), fails when spin is missing, makes tmp (removed at exit).
# spin_check MODEL NAME EXPECT(ok|caught) DEFINES...: generates the verifier
# of MODEL.pml (in this directory) with spin and DEFINES, compiles and runs
# it, prints one line (NAME, the outcome, the states stored) and sets bad=1
# when the outcome is not EXPECT. "caught": an assertion violation or an
# invalid end state; a search cut short by its depth or memory limit is an
# error, as it would not be exhaustive.
cc=${CC:-cc}
command -v spin >/dev/null 2>&1 || { echo "check_$1: spin is not installed" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
bad=0
spin_check() {
    local model=$1 name=$2 expect=$3 dir=$tmp/$2
    shift 3
    mkdir -p "$dir" && cp "$here/$model.pml" "$dir/" || return 1
    (cd "$dir" && spin "$@" -a "$model.pml" >spin.log 2>&1 &&
        "$cc" -w -O1 -DSAFETY -o pan pan.c >cc.log 2>&1 && ./pan >pan.log 2>&1) || {
        echo "check_$model: $name: spin or pan failed to run" >&2; bad=1; return; }
    local errors got
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log")
    got=ok
    if [ "${errors:-0}" != 0 ]; then
        grep -Eq "assertion violated|invalid end state" "$dir/pan.log" && got=caught || got="error(other)"
    elif grep -q "max search depth too small" "$dir/pan.log"; then
        got="error(depth)"
    elif grep -qiE "out of memory|memory limit|MEMLIM bound" "$dir/pan.log"; then
        got="error(memory)"
    fi
    printf '%-34s %-8s %s\n' "$name" "$got" "$(grep -m1 'states, stored' "$dir/pan.log" | sed 's/^ *//')"
    [ "$got" = "$expect" ] || { echo "check_$model: $name: expected $expect" >&2; bad=1; }
}
