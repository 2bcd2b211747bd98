#!/bin/sh
# tests/probe_args.sh LIB — the USDT probes of LIB as perf can use them:
# no argument is a constant (sys/sdt.h writes it as an immediate, `$-1` on
# x86-64, a bare number on ARM64, and perf 6.1 drops such an argument), and
# every site of a probe gives the same argument sizes, so that one event
# definition fits them all (perf refuses the sites that differ: "File
# exists"). Skipped (77) when LIB has no weft probes.
# SPDX-License-Identifier: MIT
set -eu
lib=$1
readelf=${READELF:-readelf}
notes=$("$readelf" -n "$lib" | awk '
    /Provider: weft/ { p = 1; next }
    p && /Name:/ { name = $2; next }
    p && /Arguments:/ { sub(/.*Arguments: */, ""); print name " " $0; p = 0 }')
if [ -z "$notes" ]; then
    echo "SKIP: $lib has no weft probes (no <sys/sdt.h>, or WEFT_OBSERVE=OFF)"
    exit 77
fi
echo "$notes" | awk '
    {
        sizes = ""
        for (i = 2; i <= NF; i++) {
            at = index($i, "@")
            operand = substr($i, at + 1)
            if (operand ~ /^\$?-?[0-9]+$/) {
                print "FAIL: " $1 " has a constant argument " i - 1 ": " $0
                bad = 1
            }
            sizes = sizes " " substr($i, 1, at - 1)
        }
        if ($1 in seen && seen[$1] != sizes) {
            print "FAIL: " $1 " sites differ in argument sizes:" seen[$1] " and" sizes
            bad = 1
        }
        seen[$1] = sizes
        sites++
    }
    END {
        if (bad)
            exit 1
        print "probe_args: " sites " probe sites, no constant, sizes agree: ok"
    }'
