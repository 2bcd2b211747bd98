# tools/busy.sh — sourced by tests/run and bench/run for their --loaded:
# processes that keep the CPUs busy, stopped when the script exits.
#   busy_start N   starts N processes that spin (and the EXIT trap that stops them)
#   busy_stop      stops them (also before the script's end)
busy_pids=()

busy_start() {
    local i
    for ((i = 0; i < $1; i++)); do
        bash -c 'while :; do :; done' &
        busy_pids+=($!)
    done
    trap busy_stop EXIT
}

busy_stop() {
    if [ ${#busy_pids[@]} -gt 0 ]; then
        kill "${busy_pids[@]}" 2>/dev/null || true
    fi
    busy_pids=()
}
