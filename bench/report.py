#!/usr/bin/env python3
"""bench/report.py — turns the harness's google-benchmark JSON into a table
and plots.

    report.py RESULTS.json... [--meta META.json]... [--outdir DIR] [--no-plots]
              [--note TEXT]...
    report.py --merge-only --merged-json OUT.json --merged-meta OUT.meta.json
              RESULTS.json... [--meta META.json]...

Several RESULTS files (bench/run's rounds, one per harness binary per
round) are merged: their repetitions of a benchmark are pooled; their meta
files add up (wall time, other processes' CPU), the first giving the load at
the start and the last the load at the end. --merge-only writes the merged
pair and stops.

Table: workload x runtime x workers -> min, median (over repetitions),
median/min spread, ratio to the serial baseline and ratio to the best peer
(the fastest libgomp, libomp, oneTBB or rayon entry at the same worker
count), the
process's CPU-seconds per run relative to serial's (min over repetitions;
less disturbed by other processes than wall time), plus a per-workload
extra (ns per node or task, tasks/s, p99, ...). Rows whose median/min > 1.2
are flagged noisy.

Plots (PNG): time per workload, and speedup over serial against workers.
matplotlib if importable, else gnuplot, else none. Standard library only
otherwise. Also writes summary.md (the table in Markdown, and a compact one
with a column per runtime family: the best variant's min and its ratio to
serial) and summary.csv.

Exit status: 0; 2 if a benchmark reported a wrong answer or an error
(entries marked "n/a:" are not errors).
"""

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

# omp: gcc's libgomp; libomp: clang's (weft_bench_libomp); rayon: bench/rayon.
PEER_FAMILIES = ("omp", "libomp", "tbb", "rayon")
FAMILY_ORDER = ["serial", "weft", "omp", "libomp", "tbb", "rayon"]
UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
NOISY_SPREAD = 1.2
# Workloads whose "time" is not a duration of work.
SPECIAL = {"wake": "latency", "idle_cpu": "cpu"}
ORDER = ["fib", "nqueens", "uts_T1", "uts_T3", "uts_T1s", "uts_T3s", "msort",
         "skynet", "reduce", "tiny_ext1", "tiny_ext4", "wake", "idle_cpu",
         "deque_pushtake", "deque_batch256", "deque_steal"]


def load_json(path):
    """Loads google-benchmark JSON; repairs a file cut short by a crash."""
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        cut = text.rfind("\n    }")
        if cut < 0:
            raise
        print(f"warning: {path} is truncated (did the harness crash or time out?);"
              " using the complete entries", file=sys.stderr)
        return json.loads(text[:cut + 6] + "\n  ]\n}\n")


def parse_name(run_name):
    parts = run_name.split("/")
    if len(parts) < 3 or not parts[2].startswith("workers:"):
        return None
    return parts[0], parts[1], int(parts[2].split(":", 1)[1])


def family(runtime):
    return runtime.split(".", 1)[0]


def collect(doc):
    rows = {}
    for b in doc.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue
        key = parse_name(b.get("run_name", b["name"]))
        if key is None:
            continue
        r = rows.setdefault(key, {"times": [], "counters": {}, "errors": [],
                                  "label": "", "iterations": 0})
        if b.get("error_occurred"):
            r["errors"].append(b.get("error_message", "error"))
            continue
        t = b["real_time"] * UNIT_S.get(b.get("time_unit", "ns"), 1e-9)
        r["times"].append(t)
        r["label"] = b.get("label", r["label"])
        r["iterations"] += b.get("iterations", 0)
        for c in ("tasks", "spawns", "cpu_s", "p50_us", "p99_us", "cpu_s_per_s",
                  "items_per_second"):
            if c in b:
                r["counters"].setdefault(c, []).append(b[c])
    return rows


def fmt_time(s):
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s == 0:
        return "0"
    if s < 1e-6:
        return f"{s * 1e9:.1f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def fmt_ratio(x):
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}x"
    if x >= 10:
        return f"{x:.1f}x"
    return f"{x:.2f}x"


def wl_sort_key(wl):
    return (ORDER.index(wl) if wl in ORDER else len(ORDER), wl)


def rt_sort_key(rt):
    fam = family(rt)
    return (FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else 9, rt)


def summarize(rows):
    """Adds min/median/ratios to each row; returns the ordered list."""
    out = []
    for (wl, rt, w), r in rows.items():
        times = r["times"]
        e = {"workload": wl, "runtime": rt, "workers": w, "label": r["label"],
             "reps": len(times), "errors": r["errors"],
             "counters": {k: statistics.median(v) for k, v in r["counters"].items()},
             "cpu_min": min(r["counters"]["cpu_s"]) if r["counters"].get("cpu_s") else None}
        if times:
            e["min"] = min(times)
            e["median"] = statistics.median(times)
            e["spread"] = e["median"] / e["min"] if e["min"] > 0 else 1.0
        else:
            e["min"] = e["median"] = e["spread"] = None
        out.append(e)

    def best(wl, w, pred):
        cands = [e["min"] for e in out if e["workload"] == wl and e["workers"] == w
                 and pred(e["runtime"]) and e["min"] is not None]
        return min(cands) if cands else None

    for e in out:
        wl, w = e["workload"], e["workers"]
        serial = [x["min"] for x in out if x["workload"] == wl
                  and family(x["runtime"]) == "serial" and x["min"] is not None]
        s = min(serial) if serial else None
        e["serial_min"] = s
        scpu = [x["cpu_min"] for x in out if x["workload"] == wl
                and family(x["runtime"]) == "serial" and x["cpu_min"]]
        e["cpu_x_serial"] = (e["cpu_min"] / min(scpu) if (scpu and e["cpu_min"]
                             and wl not in SPECIAL) else None)
        e["x_serial"] = (e["min"] / s if (s and e["min"] is not None
                                           and wl not in SPECIAL) else None)
        bp = best(wl, w, lambda rt: family(rt) in PEER_FAMILIES)
        e["best_peer"] = bp
        e["x_peer"] = (e["min"] / bp if (bp and e["min"] is not None
                                          and wl != "idle_cpu") else None)
        # idle CPU is a near-zero quantity: its spread says nothing.
        e["noisy"] = (e["spread"] is not None and e["spread"] > NOISY_SPREAD
                      and not (wl == "idle_cpu" and (e["median"] or 0) < 0.01))
    out.sort(key=lambda e: (wl_sort_key(e["workload"]), e["workers"] if
                            family(e["runtime"]) != "serial" else 0,
                            rt_sort_key(e["runtime"])))
    return out


def extra(e):
    c = e["counters"]
    wl = e["workload"]
    if wl == "wake":
        return f"p99 {c.get('p99_us', float('nan')):.1f} us"
    if wl == "idle_cpu":
        return "CPU-s per idle s"
    if "tasks" in c and e["min"]:
        unit = ("task" if wl.startswith("tiny") else "op" if wl.startswith("deque")
                else "node")
        ns = e["min"] / c["tasks"] * 1e9
        s = f"{ns:.1f} ns/{unit}"
        if wl.startswith("tiny"):
            s += f", {c['tasks'] / e['min'] / 1e6:.1f} M/s"
        if c.get("spawns") and e.get("serial_min") and e["workers"] == 1:
            over = (e["min"] - e["serial_min"]) / c["spawns"] * 1e9
            s += f", {over:.1f} ns/spawn over serial"
        return s
    return ""


def value_cols(e):
    wl = e["workload"]
    if wl == "idle_cpu":
        f = (lambda v: "-" if v is None else f"{v:.4f}")
        return f(e["min"]), f(e["median"])
    return fmt_time(e["min"]), fmt_time(e["median"])


def table_rows(summary):
    rows = []
    for e in summary:
        if e["min"] is None:
            msg = e["errors"][0] if e["errors"] else "no data"
            status = "n/a" if msg.startswith("n/a") else "FAILED"
            rows.append([e["workload"], e["runtime"], str(e["workers"]), status, "", "",
                         "", "", "", msg])
            continue
        mn, md = value_cols(e)
        flag = "noisy" if e["noisy"] else ""
        if e["errors"]:
            flag = (flag + " FAILED-reps").strip()
        rows.append([e["workload"], e["runtime"], str(e["workers"]), mn, md,
                     f"{e['spread']:.2f}", fmt_ratio(e["x_serial"]),
                     fmt_ratio(e["x_peer"]), fmt_ratio(e["cpu_x_serial"]),
                     (extra(e) + ("  " + flag if flag else "")).strip()])
    return rows


HEADER = ["workload", "runtime", "workers", "min", "median", "med/min",
          "x serial", "x best peer", "cpu x serial", "notes"]


def print_table(rows, out=sys.stdout, header=None):
    HEADER_ = header or HEADER
    widths = [max(len(HEADER_[i]), *(len(r[i]) for r in rows)) if rows else len(HEADER_[i])
              for i in range(len(HEADER_))]
    widths[-1] = 0
    def line(cells):
        return "  ".join(c.ljust(widths[i]) if i < len(cells) - 1 else c
                         for i, c in enumerate(cells)).rstrip()
    print(line(HEADER_), file=out)
    print(line(["-" * max(w, 1) for w in widths[:-1]] + ["-----"]), file=out)
    prev = None
    for r in rows:
        if prev is not None and r[0] != prev:
            print("", file=out)
        prev = r[0]
        print(line(r), file=out)


def write_markdown(rows, path, meta_lines, labels, pivot=None):
    with open(path, "w") as f:
        for m in meta_lines:
            f.write(f"{m}\n\n")
        if pivot:
            phdr, prows = pivot
            f.write("By runtime family: the fastest variant's min (x serial) [variant]\n\n")
            f.write("| " + " | ".join(phdr) + " |\n")
            f.write("|" + "---|" * len(phdr) + "\n")
            for r in prows:
                f.write("| " + " | ".join(c.replace("|", "/") for c in r) + " |\n")
            f.write("\nEvery row:\n\n")
        f.write("| " + " | ".join(HEADER) + " |\n")
        f.write("|" + "---|" * len(HEADER) + "\n")
        for r in rows:
            f.write("| " + " | ".join(c.replace("|", "/") for c in r) + " |\n")
        f.write("\nInputs:\n\n")
        for wl, lab in labels:
            f.write(f"- `{wl}`: {lab}\n")


def write_csv(summary, path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "runtime", "workers", "min_s", "median_s", "spread",
                    "x_serial", "x_best_peer", "cpu_s_min", "cpu_x_serial", "reps", "errors"])
        for e in summary:
            w.writerow([e["workload"], e["runtime"], e["workers"], e["min"], e["median"],
                        e["spread"], e["x_serial"], e["x_peer"], e["cpu_min"],
                        e["cpu_x_serial"], e["reps"], "; ".join(e["errors"])])


def pivot_rows(summary):
    """One row per workload and worker count, one column per runtime family
    (its fastest variant: min, x serial, variant). Serial rows are left out
    (serial is the 'x serial' base)."""
    fams = [f for f in FAMILY_ORDER if f != "serial"
            and any(family(e["runtime"]) == f for e in summary)]
    fams += sorted({family(e["runtime"]) for e in summary} - set(FAMILY_ORDER))
    keys = sorted({(e["workload"], e["workers"]) for e in summary
                   if family(e["runtime"]) != "serial"},
                  key=lambda k: (wl_sort_key(k[0]), k[1]))
    rows = []
    for wl, w in keys:
        cells = [wl, str(w)]
        for f in fams:
            es = [e for e in summary if e["workload"] == wl and e["workers"] == w
                  and family(e["runtime"]) == f and e["min"] is not None]
            if not es:
                na = [e for e in summary if e["workload"] == wl and e["workers"] == w
                      and family(e["runtime"]) == f]
                cells.append("n/a" if na else "")
                continue
            b = min(es, key=lambda e: e["min"])
            mn = value_cols(b)[0]
            var = b["runtime"].split(".", 1)[1] if "." in b["runtime"] else ""
            x = fmt_ratio(b["x_serial"]) if b["x_serial"] is not None else ""
            cells.append(" ".join(c for c in (mn, f"({x})" if x else "",
                                              f"[{var}]" if var and len(es) > 1 else "") if c))
        rows.append(cells)
    return ["workload", "workers"] + fams, rows


def merge_docs(docs):
    """google-benchmark documents of several runs as one: the first's
    context, every run's benchmarks."""
    out = {"context": dict(docs[0].get("context", {})), "benchmarks": []}
    for d in docs:
        out["benchmarks"].extend(d.get("benchmarks", []))
    out["context"]["weft_bench_parts"] = str(len(docs))
    return out


def merge_metas(metas):
    """The harness's --meta-out files of consecutive runs as one."""
    if not metas:
        return None
    wall = sum(m.get("wall_s", 0) for m in metas)
    foreign = sum(m.get("foreign_cpu_s", 0) for m in metas)
    return {"loadavg_start": metas[0].get("loadavg_start"),
            "loadavg_end": metas[-1].get("loadavg_end"),
            "busy_cores_start": metas[0].get("busy_cores_start"),
            "wall_s": wall, "foreign_cpu_s": foreign,
            "foreign_cores": foreign / max(wall, 1e-3),
            "cpus": metas[0].get("cpus"), "parts": len(metas)}


# ---- plots ----------------------------------------------------------------

def plot_matplotlib(summary, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wls = sorted({e["workload"] for e in summary if e["min"] is not None}, key=wl_sort_key)
    files = []
    # One color per runtime across all panels: weft blues, libgomp oranges,
    # libomp reds, oneTBB greens, rayon purples, serial black.
    palette = {"weft": ["#1f4e9c", "#3a7fd5", "#7fb2f0", "#0b2a5c", "#5d6dbe", "#9ecae1"],
               "omp": ["#e07b00", "#f5b041"],
               "libomp": ["#b03a2e", "#e6776b"],
               "tbb": ["#1e8449", "#52be80", "#a9dfbf"],
               "rayon": ["#7d3c98", "#af7ac5", "#d2b4de"],
               "serial": ["#000000", "#555555"]}
    colors, used = {}, {}
    for rt in sorted({e["runtime"] for e in summary}, key=rt_sort_key):
        fam = family(rt)
        shades = palette.get(fam, ["#888888"])
        colors[rt] = shades[used.get(fam, 0) % len(shades)]
        used[fam] = used.get(fam, 0) + 1

    # 1. time per workload: bars per runtime, grouped by worker count.
    n = len(wls)
    cols = 4
    rows_ = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_, cols, figsize=(5 * cols, 3.6 * rows_), squeeze=False)
    for i, wl in enumerate(wls):
        ax = axes[i // cols][i % cols]
        es = [e for e in summary if e["workload"] == wl and e["min"] is not None]
        rts = sorted({e["runtime"] for e in es if family(e["runtime"]) != "serial"},
                     key=rt_sort_key)
        ws = sorted({e["workers"] for e in es if family(e["runtime"]) != "serial"})
        scale, unit = (1.0, "CPU-s/s") if wl == "idle_cpu" else (
            (1e6, "us") if wl in ("wake",) or wl.startswith("deque") else (1e3, "ms"))
        width = 0.8 / max(len(rts), 1)
        for j, rt in enumerate(rts):
            xs, ys, errs = [], [], []
            for k, w in enumerate(ws):
                m = [e for e in es if e["runtime"] == rt and e["workers"] == w]
                if m:
                    xs.append(k + j * width)
                    ys.append(m[0]["min"] * scale)
                    errs.append((m[0]["median"] - m[0]["min"]) * scale)
            ax.bar(xs, ys, width, yerr=[[0] * len(errs), errs], label=rt, capsize=2,
                   color=colors[rt])
        ser = [e for e in es if family(e["runtime"]) == "serial"]
        if ser:
            ax.axhline(ser[0]["min"] * scale, color="k", ls="--", lw=1,
                       label=f"{ser[0]['runtime']}")
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(ws))])
        ax.set_xticklabels([f"{w} w" for w in ws])
        ax.set_title(wl)
        ax.set_ylabel(f"min time ({unit})" if wl != "idle_cpu" else unit)
        if wl not in ("idle_cpu",) and ys:
            vals = [e["min"] for e in es if e["min"]]
            if vals and max(vals) / max(min(vals), 1e-12) > 30:
                ax.set_yscale("log")
        ax.legend(fontsize=7)
    for i in range(n, rows_ * cols):
        axes[i // cols][i % cols].axis("off")
    fig.suptitle("weft bench: min time per workload (bar), median (whisker); lower is better")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    p = os.path.join(outdir, "time_per_workload.png")
    fig.savefig(p, dpi=90)
    plt.close(fig)
    files.append(p)

    # 2. speedup over serial vs workers.
    swls = [wl for wl in wls if wl not in SPECIAL and not wl.startswith("deque")
            and any(family(e["runtime"]) == "serial" for e in summary if e["workload"] == wl)]
    n = len(swls)
    if n:
        rows_ = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows_, cols, figsize=(5 * cols, 3.6 * rows_), squeeze=False)
        for i, wl in enumerate(swls):
            ax = axes[i // cols][i % cols]
            es = [e for e in summary if e["workload"] == wl and e["min"] is not None]
            ser = min(e["min"] for e in es if family(e["runtime"]) == "serial")
            ws_all = sorted({e["workers"] for e in es})
            lo = 1.0
            for rt in sorted({e["runtime"] for e in es if family(e["runtime"]) != "serial"},
                             key=rt_sort_key):
                pts = sorted((e["workers"], ser / e["min"]) for e in es if e["runtime"] == rt)
                lo = min([lo] + [p[1] for p in pts])
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=rt,
                        color=colors[rt])
            ax.plot(ws_all, ws_all, color="grey", ls=":", lw=1, label="ideal")
            ax.axhline(1.0, color="k", ls="--", lw=1)
            if lo < 0.3:
                ax.set_yscale("log")
            ax.set_xticks(ws_all)
            ax.set_xlabel("workers")
            ax.set_ylabel("speedup over serial")
            ax.set_title(wl)
            ax.legend(fontsize=7)
        for i in range(n, rows_ * cols):
            axes[i // cols][i % cols].axis("off")
        fig.suptitle("weft bench: speedup over the serial C baseline (higher is better)")
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        p = os.path.join(outdir, "speedup_vs_workers.png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        files.append(p)
    return files


def plot_gnuplot(summary, outdir):
    gp = shutil.which("gnuplot")
    if not gp:
        return []
    files = []
    datdir = os.path.join(outdir, "gnuplot-data")
    os.makedirs(datdir, exist_ok=True)
    wls = sorted({e["workload"] for e in summary if e["min"] is not None}, key=wl_sort_key)
    for wl in wls:
        es = [e for e in summary if e["workload"] == wl and e["min"] is not None]
        dat = os.path.join(datdir, f"time_{wl}.dat")
        with open(dat, "w") as f:
            for e in es:
                v = e["min"] if wl == "idle_cpu" else e["min"] * 1e3
                f.write(f"\"{e['runtime']}/{e['workers']}\" {v}\n")
        png = os.path.join(outdir, f"time_{wl}.png")
        ylabel = "CPU-s per idle s" if wl == "idle_cpu" else "min time (ms)"
        script = (f"set terminal png size 800,400 noenhanced\nset output '{png}'\n"
                  f"set title '{wl}: min time, lower is better'\nset style fill solid\n"
                  f"set boxwidth 0.6\nset xtics rotate by -30\nset ylabel '{ylabel}'\n"
                  f"unset key\nplot '{dat}' using 0:2:xtic(1) with boxes\n")
        subprocess.run([gp], input=script, text=True, check=False)
        files.append(png)
        if wl in SPECIAL or wl.startswith("deque"):
            continue
        ser = [e["min"] for e in es if family(e["runtime"]) == "serial"]
        if not ser:
            continue
        plots = []
        for rt in sorted({e["runtime"] for e in es if family(e["runtime"]) != "serial"},
                         key=rt_sort_key):
            sdat = os.path.join(datdir, f"speedup_{wl}_{rt}.dat")
            with open(sdat, "w") as f:
                for e in sorted((e for e in es if e["runtime"] == rt), key=lambda e: e["workers"]):
                    f.write(f"{e['workers']} {ser[0] / e['min']}\n")
            plots.append(f"'{sdat}' using 1:2 with linespoints title '{rt}'")
        png = os.path.join(outdir, f"speedup_{wl}.png")
        script = (f"set terminal png size 800,400 noenhanced\nset output '{png}'\n"
                  f"set title '{wl}: speedup over serial'\nset xlabel 'workers'\n"
                  f"set ylabel 'speedup'\nplot " + ", ".join(plots + ["x title 'ideal'"]) + "\n")
        subprocess.run([gp], input=script, text=True, check=False)
        files.append(png)
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="google-benchmark JSON from the harness")
    ap.add_argument("--meta", action="append", default=[],
                    help="the harness's --meta-out file (load, noise); repeatable")
    ap.add_argument("--note", action="append", default=[],
                    help="a line for the report's header (e.g. a skipped peer)")
    ap.add_argument("--merge-only", action="store_true",
                    help="write --merged-json/--merged-meta and stop")
    ap.add_argument("--merged-json", help="where the merged results go")
    ap.add_argument("--merged-meta", help="where the merged meta goes")
    ap.add_argument("--outdir", help="where plots and summaries go (default: next to results)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()

    doc = merge_docs([load_json(p) for p in args.results])
    metas = []
    for p in args.meta:
        if os.path.exists(p):
            with open(p) as f:
                metas.append(json.load(f))
    meta = merge_metas(metas)
    if args.merged_json:
        with open(args.merged_json, "w") as f:
            json.dump(doc, f, indent=1)
    if args.merged_meta and meta is not None:
        with open(args.merged_meta, "w") as f:
            json.dump(meta, f)
    if args.merge_only:
        return 0
    rows = collect(doc)
    if not rows:
        print("no benchmark results in", args.results, file=sys.stderr)
        return 2
    summary = summarize(rows)
    outdir = args.outdir or os.path.splitext(args.results[0])[0]
    os.makedirs(outdir, exist_ok=True)

    ctx = doc.get("context", {})
    meta_lines = [f"host {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs "
                  f"at {ctx.get('mhz_per_cpu', '?')} MHz, {ctx.get('date', '')}, "
                  f"mode {ctx.get('weft_bench_mode', '?')}, workers {ctx.get('weft_bench_workers', '?')}"]
    warn = []
    if meta is not None:
        la0, la1 = meta.get("loadavg_start"), meta.get("loadavg_end")
        fc = meta.get("foreign_cores")
        meta_lines.append(
            f"load average at start {la0}, at end {la1}; other processes used "
            f"{fc:.2f} of a core on average during the run "
            f"({meta.get('wall_s', 0):.0f} s)" if fc is not None else
            f"load average at start {la0}, at end {la1}")
        busy0 = meta.get("busy_cores_start")
        if la0 and la0[0] > 0.5:
            busy = f"{max(busy0, 0.0) + 0.0:.2f}" if busy0 is not None else "?"
            text = (f"load average {la0[0]:.2f} > 0.5 at start; other processes used "
                    f"{busy} cores just before the start")
            if busy0 is not None and busy0 < 0.2:
                # The load average decays over minutes and still remembers
                # the build that bench/run just did.
                meta_lines.append("note: " + text + " (the load average still counts "
                                  "the build)")
            else:
                warn.append(text)
        if fc is not None and fc > 0.1:
            warn.append(f"other processes used {fc:.2f} of a core during the run: "
                        "results are noisy")
    meta_lines += args.note
    reps = max((e["reps"] for e in summary), default=0)
    meta_lines.append(f"{reps} repetitions per benchmark, runtimes interleaved at random; "
                      f"min and median over repetitions; 'noisy' = median/min > {NOISY_SPREAD}")

    trows = table_rows(summary)
    print()
    for m in meta_lines:
        print(m)
    for w in warn:
        print("NOISY RUN:", w)
    print()
    print_table(trows)
    phdr, prows = pivot_rows(summary)
    print("\nBy runtime family: the fastest variant's min (x serial) [variant]:\n")
    print_table(prows, header=phdr)
    noisy = sum(1 for e in summary if e["noisy"])
    if noisy:
        print(f"\n{noisy} row(s) flagged noisy (median/min > {NOISY_SPREAD}).")

    # A workload's input, from its first parallel entry (serial baselines
    # of the micro-benchmarks describe only themselves).
    labels, seen = [], set()
    for e in sorted(summary, key=lambda e: (wl_sort_key(e["workload"]),
                                            family(e["runtime"]) == "serial")):
        if e["label"] and e["workload"] not in seen:
            seen.add(e["workload"])
            labels.append((e["workload"], e["label"]))
    md = os.path.join(outdir, "summary.md")
    write_markdown(trows, md, meta_lines + [f"NOISY RUN: {w}" for w in warn], labels,
                   pivot=(phdr, prows))
    csvp = os.path.join(outdir, "summary.csv")
    write_csv(summary, csvp)

    files = []
    if not args.no_plots:
        try:
            files = plot_matplotlib(summary, outdir)
        except ImportError:
            files = plot_gnuplot(summary, outdir)
            if not files:
                print("no plots: neither matplotlib nor gnuplot is available", file=sys.stderr)
    print()
    print(f"table:  {md}\n        {csvp}")
    for p in files:
        print(f"plot:   {p}")

    failed = [e for e in summary if any(not m.startswith("n/a") for m in e["errors"])]
    if failed:
        print("\nFAILED (wrong answer or error):", file=sys.stderr)
        for e in failed:
            print(f"  {e['workload']}/{e['runtime']}/workers:{e['workers']}: "
                  f"{'; '.join(sorted(set(e['errors'])))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
