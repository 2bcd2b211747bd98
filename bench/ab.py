#!/usr/bin/env python3
"""bench/ab.py — A/B the benchmark harness of two (or more) builds in one run.

    bench/ab.py [--rounds N] [--filter REGEX] NAME=path/to/weft_bench ...

Runs each harness once per round, in a rotating order, so that the builds
are interleaved rather than batched; prints, per benchmark, the min and the
median real time of each build over the rounds, and the ratios of the min
and of the median to the first build. Use it for "does this change cost the
warm path": e.g. an old commit's harness against the current one, or a
build with -DWEFT_OBSERVE=OFF against one with it on.
"""
import argparse
import json
import statistics
import subprocess
import sys


def run(path, flt):
    out = subprocess.run([path, "--benchmark_format=json", "--benchmark_filter=" + flt],
                         check=True, capture_output=True, text=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type", "iteration") == "iteration":
            res[b["name"]] = b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1}[b["time_unit"]]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--filter", default="^(fib|skynet)/(serial|weft)")
    ap.add_argument("builds", nargs="+", help="NAME=path to weft_bench")
    a = ap.parse_args()
    builds = [b.split("=", 1) for b in a.builds]
    times = {name: {} for name, _ in builds}
    for r in range(a.rounds):
        order = builds[r % len(builds):] + builds[:r % len(builds)]
        for name, path in order:
            for k, v in run(path, a.filter).items():
                times[name].setdefault(k, []).append(v)
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    base = builds[0][0]
    names = [n for n, _ in builds]
    hdr = f"{'benchmark':48s}" + "".join(f" {n + ' min':>12s} {n + ' med':>12s}" for n in names)
    hdr += "".join(f" {n + '/' + base + ' min':>14s} {'med':>6s}" for n in names[1:])
    print(hdr)
    for k in sorted(times[base]):
        row = f"{k:48s}"
        mins = {n: min(times[n][k]) for n in names if k in times[n]}
        meds = {n: statistics.median(times[n][k]) for n in names if k in times[n]}
        for n in names:
            row += f" {mins[n] * 1e3:10.3f}ms {meds[n] * 1e3:10.3f}ms" if n in mins else " " * 26
        for n in names[1:]:
            if n in mins:
                # An idle-CPU row can measure 0 (nothing ran): no ratio.
                rmin = f"{mins[n] / mins[base]:14.3f}" if mins[base] else f"{'-':>14s}"
                rmed = f"{meds[n] / meds[base]:6.3f}" if meds[base] else f"{'-':>6s}"
                row += f" {rmin} {rmed}"
        print(row)


if __name__ == "__main__":
    main()
