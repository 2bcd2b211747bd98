#!/usr/bin/env bash
# bench/mpi_scaling.sh — weft under MPI: the same UTS job (examples/mpi/uts.c)
# as 1 rank x 2 workers, 2 ranks x 1 worker and 2 ranks x 2 workers, in both
# thread models, against a serial run; min and median times, ratios to
# serial, and the time the ranks spend idle and inside MPI. docs/scaling.md
# has the figures and how to read them.
#
#   bench/mpi_scaling.sh [--tree T3|T1|T3s|T1s] [--rounds N] [--build DIR]
#                        [--wait-quiet S] [--quick]
#
#   --tree T       the tree (default T3: 4.1 M nodes, about 1.3 s serial here)
#   --rounds N     rounds (default 7; --quick 3). A round runs every
#                  configuration once, in an order shuffled per round, so
#                  that slow phases of a noisy machine spread over all of them
#   --build DIR    the build to use (default build/mpi-scaling: configured in
#                  Release and built here if it has no example_mpi_uts)
#   --wait-quiet S wait up to S seconds for other processes to leave the CPUs
#                  idle before starting (default 30; 0: do not wait)
#   --quick        3 rounds of T3s
#
# On a 2-core machine 2 ranks x 2 workers is oversubscribed: 4 workers (and,
# funneled, 2 communication threads) on 2 cores. Every run uses
# `--bind-to none`: Open MPI binds each of 1 or 2 ranks to one core by
# default, so a rank's 2 workers would share it. Times are the example's own
# (from after MPI_Init and the pools' creation to termination), not mpirun's
# start-up (about 0.3 s here). Exits non-zero if any run gives a wrong count.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

tree=T3 rounds="" build="$root/build/mpi-scaling" quiet_s=30 quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --tree) tree="${2:?--tree needs a name}"; shift ;;
        --tree=*) tree="${1#*=}" ;;
        --rounds) rounds="${2:?--rounds needs N}"; shift ;;
        --rounds=*) rounds="${1#*=}" ;;
        --build) build="${2:?--build needs a directory}"; shift ;;
        --build=*) build="${1#*=}" ;;
        --wait-quiet) quiet_s="${2:?--wait-quiet needs seconds}"; shift ;;
        --wait-quiet=*) quiet_s="${1#*=}" ;;
        --quick) quick=1 ;;
        -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "mpi_scaling.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ $quick = 1 ]; then
    tree=T3s
    rounds=${rounds:-3}
fi
rounds=${rounds:-7}

command -v mpirun >/dev/null || {
    echo "mpi_scaling.sh: no mpirun: apt-get install libopenmpi-dev openmpi-bin" >&2
    exit 2
}
exe="$build/examples/example_mpi_uts"
if [ ! -x "$exe" ]; then
    echo "== building $exe (Release)"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$build.configure.log" 2>&1 ||
        { cat "$build.configure.log"; exit 1; }
    cmake --build "$build" -j "$(nproc)" --target example_mpi_uts >"$build.build.log" 2>&1 ||
        { tail -40 "$build.build.log"; exit 1; }
fi

# Wait (a while) for the machine to be quiet, as bench/run does.
busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
hz=$(getconf CLK_TCK)
waited=0
while [ "$quiet_s" -gt 0 ]; do
    j0=$(busy_jiffies); sleep 1; j1=$(busy_jiffies)
    busy=$(awk -v a="$j0" -v b="$j1" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)/hz}')
    if awk -v b="$busy" 'BEGIN{exit !(b < 0.2)}'; then
        echo "== machine quiet: other processes use $busy cores"
        break
    fi
    if [ "$waited" -ge "$quiet_s" ]; then
        echo "== WARNING: other processes use $busy cores; starting anyway (noisy figures)"
        break
    fi
    echo "machine busy ($busy cores in use); waiting (${waited}s of ${quiet_s}s)..."
    sleep 4
    waited=$((waited + 5))
done

mpirun_=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
# name|ranks|workers|model|extra options
configs=(
    "serial|1|1|-|--serial"
    "1x2 funneled|1|2|funneled|"
    "2x1 funneled|2|1|funneled|"
    "2x2 funneled|2|2|funneled|"
    "1x2 multiple|1|2|multiple|"
    "2x1 multiple|2|1|multiple|"
    "2x2 multiple|2|2|multiple|"
    "2x1 static|2|1|funneled|--no-steal"
)

raw=$(mktemp "${TMPDIR:-/tmp}/mpi_scaling.XXXXXX")
trap 'rm -f "$raw"' EXIT
echo "== $(nproc) CPUs, tree $tree, $rounds rounds, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $exe ($(mpirun --version | head -1))"
bad=0
for ((r = 1; r <= rounds; r++)); do
    order=$(seq 0 $((${#configs[@]} - 1)) | shuf)
    for i in $order; do
        IFS='|' read -r name np workers model extra <<<"${configs[$i]}"
        args=(--tree="$tree" --no-check --quiet)
        [ "$model" != - ] && args+=(--model="$model" --workers="$workers")
        # shellcheck disable=SC2206
        [ -n "$extra" ] && args+=($extra)
        set +e
        out=$(timeout 300 "${mpirun_[@]}" -np "$np" "$exe" "${args[@]}" 2>&1)
        rc=$?
        set -e
        line=$(grep '^mpi_uts:' <<<"$out" | head -1)
        if [ $rc != 0 ] || ! grep -q 'result=OK' <<<"$line"; then
            echo "round $r, $name: FAILED (exit $rc)" >&2
            echo "$out" | head -20 >&2
            bad=1
            continue
        fi
        printf '%s\t%s\n' "$name" "$line" >>"$raw"
        printf 'round %d %-13s %s\n' "$r" "$name" "$(grep -o 'time_s=[0-9.]*' <<<"$line")"
    done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$raw" "${configs[@]}" <<'EOF'
import re, statistics, sys
raw, names = sys.argv[1], [c.split('|')[0] for c in sys.argv[2:]]
runs = {}
for l in open(raw):
    name, line = l.rstrip('\n').split('\t', 1)
    kv = dict(re.findall(r'(\w+)=([^ ]+)', line))
    runs.setdefault(name, []).append(kv)
def med(name, key):
    return statistics.median(float(k[key]) for k in runs[name])
if 'serial' not in runs:
    sys.exit('no serial run')
s_min = min(float(k['time_s']) for k in runs['serial'])
s_med = med('serial', 'time_s')
print()
print('| configuration | runs | min s | median s | serial/min | serial/median '
      '| idle % | in MPI % | MPI on workers % | parked % | requests | nodes moved |')
print('|---|---|---|---|---|---|---|---|---|---|---|---|')
for n in names:
    if n not in runs:
        continue
    t = sorted(float(k['time_s']) for k in runs[n])
    cells = [n, str(len(t)), f'{t[0]:.3f}', f'{statistics.median(t):.3f}',
             f'{s_min / t[0]:.2f}', f'{s_med / statistics.median(t):.2f}']
    if n == 'serial':
        cells += ['-'] * 6
    else:
        cells += [f"{med(n, 'idle_pct'):.1f}", f"{med(n, 'mpi_pct'):.1f}",
                  f"{med(n, 'worker_mpi_pct'):.1f}", f"{med(n, 'parked_pct'):.1f}",
                  f"{med(n, 'reqs'):.0f}", f"{med(n, 'moved'):.0f}"]
    print('| ' + ' | '.join(cells) + ' |')
print()
print('idle %: of rank-time (sum over ranks of each rank\'s run time), the time a rank had no')
print('local work: asking for work, waiting for termination. in MPI %: time inside MPI calls,')
print('any thread; MPI on workers %: the part made on weft workers (multiple mode only).')
print('parked %: weft_pool_stats parked_ns over workers x rank-time. Medians over the runs.')
EOF
exit $bad
