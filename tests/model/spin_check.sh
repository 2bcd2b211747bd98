# tests/model/spin_check.sh: sourced by the check_*.sh scripts beside it.
# spin_check MODEL NAME EXPECT(ok|caught) DEFINES...: generates the verifier
# of MODEL.pml (in this directory) with spin and DEFINES, compiles and runs
# it, prints one line (NAME, the outcome, the states stored) and sets bad=1
# when the outcome is not EXPECT. "caught": an assertion violation or an
# invalid end state; a search cut short by its depth limit is an error, as
# it would not be exhaustive. Needs here (this directory), cc, tmp.
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
    fi
    printf '%-34s %-8s %s\n' "$name" "$got" "$(grep -m1 'states, stored' "$dir/pan.log" | sed 's/^ *//')"
    [ "$got" = "$expect" ] || { echo "check_$model: $name: expected $expect" >&2; bad=1; }
}
