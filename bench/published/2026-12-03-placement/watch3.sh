#!/bin/bash
# watch3.sh LOG BIN...: when pp says far placement, one round of each binary (shuffled)
log=$1; shift; end=$((SECONDS+${WATCH_S:-1500})); n=0
while [ $SECONDS -lt $end ] && [ $n -lt 10 ]; do
  v=$(./pp | awk '{print $1}')
  if [ "$v" -gt 200 ]; then n=$((n+1)); line="pp=$v"
    for b in $(printf '%s\n' "$@" | shuf); do line="$line $b:$(./$b 1 1 4 | tail -3 | awk '{printf "%s,", $1}')"; done
    echo "$(date +%T) $line $(./pp)" >> $log
  else sleep 10; fi
done
