#!/usr/bin/env python3
"""tools/trace_plot.py — draws a weft timeline trace as a PNG (matplotlib).

    tools/trace_plot.py TRACE.json [-o OUT.png] [--from MS] [--to MS]
                        [--max-depth N] [--width IN] [--dpi N] [--title T]

TRACE.json is what weft_trace_stop / $WEFT_TRACE writes (Chrome trace-event
JSON; docs/profiling.md). One row per worker, time across in milliseconds
from the trace's start (microseconds for a window under 2 ms):

  - task spans, colored by task function (the legend names the functions
    with the most time; the rest share one color); a span nested in
    another (a task run while its parent waits in weft_join or
    weft_flow_close) is drawn one level lower in the row, down to
    --max-depth levels (deeper ones are drawn at the last level);
  - flow spans (a flow opened by a task on that worker, until its close
    returns) as a thin dark bar along the bottom of that task's level;
  - parked spans (the worker asleep in the kernel) in grey;
  - steals as red triangles above the row (pointing at the row), pops from
    the injection queue as blue dots;
  - a full buffer (events dropped: the title says how many per worker):
    from that worker's last recorded event on, the row is hatched ("not
    recorded") and the spans still open there are cut there (the trace file
    closes them at its end). See $WEFT_TRACE_EVENTS.

Default output: TRACE.png next to TRACE.json. Needs python3-matplotlib
(Debian). Exit status 0, 1 on an unreadable trace, 2 on usage.
"""
import argparse
import collections
import json
import os
import sys

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3",
           "#937860", "#DA8BC3", "#CCB974", "#64B5CD", "#2F4B7C"]
OTHER = "#9DB4C0"
PARK = "#B0B0B0"
FLOW = "#222222"
UNREC = "#999999"


def load(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    other = doc.get("otherData", {})
    names, spans, marks, bounds = {}, collections.defaultdict(list), collections.defaultdict(list), {}
    stacks = collections.defaultdict(list)
    full = {}  # tid -> when its buffer filled (ms)
    for e in doc.get("traceEvents", []):
        ph, tid = e.get("ph"), e.get("tid")
        if ph == "M":
            if e.get("name") == "thread_name":
                names[tid] = e.get("args", {}).get("name", str(tid))
            continue
        ts = e.get("ts", 0.0) / 1000.0  # ms
        if ph == "X" and e.get("name") == "worker":
            bounds[tid] = (ts, ts + e.get("dur", 0.0) / 1000.0)
        elif ph == "B":
            stacks[tid].append((e.get("cat", "task"), e.get("name", "?"), ts))
        elif ph == "E" and stacks[tid]:
            cat, name, b = stacks[tid].pop()
            # Depth: the task spans around this one (a flow is drawn on
            # its task's level, not on a level of its own).
            d = sum(1 for s in stacks[tid] if s[0] == "task")
            if cat == "flow":
                d = max(d - 1, 0)
            spans[tid].append((cat, name, b, ts, d))
        elif ph == "i":
            name = e.get("name", "")
            if name.startswith("trace buffer full"):
                full[tid] = ts
            else:
                marks[tid].append((name, ts))
    # A full buffer: nothing was recorded on that worker after its last
    # event; the spans still open then were closed at the end by the
    # writer. Cut them where the recording stopped.
    for tid, cut in full.items():
        spans[tid] = [(c, n, b, min(e, cut), d) for c, n, b, e, d in spans[tid] if b <= cut]
    return doc, other, names, spans, marks, bounds, full


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("-o", "--out", help="PNG to write (default: TRACE.png)")
    ap.add_argument("--from", dest="t0", type=float, help="start of the window, ms")
    ap.add_argument("--to", dest="t1", type=float, help="end of the window, ms")
    ap.add_argument("--max-depth", type=int, default=8, help="nesting levels drawn (default 8)")
    ap.add_argument("--width", type=float, default=12.0, help="figure width, inches")
    ap.add_argument("--dpi", type=int, default=110)
    ap.add_argument("--title", help="title (default: the pool and the file)")
    args = ap.parse_args(argv[1:])

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
        from matplotlib.lines import Line2D
    except ImportError:
        # A python3 earlier on PATH (pyenv, a venv) may lack Debian's
        # matplotlib: try the system one once.
        syspy = "/usr/bin/python3"
        if os.path.exists(syspy) and os.path.realpath(sys.executable) != os.path.realpath(syspy) \
                and not os.environ.get("TRACE_PLOT_REEXEC"):
            os.environ["TRACE_PLOT_REEXEC"] = "1"
            os.execv(syspy, [syspy, os.path.abspath(__file__)] + argv[1:])
        print("trace_plot: needs matplotlib (apt-get install python3-matplotlib)", file=sys.stderr)
        return 1
    try:
        doc, other, names, spans, marks, bounds, full = load(args.trace)
    except (OSError, ValueError) as e:
        print(f"trace_plot: {args.trace}: {e}", file=sys.stderr)
        return 1

    tids = sorted(set(names) | set(bounds) | set(spans))
    if not tids:
        print(f"trace_plot: {args.trace}: no worker tracks", file=sys.stderr)
        return 1
    end = max([b[1] for b in bounds.values()] + [s[3] for v in spans.values() for s in v] + [0.0])
    t0 = args.t0 if args.t0 is not None else 0.0
    t1 = args.t1 if args.t1 is not None else end
    if t1 <= t0:
        t1 = t0 + 1e-3

    # Colors: the task functions with the most time in the window.
    total = collections.Counter()
    for v in spans.values():
        for cat, name, b, e, d in v:
            if cat == "task" and e > t0 and b < t1:
                total[name] += min(e, t1) - max(b, t0)
    top = [n for n, _ in total.most_common(len(PALETTE))]
    color = {n: PALETTE[i] for i, n in enumerate(top)}

    maxdepth = max([s[4] for v in spans.values() for s in v if s[0] == "task"] + [0]) + 1
    levels = max(1, min(maxdepth, args.max_depth))
    row_h = 0.8
    lvl_h = row_h / levels
    height = max(2.5, 0.9 * len(tids) + 1.8)
    fig, ax = plt.subplots(figsize=(args.width, height), dpi=args.dpi)

    for row, tid in enumerate(tids):
        y0 = row - row_h / 2  # rows go down: row 0 at the top (y inverted)
        bars = collections.defaultdict(list)  # (level, face, edge, height) -> [(x, w)]
        flows = []
        for cat, name, b, e, d in spans.get(tid, []):
            if e < t0 or b > t1:
                continue
            b, e = max(b, t0), min(e, t1)
            lvl = min(d, levels - 1)
            if cat == "park":
                bars[(0, PARK, None, row_h)].append((b, e - b))
            elif cat == "flow":
                flows.append((lvl, b, e - b))
            else:
                bars[(lvl, color.get(name, OTHER), None, lvl_h)].append((b, e - b))
        # Parked first, then by level, so deeper spans are drawn on top.
        for (lvl, face, edge, h), xs in sorted(bars.items(), key=lambda kv: (kv[0][3] != row_h, kv[0][0])):
            ax.broken_barh(xs, (y0 + lvl * lvl_h, h), facecolors=face,
                           edgecolors=edge if edge else "none", linewidth=0.4 if edge else 0)
        # A flow: a thin dark bar along the bottom of its task's level.
        for lvl, b, w in flows:
            ax.broken_barh([(b, w)], (y0 + (lvl + 1) * lvl_h - lvl_h * 0.22, lvl_h * 0.22),
                           facecolors=FLOW, linewidth=0)
        if tid in full and full[tid] < t1:
            b = max(full[tid], t0)
            e = bounds.get(tid, (0, t1))[1]
            ax.broken_barh([(b, max(min(e, t1) - b, 0))], (y0, row_h), facecolors="none",
                           edgecolors=UNREC, hatch="////", linewidth=0)
        st = [ts for n, ts in marks.get(tid, []) if n == "steal" and t0 <= ts <= t1]
        inj = [ts for n, ts in marks.get(tid, []) if n == "inject" and t0 <= ts <= t1]
        if st:
            ax.scatter(st, [y0 - 0.06] * len(st), marker="v", s=14, c="#D62728", linewidths=0, zorder=3)
        if inj:
            ax.scatter(inj, [y0 - 0.06] * len(inj), marker="o", s=10, c="#1F77B4", linewidths=0, zorder=3)

    ax.set_yticks(range(len(tids)))
    ax.set_yticklabels([names.get(t, str(t)) for t in tids])
    ax.set_ylim(len(tids) - 0.5, -0.7)
    ax.set_xlim(t0, t1)
    if t1 - t0 < 2.0:
        # A short window: microseconds on the axis.
        from matplotlib.ticker import FuncFormatter
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * 1000:g}"))
        ax.set_xlabel("µs since the trace started")
    else:
        ax.set_xlabel("ms since the trace started")
    ax.grid(axis="x", color="#DDDDDD", linewidth=0.6)
    ax.set_axisbelow(True)
    dropped = other.get("dropped", [])
    title = args.title or f"weft pool \"{other.get('pool', '?')}\": {os.path.basename(args.trace)}"
    sub = f"{len(tids)} workers, nesting depth {maxdepth}"
    if maxdepth > levels:
        sub += f" (drawn to {levels})"
    if any(dropped):
        sub += f"; buffer full, events dropped per worker: {dropped}"
    ax.set_title(f"{title}\n{sub}", fontsize=10)

    handles = [Patch(facecolor=color[n], label=n if len(n) <= 28 else n[:27] + "…") for n in top]
    if any(s[0] == "task" and s[1] not in color for v in spans.values() for s in v):
        handles.append(Patch(facecolor=OTHER, label="other tasks"))
    handles.append(Patch(facecolor=PARK, label="parked"))
    if any(s[0] == "flow" for v in spans.values() for s in v):
        handles.append(Patch(facecolor=FLOW, label="flow open (its\ntask waits in close)"))
    if full:
        handles.append(Patch(facecolor="none", edgecolor=UNREC, hatch="////", label="buffer full:\nnot recorded"))
    handles.append(Line2D([], [], marker="v", color="#D62728", linestyle="none", label="steal"))
    handles.append(Line2D([], [], marker="o", color="#1F77B4", linestyle="none", label="inject"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    out = args.out or os.path.splitext(args.trace)[0] + ".png"
    fig.savefig(out)
    print(f"trace_plot: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
