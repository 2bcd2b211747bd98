/*
 * sched/done.c — batched completion counts: a worker counts the tasks of
 * one external flow that it finishes back to back, and takes them out of
 * the flow's state with one read-modify-write instead of one each (the
 * state line is shared by every worker that runs the flow's tasks).
 *
 * The rule that keeps this from delaying a close: a worker holds a count
 * for flow D only while it is at its loop's top level between tasks, or
 * running a task of D there (and whatever that task helps with). D's
 * closer waits for that task anyway. Before the loop runs a task of any
 * other flow (a streak's tasks are of one flow; the item it ends at goes
 * back to the loop), and as soon as a search for work finds nothing
 * (before any spin, yield or sleep), it hands the count over, through
 * ws_flow_uncount, which wakes the closer as every completion does.
 * docs/scheduler.md ("Batched completion counts") has the argument.
 */
#include "sched/ws.h"

void ws_done_flush(ws_worker *w)
{
    ws_flow *f = w->done_flow;
    int64_t n = w->done_n;
    w->done_flow = NULL; /* f may be gone after the uncount */
    w->done_n = 0;
    if (n)
        ws_flow_uncount(f, n);
}

void ws_done_follow_slow(ws_worker *w, ws_flow *f)
{
    ws_done_flush(w);
    /* Only flows without owner: an owner's close looks for a zero state
     * on its fast path and must not find our count there. f->owner is
     * read while the item we are about to run holds f open. */
    if (f && !f->owner)
        w->done_flow = f;
}
