#!/bin/bash
# probe_ab.sh RUNS NAME=probe-binary ...: runs each binary (4 rounds, the
# last 3 kept) once per configuration per run, in a shuffled order, and
# prints the max and median M/s of each over all runs.
RUNS=$1; shift
out=$(mktemp); rm -f $out
for r in $(seq $RUNS); do
  for c in "1 1" "2 1" "1 4" "2 4"; do
    for v in $(printf '%s\n' "$@" | shuf); do n=${v%%=*}; b=${v#*=};
      $b $c 4 | tail -3 | awk -v n=$n -v c="$c" '{print n, c, $1}' >> $out; done; done; done
python3 - $out <<'PY'
import sys,statistics as st,collections
d=collections.defaultdict(list)
for l in open(sys.argv[1]):
    n,w,t,v=l.split(); d[(w,t,n)].append(float(v))
for k in sorted(d): v=d[k]; print("workers %s threads %s %-6s max %5.1f median %5.1f M/s (n=%d)"%(k[0],k[1],k[2],max(v),st.median(v),len(v)))
PY
