#!/usr/bin/env python3
"""tests/trace_check.py — checks weft timeline traces (Chrome trace-event JSON).

    trace_check.py DIR          the traces tests/trace_run.c wrote into DIR,
                                against DIR/expect.json (CTest: trace_check)
    trace_check.py FILE.json... any weft trace: the structural checks only

Structural checks, on every file:
  - it is JSON (json module) with traceEvents and otherData (pool,
    buffer_events, dropped: one count per worker);
  - one track per worker: a thread_name metadata event for tid 1..n named
    "<pool>-<tid-1>" (and, in DIR mode, exactly the name the kernel gave
    the thread), and one "X" span "worker" on it;
  - per track, in file order: timestamps never decrease; "B"/"E" balance
    and nest (every E closes the innermost open B, none left open); every
    span lies inside the track's "worker" span; a "parked" span contains
    nothing; a "flow" span lies inside a task span (a trace started while
    a task ran begins it at 0 as "(begun before the trace)");
  - instant events are steal (victim: another worker of the pool), inject,
    or "trace buffer full: N events dropped" with N the track's dropped
    count in otherData, present exactly when that count is nonzero; a
    track holds no more recorded events than buffer_events;
  - at least one task span.

DIR mode adds what tests/trace_run.c knows it ran (expect.json): span
counts per task function, flow spans, inject events, parked spans in the
idle window on every worker, dropped events in the small-buffer trace, and
the pool names of the two $WEFT_TRACE files (env.json, env-1.json).

Exit status: 0 all good, 1 a check failed, 77 skipped (DIR/SKIP exists:
the library was built without tracing), 2 usage.
"""
import json
import os
import re
import sys

EPS_US = 0.0015  # timestamps are printed with three decimals (ns)
FULL_RE = re.compile(r"^trace buffer full: (\d+) events dropped$")


class Trace:
    """One parsed trace file, with the spans rebuilt per track."""

    def __init__(self, path):
        self.path = path
        self.errors = []
        self.spans = {}  # tid -> [(cat, name, ts, end, depth, parent_cat)]
        self.instants = {}  # tid -> [event]
        self.names = {}  # tid -> thread name
        self.workers_span = {}  # tid -> (ts, end)
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)

    def err(self, msg):
        self.errors.append(f"{os.path.basename(self.path)}: {msg}")


def check_structure(t, thread_names=None, want_tasks=True):
    doc = t.doc
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        t.err("no traceEvents list")
        return
    other = doc.get("otherData")
    if not isinstance(other, dict):
        t.err("no otherData")
        return
    pool = other.get("pool")
    dropped = other.get("dropped")
    cap = other.get("buffer_events")
    if not isinstance(pool, str) or not isinstance(cap, int) or cap <= 0:
        t.err(f"otherData: pool {pool!r}, buffer_events {cap!r}")
        return
    if not isinstance(dropped, list) or not dropped or not all(isinstance(d, int) and d >= 0 for d in dropped):
        t.err(f"otherData.dropped is not a list of counts: {dropped!r}")
        return
    n = len(dropped)
    t.pool, t.nworkers, t.dropped, t.cap = pool, n, dropped, cap

    per_tid = {tid: [] for tid in range(1, n + 1)}
    for e in doc["traceEvents"]:
        ph = e.get("ph")
        if ph == "M":
            if e.get("name") == "thread_name":
                tid = e.get("tid")
                if tid in t.names:
                    t.err(f"tid {tid}: two thread_name events")
                t.names[tid] = e.get("args", {}).get("name")
            continue
        tid = e.get("tid")
        if tid not in per_tid:
            t.err(f"event on tid {tid!r}, not a worker track 1..{n}: {e}")
            continue
        if e.get("pid") != 1 or not isinstance(e.get("ts"), (int, float)):
            t.err(f"tid {tid}: bad pid or ts: {e}")
            continue
        per_tid[tid].append(e)

    # One track per worker, named like the thread.
    if sorted(t.names) != list(range(1, n + 1)):
        t.err(f"thread_name tracks {sorted(t.names)}, want 1..{n}")
    for tid, name in t.names.items():
        want = f"{pool}-{tid - 1}"[:15]
        if name != want:
            t.err(f"tid {tid} is named {name!r}, want {want!r}")
        if thread_names and 1 <= tid <= len(thread_names) and name != thread_names[tid - 1]:
            t.err(f"tid {tid} is named {name!r}; the thread's name is {thread_names[tid - 1]!r}")

    for tid, evs in per_tid.items():
        check_track(t, tid, evs)

    if want_tasks and not any(s[0] == "task" for v in t.spans.values() for s in v):
        t.err("no task spans at all")


def check_track(t, tid, evs):
    spans, instants = [], []
    t.spans[tid], t.instants[tid] = spans, instants
    xs = [e for e in evs if e["ph"] == "X"]
    if len(xs) != 1 or xs[0].get("name") != "worker" or not isinstance(xs[0].get("dur"), (int, float)):
        t.err(f"tid {tid}: want one X span 'worker', found {xs}")
        return
    w0, w1 = xs[0]["ts"], xs[0]["ts"] + xs[0]["dur"]
    t.workers_span[tid] = (w0, w1)
    last = None
    stack = []  # [cat, name, ts, children]
    recorded = 0
    full = []
    for e in evs:
        ph, ts = e["ph"], e["ts"]
        if last is not None and ts < last:
            t.err(f"tid {tid}: timestamp goes back from {last} to {ts}: {e}")
        last = ts
        if ph == "X":
            continue
        if ph in ("B", "E") and not (w0 - EPS_US <= ts <= w1 + EPS_US):
            t.err(f"tid {tid}: {ph} at {ts} outside the worker span [{w0}, {w1}]: {e}")
        if ph == "B":
            cat, name = e.get("cat"), e.get("name")
            if cat not in ("task", "park", "flow") or not isinstance(name, str) or not name:
                t.err(f"tid {tid}: B with cat {cat!r}, name {name!r}")
            if stack and stack[-1][0] == "park":
                t.err(f"tid {tid}: {cat} span '{name}' at {ts} inside a parked span")
            if cat == "flow" and not any(s[0] == "task" for s in stack):
                t.err(f"tid {tid}: flow span at {ts} outside any task span")
            if cat == "park" and stack:
                t.err(f"tid {tid}: parked span at {ts} inside {stack[-1][0]} '{stack[-1][1]}'")
            if cat == "task" and not isinstance(e.get("args", {}).get("fn"), str):
                t.err(f"tid {tid}: task span without args.fn: {e}")
            parent = stack[-1][0] if stack else None
            stack.append([cat, name, ts, parent])
            recorded += 1
        elif ph == "E":
            if not stack:
                t.err(f"tid {tid}: E at {ts} with no span open")
                continue
            cat, name, b, parent = stack.pop()
            spans.append((cat, name, b, ts, len(stack), parent))
        elif ph == "i":
            name = e.get("name", "")
            m = FULL_RE.match(name)
            if m:
                full.append(int(m.group(1)))
            elif name == "steal":
                v = e.get("args", {}).get("victim")
                if not isinstance(v, int) or not (0 <= v < t.nworkers) or v == tid - 1:
                    t.err(f"tid {tid}: steal from victim {v!r}")
                recorded += 1
            elif name == "inject":
                recorded += 1
            else:
                t.err(f"tid {tid}: unknown instant event {e}")
            instants.append(e)
        else:
            t.err(f"tid {tid}: unknown phase {ph!r}: {e}")
    if stack:
        t.err(f"tid {tid}: {len(stack)} spans never end: {[s[:3] for s in stack]}")
    d = t.dropped[tid - 1]
    if d and full != [d]:
        t.err(f"tid {tid}: otherData says {d} dropped; buffer-full events say {full}")
    if not d and full:
        t.err(f"tid {tid}: buffer-full event {full} but otherData says none dropped")
    if recorded > t.cap:
        t.err(f"tid {tid}: {recorded} recorded events in a buffer of {t.cap}")


def count(t, pred):
    return sum(1 for v in t.spans.values() for s in v if pred(s))


def summary(t):
    tasks = count(t, lambda s: s[0] == "task")
    parks = count(t, lambda s: s[0] == "park")
    flows = count(t, lambda s: s[0] == "flow")
    steals = sum(1 for v in t.instants.values() for e in v if e.get("name") == "steal")
    depth = max((s[4] for v in t.spans.values() for s in v), default=-1) + 1
    return (f"pool {t.pool!r}, {t.nworkers} workers, {tasks} task spans (depth {depth}), "
            f"{parks} parked, {flows} flows, {steals} steals, dropped {t.dropped}")


def check_expect(t, ex, key):
    if ex.get("pool") is not None and t.pool != ex["pool"]:
        t.err(f"pool {t.pool!r}, want {ex['pool']!r}")
    if ex.get("workers") is not None and t.nworkers != ex["workers"]:
        t.err(f"{t.nworkers} worker tracks, want {ex['workers']}")
    if ex.get("buffer_events") is not None and t.cap != ex["buffer_events"]:
        t.err(f"buffer_events {t.cap}, want {ex['buffer_events']}")
    for name, want in ex.get("spans", {}).items():
        got = count(t, lambda s: s[0] == "task" and s[1] == name)
        if got != want:
            t.err(f"{got} task spans named {name!r}, want {want}")
    if "task_spans" in ex:
        got = count(t, lambda s: s[0] == "task")
        if got != ex["task_spans"]:
            t.err(f"{got} task spans, want {ex['task_spans']}")
    if "flow_spans" in ex:
        got = count(t, lambda s: s[0] == "flow")
        if got != ex["flow_spans"]:
            t.err(f"{got} flow spans, want {ex['flow_spans']}")
    if "inject" in ex:
        got = sum(1 for v in t.instants.values() for e in v if e.get("name") == "inject")
        if got != ex["inject"]:
            t.err(f"{got} inject events, want {ex['inject']}")
    if key == "main":
        if any(t.dropped):
            t.err(f"dropped {t.dropped} in a trace that fits its buffers")
        lo, hi = ex["idle_us"]
        for tid in range(1, t.nworkers + 1):
            parked = [s for s in t.spans.get(tid, []) if s[0] == "park" and s[2] < hi and s[3] > lo]
            if not parked:
                t.err(f"tid {tid}: no parked span in the idle period [{lo:.0f}, {hi:.0f}] us")
    if key == "small":
        if not any(t.dropped):
            t.err(f"no events dropped with {t.cap}-event buffers: {t.dropped}")
        # The tracks still hold what fit: the first events of the session.
        if count(t, lambda s: s[0] == "task") == 0:
            t.err("no task spans kept")


def check_dir(d):
    if os.path.exists(os.path.join(d, "SKIP")):
        with open(os.path.join(d, "SKIP"), encoding="utf-8") as f:
            print("SKIP:", f.read().strip())
        return 77
    try:
        with open(os.path.join(d, "expect.json"), encoding="utf-8") as f:
            expect = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL: {d}/expect.json: {e} (did trace_run run?)")
        return 1
    errors = []
    for key, ex in expect.items():
        path = os.path.join(d, key + ".json")
        try:
            t = Trace(path)
        except (OSError, ValueError) as e:
            errors.append(f"{key}.json: {e}")
            continue
        check_structure(t, ex.get("thread_names"))
        if not t.errors:
            check_expect(t, ex, key)
        print(f"{key}.json: {summary(t) if hasattr(t, 'pool') else '?'}")
        errors += t.errors
    return report(errors)


def check_files(paths):
    errors = []
    for p in paths:
        try:
            t = Trace(p)
        except (OSError, ValueError) as e:
            errors.append(f"{p}: {e}")
            continue
        check_structure(t, want_tasks=False)  # a short trace may catch none
        print(f"{p}: {summary(t) if hasattr(t, 'pool') else '?'}")
        errors += t.errors
    return report(errors)


def report(errors):
    for e in errors[:50]:
        print("FAIL:", e)
    if len(errors) > 50:
        print(f"FAIL: ... and {len(errors) - 50} more")
    if errors:
        return 1
    print("trace_check: all checks passed")
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    if len(argv) == 2 and os.path.isdir(argv[1]):
        return check_dir(argv[1])
    return check_files(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
